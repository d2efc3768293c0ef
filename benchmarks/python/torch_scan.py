#!/usr/bin/env python3
"""PyTorch side of `pnpm bench scan`: the network, with our weights, as a slice server.

Unlike the other PyTorch scripts (one JSON request, one answer), this one stays up while the
benchmark runs a whole scan through the aunet package's `predictVolume`, so that reading the file,
normalising, resizing and thresholding are the same code for every side and only the network
differs. On stdin:
  1. one JSON line {"config": ModelConfig, "params": [[name, shape], ...]}, then the parameters'
     float32 values (little-endian), concatenated in that order;
  2. then frames: a uint32 slice count n (0 ends), and n * S * S float32 pixels ([n, 1, S, S]).
On stdout:
  1. "@@bench-result {json}": {"ready": true, "torch", "threads", "params"} once the weights are
     loaded (load_state_dict strict: every name and shape as ours), or {"unavailable": why} or
     {"error": why} (then it exits);
  2. per frame: a float64 of the milliseconds the forward pass and sigmoid took (timed here, so
     that the pipe is not counted as PyTorch's), then the n * S * S float32 probabilities;
  3. after the 0 frame, "@@bench-result {json}": {"peak_rss"} (bytes, from ru_maxrss).
CPU, torch.set_num_threads(2), float32, under no_grad. Progress and library chatter on stderr.
"""
import json
import os
import resource
import struct
import sys
import time

from peer import MARKER, import_torch, log

torch = import_torch()

# stdout carries binary frames: keep a private handle on it and send fd 1 (stray prints of any
# library) to stderr.
out = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
stdin = sys.stdin.buffer


def say(obj):
    out.write(("\n" + MARKER + json.dumps(obj) + "\n").encode())
    out.flush()


def read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = stdin.read(n - len(buf))
        if not chunk:
            raise EOFError(f"stdin closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


try:
    from aunet_torch import AUNet  # imports torch: after import_torch's check

    request = json.loads(stdin.readline())
    cfg = request["config"]
    state = {}
    for name, shape in request["params"]:
        count = 1
        for d in shape:
            count *= d
        state[name] = torch.frombuffer(bytearray(read_exact(4 * count)), dtype=torch.float32).reshape(shape)
    net = AUNet(cfg)
    # Shapes first: load_state_dict's own message for a mismatch is long; this names the tensor.
    ours = net.state_dict()
    for name, t in state.items():
        if name in ours and tuple(ours[name].shape) != tuple(t.shape):
            raise ValueError(f"{name}: ours is {list(t.shape)}, PyTorch's {list(ours[name].shape)}")
    net.load_state_dict(state, strict=True)
    net.eval()
except Exception as e:  # noqa: BLE001
    say({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"})
    sys.exit(1)

size = cfg["inputSize"]
channels = cfg["inChannels"]
say({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "params": sum(p.numel() for p in net.parameters())})
log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32; weights loaded")

with torch.no_grad():
    while True:
        (n,) = struct.unpack("<I", read_exact(4))
        if n == 0:
            break
        x = torch.frombuffer(bytearray(read_exact(4 * n * channels * size * size)), dtype=torch.float32).reshape(n, channels, size, size)
        t0 = time.perf_counter()
        p = torch.sigmoid(net(x)).contiguous()
        ms = (time.perf_counter() - t0) * 1000.0
        out.write(struct.pack("<d", ms))
        out.write(p.numpy().tobytes())
        out.flush()

say({"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
