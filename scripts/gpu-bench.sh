#!/usr/bin/env bash
# The GPU check of the benchmarks, in one short run on a lent device machine (see
# scripts/gpu-bundle.sh, which makes .gpu/bench.tar.xz here first):
#   - every 3x3 conv pass of the AU-Net shapes (`bench kernels --only conv2d`),
#   - the training steps and the 512x512 inference with a profile (`bench step --profile`),
# each rate also as a share of the GPU's fp32 peak, taken from its name (override: PEAK_GFLOPS).
# Results go to $OUT (or ./gpu-results): kernels.json, step.json and the printed tables.
#
# Device call: carry [".gpu"] (and ".gl" where the machine lacks the Vulkan loader: see the device
# notes), command `bash scripts/gpu-bench.sh`, timeout about 500 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out" /tmp/aunet-gpu
[ -f .gpu/bench.tar.xz ] || { echo "error: .gpu/bench.tar.xz is missing: run scripts/gpu-bundle.sh here first and carry .gpu" >&2; exit 1; }
tar -C /tmp/aunet-gpu -xJf .gpu/bench.tar.xz || { echo "error: could not unpack .gpu/bench.tar.xz (is xz installed?)" >&2; exit 1; }
bench=/tmp/aunet-gpu/bench
echo "bundle: $(cat $bench/VERSION)"

# The Vulkan loader, from carried .deb files when the machine has none.
if ! grep -q libvulkan.so.1 <(ldconfig -p) && ls .gl/*.deb >/dev/null 2>&1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$nvidia_icd} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-$nvidia_icd}
fi

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
# fp32 (non-tensor-core) peaks, GFLOP/s: H100 SXM and H200 67 TF, H100 NVL 60 TF, H100 PCIe 51 TF,
# A100 19.5 TF.
peak=''
case "$gpu" in
  *H100*PCIe*) peak=51000 ;;
  *H100*NVL*) peak=60000 ;;
  *H100*|*H200*) peak=67000 ;;
  *A100*) peak=19500 ;;
esac
peak=${PEAK_GFLOPS:-$peak}
echo "gpu: ${gpu:-unknown}; fp32 peak: ${peak:-unknown} GFLOP/s"
peakflag=()
[ -n "$peak" ] && peakflag=(--peak "$peak")

status=0
"$bench/node" "$bench/bench.mjs" kernels --only conv2d --no-torch --no-tfjs ${peakflag[@]+"${peakflag[@]}"} --json "$out/kernels.json" 2>&1 | tee "$out/kernels.txt" || status=1
"$bench/node" "$bench/bench.mjs" step --profile --no-torch ${peakflag[@]+"${peakflag[@]}"} --json "$out/step.json" 2>&1 | tee "$out/step.txt" || status=1
exit $status
