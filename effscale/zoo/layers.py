"""The layer vocabulary every backbone is built from.

Thin constructors (``conv_bn_act``), shared parts (``SqueezeExcite``, ``drop_path``) and
the blocks that stages repeat: ``MBConv`` (MobileNetV2 / EfficientNet), ``DepthwiseSeparable``
(MobileNetV1), ``BasicBlock`` and ``Bottleneck`` (ResNet). Attribute names stay put once
checkpoints exist: renaming one breaks every saved run.
"""

import torch
from torch import nn

# Batch norm settings, in one place. eps follows the official EfficientNet code (1e-3);
# momentum is PyTorch's 0.1 rather than the official 0.01 (TF decay 0.99): brief runs take
# a few hundred steps, and slow running statistics would lag the weights at evaluation.
BN_EPS = 1e-3
BN_MOMENTUM = 0.1

ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name](inplace=True)


def norm2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def conv2d(w_in: int, w_out: int, k: int, stride: int = 1, groups: int = 1, bias=False):
    """A k x k convolution with 'same' padding for odd k."""
    assert k % 2 == 1, "only odd kernels keep 'same' padding symmetric"
    return nn.Conv2d(w_in, w_out, k, stride, padding=(k - 1) // 2, groups=groups, bias=bias)


def conv_bn_act(w_in, w_out, k, stride=1, groups=1, act: str | None = "relu"):
    """Conv, batch norm, then an activation (none when ``act`` is None)."""
    return nn.Sequential(
        conv2d(w_in, w_out, k, stride, groups),
        norm2d(w_out),
        activation(act) if act else nn.Identity(),
    )


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch per sample, rescale the rest."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0], 1, 1, 1)).bernoulli_(keep)
    return x * mask / keep


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018) on the expanded width of an MBConv."""

    def __init__(self, w: int, w_se: int, act: str):
        super().__init__()
        self.reduce = nn.Conv2d(w, w_se, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(w_se, w, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


# --------------------------------------------------------------------------------------
# Blocks. Each takes (w_in, w_out, stride, stage spec, act, drop_path_rate).
# --------------------------------------------------------------------------------------


class MBConv(nn.Module):
    """Inverted residual with linear bottleneck (Sandler et al. 2018), SE optional.

    EfficientNet calls it MBConv (Tan & Le 2019, Table 1); the SE width follows the
    official code: max(1, int(block input width x se_ratio)).
    """

    def __init__(self, w_in, w_out, stride, stage, act, drop_path_rate=0.0):
        super().__init__()
        w_mid = int(round(w_in * stage.expand))
        self.conv_pw = conv_bn_act(w_in, w_mid, 1, act=act) if w_mid != w_in else nn.Identity()
        self.conv_dw = conv_bn_act(w_mid, w_mid, stage.kernel, stride, groups=w_mid, act=act)
        w_se = max(1, int(w_in * stage.se_ratio))
        self.se = SqueezeExcite(w_mid, w_se, act) if stage.se_ratio > 0 else nn.Identity()
        self.conv_pwl = conv_bn_act(w_mid, w_out, 1, act=None)
        self.has_skip = stride == 1 and w_in == w_out
        self.drop_path_rate = drop_path_rate

    def forward(self, x):
        out = self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x))))
        if self.has_skip:
            out = drop_path(out, self.drop_path_rate, self.training) + x
        return out


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's block (Howard et al. 2017): depthwise conv, then pointwise conv."""

    def __init__(self, w_in, w_out, stride, stage, act, drop_path_rate=0.0):
        super().__init__()
        self.conv_dw = conv_bn_act(w_in, w_in, stage.kernel, stride, groups=w_in, act=act)
        self.conv_pw = conv_bn_act(w_in, w_out, 1, act=act)

    def forward(self, x):
        return self.conv_pw(self.conv_dw(x))


class _Residual(nn.Module):
    """ResNet's shared skeleton: a branch plus a projection shortcut when shapes change."""

    def __init__(self, w_in, w_out, stride, act, drop_path_rate):
        super().__init__()
        self.downsample = (
            conv_bn_act(w_in, w_out, 1, stride, act=None)
            if stride != 1 or w_in != w_out
            else nn.Identity()
        )
        self.act = activation(act)
        self.drop_path_rate = drop_path_rate

    def forward(self, x):
        out = drop_path(self.branch(x), self.drop_path_rate, self.training)
        return self.act(out + self.downsample(x))


class BasicBlock(_Residual):
    """Two 3x3 convs (He et al. 2016, ResNet-18/34)."""

    def __init__(self, w_in, w_out, stride, stage, act, drop_path_rate=0.0):
        super().__init__(w_in, w_out, stride, act, drop_path_rate)
        w_mid = stage.mid or w_out
        self.branch = nn.Sequential(
            conv_bn_act(w_in, w_mid, 3, stride, act=act),
            conv_bn_act(w_mid, w_out, 3, act=None),
        )


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (strided, as torchvision's ResNet V1.5), 1x1 expand."""

    def __init__(self, w_in, w_out, stride, stage, act, drop_path_rate=0.0):
        super().__init__(w_in, w_out, stride, act, drop_path_rate)
        self.branch = nn.Sequential(
            conv_bn_act(w_in, stage.mid, 1, act=act),
            conv_bn_act(stage.mid, stage.mid, stage.kernel, stride, groups=stage.groups, act=act),
            conv_bn_act(stage.mid, w_out, 1, act=None),
        )


BLOCKS: dict[str, type[nn.Module]] = {
    "mbconv": MBConv,
    "ds": DepthwiseSeparable,
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


def register_block(kind: str):
    """Make a block class usable as ``StageSpec(block=kind)`` in any spec.

    The block protocol: ``cls(w_in, w_out, stride, stage, act, drop_path_rate)`` builds one
    block taking ``w_in`` channels to ``w_out``, ``stride`` on the first block of a stage
    (1 after it); ``stage`` is its StageSpec, from which it reads what else it needs
    (kernel, expand, mid, se_ratio, groups: scaled by effscale, with mid a multiple of
    groups), ``act`` the spec's activation name (zoo.layers.activation) and
    ``drop_path_rate`` its stochastic-depth rate (zoo.layers.drop_path). Its forward takes
    and returns an [N, C, H, W] tensor."""

    def add(cls):
        BLOCKS[kind] = cls
        return cls

    return add
