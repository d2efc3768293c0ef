#!/usr/bin/env python3
"""PyTorch side of `pnpm bench step`.

Reads {"timing": {"warmup", "runs", "budgetMs"}, "cases": [{"id", "model", "mode", "size",
"batch", "config"}]} as JSON on stdin, where "config" is the aunet package's ModelConfig of the
network being timed, builds the same network in PyTorch from it (the structure of
packages/aunet/src/model.ts, written here with torch.nn; its parameter count is reported so that
a drift between the two shows), and times on the CPU with torch.set_num_threads(2), float32:
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
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

timing = request["timing"]


def conv3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = conv3(cin, cout, stride)
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class ResDil(nn.Module):
    def __init__(self, c, dilations):
        super().__init__()
        self.conv1 = conv3(c, c, dilation=dilations[0])
        self.norm1 = nn.InstanceNorm2d(c, affine=True)
        self.conv2 = conv3(c, c, dilation=dilations[1])
        self.norm2 = nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + x)


class DualAttention(nn.Module):
    """Zc + Zs: x * sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2) + x * sigmoid(conv1x1(x))."""

    def __init__(self, c, reduction):
        super().__init__()
        hidden = max(1, c // reduction)
        self.fc1 = nn.Linear(c, hidden)
        self.fc2 = nn.Linear(hidden, c)
        self.spatial = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        a = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        m = torch.sigmoid(self.spatial(x))
        return x * (a[:, :, None, None] + m)


class Encoder(nn.Module):
    def __init__(self, cin, c, stride, cfg):
        super().__init__()
        self.block = ConvBlock(cin, c, stride)
        self.res = ResDil(c, cfg["dilations"])
        self.att = DualAttention(c, cfg["reduction"]) if cfg.get("architecture", cfg.get("model")) == "aunet" else None

    def forward(self, x):
        y = self.res(self.block(x))
        return self.att(y) if self.att is not None else y


class Decoder(nn.Module):
    def __init__(self, cin, c, cfg):
        super().__init__()
        self.up = ConvBlock(cin, c)
        self.fuse = ConvBlock(2 * c, c)
        self.res = ResDil(c, cfg["dilations"])
        self.att = DualAttention(c, cfg["reduction"]) if cfg.get("architecture", cfg.get("model")) == "aunet" else None

    def forward(self, x, skip):
        h = self.up(F.interpolate(x, scale_factor=2, mode="nearest"))
        y = self.res(self.fuse(torch.cat([skip, h], 1)))
        return self.att(y) if self.att is not None else y


class AUNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        f = cfg["filters"]
        self.enc = nn.ModuleList([Encoder(cfg["inChannels"] if l == 0 else f[l - 1], c, 1 if l == 0 else 2, cfg) for l, c in enumerate(f)])
        self.dec = nn.ModuleList([Decoder(f[l + 1], c, cfg) for l, c in enumerate(f[:-1])])
        self.heads = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in f[: cfg["deepSupervision"]]])

    def forward(self, x):
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
        outs = [None] * (len(self.enc) - 1)
        below = skips[-1]
        for l in range(len(self.dec) - 1, -1, -1):
            below = outs[l] = self.dec[l](below, skips[l])
        acc = self.heads[-1](outs[len(self.heads) - 1])
        for i in range(len(self.heads) - 2, -1, -1):
            acc = F.interpolate(acc, scale_factor=2, mode="nearest") + self.heads[i](outs[i])
        return acc


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
