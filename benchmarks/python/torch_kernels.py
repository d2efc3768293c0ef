#!/usr/bin/env python3
"""PyTorch side of `pnpm bench kernels`.

Reads {"timing": {"warmup", "runs", "budgetMs"}, "cases": [...]} as JSON on stdin (the cases of
benchmarks/src/cases.ts), times each case on the CPU with torch.set_num_threads(2) in float32,
and prints one line "@@bench-result {json}" on stdout with {"results": [{"id", "ms", "note"?}]}
(or {"unavailable": reason} when torch cannot be imported). Progress goes to stderr.

Method, as on the TypeScript side: inputs made once, warm-up runs, then timed runs until `runs`
or the time budget; the median. Backward passes run the forward once with requires_grad only on
the input (backward-input) or only on the weights (backward-weight) and time
torch.autograd.grad(y, wanted, dy, retain_graph=True).
"""
from peer import answer, import_torch, log, read_request, time_runs as time_with

request = read_request()
torch = import_torch()
import torch.nn.functional as F  # noqa: E402

timing = request["timing"]


def time_runs(fn):
    return time_with(timing, fn)


def uniform(shape, lo=-1.0, hi=1.0):
    return torch.empty(shape, dtype=torch.float32).uniform_(lo, hi)


def forward_or_backward(case, forward, wanted):
    """forward(): the op; wanted: tensors whose gradient the backward pass computes."""
    if case["pass"] == "forward":
        def run():
            with torch.no_grad():
                forward()
        return run
    for t in wanted:
        t.requires_grad_(True)
    y = forward()
    dy = torch.ones_like(y) if y.numel() == 1 else uniform(y.shape)

    def run():
        torch.autograd.grad(y, wanted, dy, retain_graph=True)
    return run


def dual_attention(x, w1, b1, w2, b2, ws, bs):
    # Channel attention: x * sigmoid(fc2(relu(fc1(GAP(x))))), reduction 2; spatial attention:
    # x * sigmoid(conv1x1(x -> 1)); output the sum (DESIGN.md).
    gap = x.mean(dim=(2, 3))
    ca = torch.sigmoid(F.linear(torch.relu(F.linear(gap, w1, b1)), w2, b2))
    sa = torch.sigmoid(F.conv2d(x, ws, bs))
    return x * ca[:, :, None, None] + x * sa


def focal_tversky(p, g, alpha=0.7, beta=0.3, gamma=4.0 / 3.0, smooth=1.0):
    tp = (p * g).sum()
    fn = ((1 - p) * g).sum()
    fp = (p * (1 - g)).sum()
    ti = (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)
    return (1 - ti).clamp_min(0) ** (1.0 / gamma)


def build(case):
    op = case["op"]
    shape = case["input"]
    wants_x = case["pass"] == "backward-input"
    if op == "conv2d":
        p = case["conv"]
        cin = shape[1]
        bound = 1.0 / (cin * p["k"] * p["k"]) ** 0.5
        x = uniform(shape)
        w = uniform([p["cout"], cin, p["k"], p["k"]], -bound, bound)
        b = uniform([p["cout"]], -bound, bound)
        fwd = lambda: F.conv2d(x, w, b, stride=p["stride"], padding=p["padding"], dilation=p["dilation"])  # noqa: E731
        return forward_or_backward(case, fwd, [x] if wants_x else [w])
    if op == "upsample2x":
        x = uniform(shape)
        return forward_or_backward(case, lambda: F.interpolate(x, scale_factor=2, mode="nearest"), [x])
    if op == "instance_norm":
        c = shape[1]
        x = uniform(shape)
        gamma = uniform([c], 0.5, 1.5)
        beta = uniform([c], -0.5, 0.5)
        fwd = lambda: F.instance_norm(x, weight=gamma, bias=beta, eps=1e-5)  # noqa: E731
        return forward_or_backward(case, fwd, [x] if wants_x else [gamma, beta])
    if op == "dual_attention":
        c = shape[1]
        x = uniform(shape)
        ws = [uniform([c // 2, c], -0.1, 0.1), uniform([c // 2], -0.1, 0.1), uniform([c, c // 2], -0.1, 0.1),
              uniform([c], -0.1, 0.1), uniform([1, c, 1, 1], -0.1, 0.1), uniform([1], -0.1, 0.1)]
        return forward_or_backward(case, lambda: dual_attention(x, *ws), [x] if wants_x else ws)
    if op == "focal_tversky":
        pr = uniform(shape, 0.01, 0.99)
        g = (torch.rand(shape) < 0.3).float()
        return forward_or_backward(case, lambda: focal_tversky(pr, g), [pr])
    if op == "adam":
        param = torch.nn.Parameter(uniform(shape, -0.1, 0.1))
        param.grad = uniform(shape, -1e-3, 1e-3)
        opt = torch.optim.Adam([param], lr=5e-5, betas=(0.9, 0.999), eps=1e-8)
        return opt.step
    raise ValueError(f"unknown op {op}")


results = []
cases = request["cases"]
log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32")
for i, case in enumerate(cases):
    label = f'{case["op"]} {case["pass"]} {case["shape"]}'
    try:
        ms = time_runs(build(case))
        results.append({"id": case["id"], "ms": ms})
        log(f"[{i + 1}/{len(cases)}] {label}: {ms:.2f} ms")
    except Exception as e:  # noqa: BLE001
        results.append({"id": case["id"], "ms": None, "note": f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"})
        log(f"[{i + 1}/{len(cases)}] {label}: failed: {e}")
answer({"notes": [f"PyTorch {torch.__version__} on the CPU, {torch.get_num_threads()} threads, float32"], "results": results})
