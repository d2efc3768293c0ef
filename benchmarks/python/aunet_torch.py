"""The aunet package's network (packages/aunet/src/model.ts and @aunet/nn's layers) in PyTorch,
built from its ModelConfig, for the PyTorch sides of `pnpm bench step` and `pnpm bench scan`.

Modules and parameters carry the same dotted names and shapes as ours (`namedParameters()`:
encoder.0.block.conv.weight, encoder.0.attention.channel.w1, head.convs.0.bias, ...), so that our
weights load with load_state_dict(strict=True): a name, a shape or a layer that drifts apart
between the two fails the load instead of timing another network.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def is_aunet(cfg):
    # Older requests named the architecture "model".
    return cfg.get("architecture", cfg.get("model")) == "aunet"


class ConvBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = conv3(cin, cout, stride)
        self.norm = nn.InstanceNorm2d(cout, affine=True)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class ResDilBlock(nn.Module):
    def __init__(self, c, dilations):
        super().__init__()
        self.conv1 = conv3(c, c, dilation=dilations[0])
        self.norm1 = nn.InstanceNorm2d(c, affine=True)
        self.conv2 = conv3(c, c, dilation=dilations[1])
        self.norm2 = nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + x)


class ChannelAttention(nn.Module):
    """x * sigmoid(w2 relu(w1 mean_hw(x) + b1) + b2); w1 [C/r, C], w2 [C, C/r] as ours."""

    def __init__(self, c, reduction):
        super().__init__()
        hidden = max(1, c // reduction)
        self.w1 = nn.Parameter(torch.empty(hidden, c))
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.empty(c, hidden))
        self.b2 = nn.Parameter(torch.zeros(c))
        nn.init.kaiming_normal_(self.w1)
        nn.init.xavier_uniform_(self.w2)

    def gate(self, x):
        return torch.sigmoid(F.linear(F.relu(F.linear(x.mean(dim=(2, 3)), self.w1, self.b1)), self.w2, self.b2))


class SpatialAttention(nn.Module):
    """x * sigmoid(1x1 conv to one channel): w [C], b [1] as ours."""

    def __init__(self, c):
        super().__init__()
        self.w = nn.Parameter(torch.empty(c).uniform_(-(6 / (c + 1)) ** 0.5, (6 / (c + 1)) ** 0.5))
        self.b = nn.Parameter(torch.zeros(1))

    def gate(self, x):
        return torch.sigmoid(F.conv2d(x, self.w.view(1, -1, 1, 1), self.b))


class DualAttention(nn.Module):
    """Zc + Zs = x * (channel gate + spatial gate)."""

    def __init__(self, c, reduction):
        super().__init__()
        self.channel = ChannelAttention(c, reduction)
        self.spatial = SpatialAttention(c)

    def forward(self, x):
        return x * (self.channel.gate(x)[:, :, None, None] + self.spatial.gate(x))


class EncoderLevel(nn.Module):
    def __init__(self, cin, c, stride, cfg):
        super().__init__()
        self.block = ConvBlock(cin, c, stride)
        self.resDil = ResDilBlock(c, cfg["dilations"])
        self.attention = DualAttention(c, cfg["reduction"]) if is_aunet(cfg) else None

    def forward(self, x):
        y = self.resDil(self.block(x))
        return self.attention(y) if self.attention is not None else y


class DecoderLevel(nn.Module):
    def __init__(self, cin, c, cfg):
        super().__init__()
        self.up = ConvBlock(cin, c)
        self.fuse = ConvBlock(2 * c, c)
        self.resDil = ResDilBlock(c, cfg["dilations"])
        self.attention = DualAttention(c, cfg["reduction"]) if is_aunet(cfg) else None

    def forward(self, x, skip):
        h = self.up(F.interpolate(x, scale_factor=2, mode="nearest"))
        y = self.resDil(self.fuse(torch.cat([skip, h], 1)))
        return self.attention(y) if self.attention is not None else y


class DeepSupervisionHead(nn.Module):
    """A 1x1 conv (with bias) per supervised level, finest first, summed coarse to fine with nearest x2 up-sampling."""

    def __init__(self, channels):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in channels])

    def forward(self, levels):
        acc = self.convs[-1](levels[len(self.convs) - 1])
        for i in range(len(self.convs) - 2, -1, -1):
            acc = F.interpolate(acc, scale_factor=2, mode="nearest") + self.convs[i](levels[i])
        return acc


class AUNet(nn.Module):
    """Logits [N, 1, S, S] of input [N, inChannels, S, S]."""

    def __init__(self, cfg):
        super().__init__()
        f = cfg["filters"]
        self.encoder = nn.ModuleList([EncoderLevel(cfg["inChannels"] if l == 0 else f[l - 1], c, 1 if l == 0 else 2, cfg) for l, c in enumerate(f)])
        self.decoder = nn.ModuleList([DecoderLevel(f[l + 1], c, cfg) for l, c in enumerate(f[:-1])])
        self.head = DeepSupervisionHead(f[: cfg["deepSupervision"]])

    def forward(self, x):
        skips = []
        for e in self.encoder:
            x = e(x)
            skips.append(x)
        outs = [None] * (len(self.encoder) - 1)
        below = skips[-1]
        for l in range(len(self.decoder) - 1, -1, -1):
            below = outs[l] = self.decoder[l](below, skips[l])
        return self.head(outs[: len(self.head.convs)])
