#!/usr/bin/env python3
"""PyTorch side of `pnpm bench step`.

Reads {"timing": {"warmup", "runs", "budgetMs"}, "cases": [{"id", "model", "mode", "size",
"batch", "config"}]} as JSON on stdin, where "config" is the aunet package's ModelConfig of the
network being timed, builds the same network in PyTorch from it (the structure of
packages/aunet/src/model.ts, written with torch.nn in aunet_torch.py; its parameter count is
reported so that a drift between the two shows), and times on the CPU with torch.set_num_threads(2), float32:
- mode "train": one step = forward, focal Tversky loss (alpha 0.7, beta 0.3, gamma 4/3, smooth
  1) on sigmoid(logits), backward, Adam (lr 5e-5);
- mode "infer": forward under no_grad and sigmoid, one slice.
Prints "@@bench-result {json}" with {"results": [{"id", "ms", "params", "peak_rss"}]} (peak_rss:
the process's peak resident set in bytes after the case, from ru_maxrss), or {"unavailable": why}.
"""
import resource

from peer import answer, import_torch, log, read_request, time_runs as time_with

request = read_request()
torch = import_torch()
from aunet_torch import AUNet  # noqa: E402  (imports torch: after import_torch's check)

timing = request["timing"]


def focal_tversky(p, g, alpha=0.7, beta=0.3, gamma=4.0 / 3.0, smooth=1.0):
    tp = (p * g).sum()
    fn = ((1 - p) * g).sum()
    fp = (p * (1 - g)).sum()
    ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    return (1 - ti).clamp_min(1e-6) ** (1.0 / gamma)


def time_runs(fn):
    return time_with(timing, fn)


results = []
log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
for case in request["cases"]:
    cfg, n, s = case["config"], case["batch"], case["size"]
    label = f'{case["model"]} {case["mode"]} {s}x{s} batch {n}'
    try:
        net = AUNet(cfg)
        params = sum(p.numel() for p in net.parameters())
        x = torch.rand(n, cfg["inChannels"], s, s)
        if case["mode"] == "train":
            g = (torch.rand(n, 1, s, s) < 0.3).float()
            opt = torch.optim.Adam(net.parameters(), lr=5e-5)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = focal_tversky(torch.sigmoid(net(x)), g)
                loss.backward()
                opt.step()
        else:
            net.eval()

            def step():
                with torch.no_grad():
                    torch.sigmoid(net(x))
        ms = time_runs(step)
        # ru_maxrss is in kilobytes on Linux: the process's peak so far (cases run smallest first).
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        results.append({"id": case["id"], "ms": ms, "params": params, "peak_rss": peak})
        log(f"{label}: {ms:.1f} ms, {params} parameters, peak RSS {peak / 2**30:.2f} GiB")
        del net, x
    except Exception as e:  # noqa: BLE001
        results.append({"id": case["id"], "ms": None, "note": f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"})
        log(f"{label}: failed: {e}")
answer({"notes": [f"PyTorch {torch.__version__} on the CPU, {torch.get_num_threads()} threads, float32; peak RSS is the process's peak after each case (cases run smallest first)"], "results": results})
