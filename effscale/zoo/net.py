"""The builder: one network class that turns any BackboneSpec into a module.

Like pycls's AnyNet, every registered family (EfficientNet, MobileNet, ResNet) is the same
skeleton with different specs: stem, stages s1..sN of blocks b1..bM, optional 1x1 head conv,
global average pooling, dropout, linear classifier. Shared interface (as timm's):
``forward_features`` returns the last feature map, ``forward_head`` classifies it, ``fc`` is
the classifier (class activation maps need both).
"""

from collections import OrderedDict

import torch
from torch import nn

from effscale.spec import BackboneSpec
from effscale.zoo.layers import BLOCKS, MBConv, _Residual, conv_bn_act


def stem_of(spec: BackboneSpec) -> nn.Sequential:
    return nn.Sequential(
        conv_bn_act(3, spec.stem_channels, spec.stem_kernel, spec.stem_stride, act=spec.act),
        nn.MaxPool2d(3, 2, 1) if spec.stem_pool else nn.Identity(),
    )


def blocks_of(spec: BackboneSpec):
    """Each block's place and constructor arguments, in forward order: (stage index, block
    index, block class, w_in, w_out, stride, stage, drop-path rate)."""
    # Stochastic depth ramps linearly with the block index (torchvision / official code).
    n_blocks, idx, w_in = spec.depth, 0, spec.stem_channels
    for i, stage in enumerate(spec.stages, 1):
        for j in range(stage.repeats):
            stride = stage.stride if j == 0 else 1
            rate = spec.drop_path * idx / n_blocks
            yield i, j + 1, BLOCKS[stage.block], w_in, stage.channels, stride, stage, rate
            w_in, idx = stage.channels, idx + 1


def head_of(spec: BackboneSpec) -> nn.Module:
    w_in = spec.stages[-1].channels
    return conv_bn_act(w_in, spec.head_channels, 1, act=spec.act) if spec.head_channels else (
        nn.Identity()
    )  # fmt: skip


class Net(nn.Module):
    """Stem, stages, head and classifier, built from a spec."""

    def __init__(self, spec: BackboneSpec, num_classes: int = 1000):
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.stem = stem_of(spec)
        stages = OrderedDict()
        for i, j, block_cls, w_in, w_out, stride, stage, rate in blocks_of(spec):
            stages.setdefault(f"s{i}", OrderedDict())[f"b{j}"] = block_cls(
                w_in, w_out, stride, stage, spec.act, rate
            )
        self.stages = nn.Sequential(OrderedDict((k, nn.Sequential(v)) for k, v in stages.items()))
        self.head = head_of(spec)
        self.num_features = spec.head_channels or spec.stages[-1].channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(features), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh head for a new class count (fine-tuning)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes).to(self.fc.weight.device)
        _init_linear(self.fc)


def _init_linear(fc: nn.Linear) -> None:
    # Small logits at the start whatever the class count. torchvision's EfficientNet rule,
    # uniform(+-1/sqrt(classes)), is fine for 1000 classes but gives 10-class heads an
    # initial loss of 2.9 (> ln 10) and measurably worse, more seed-dependent short runs.
    nn.init.normal_(fc.weight, std=0.01)
    nn.init.zeros_(fc.bias)


def init_weights(model: nn.Module) -> None:
    """He init for convs (fan-out, as the official code), unit BN, small uniform head.

    The last batch norm of every residual branch starts at zero (Goyal et al. 2017), so
    each block begins as the identity: brief runs of deep variants train stably from step one.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            _init_linear(m)
    for m in model.modules():
        if isinstance(m, MBConv) and m.has_skip:
            nn.init.zeros_(m.conv_pwl[1].weight)
        elif isinstance(m, _Residual):
            nn.init.zeros_(m.branch[-1][1].weight)
