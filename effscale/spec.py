"""Backbone specs: the data that scaling rules act on and builders turn into modules.

A spec is a frozen description of a network, in the spirit of pycls's EN config and
timm's ``arch_def``: a stem, stages of identical blocks, an optional 1x1 head conv,
then global average pooling, dropout and a linear classifier.
"""

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``repeats`` blocks of one kind; only the first block strides."""

    block: str  # block kind, a key of zoo.layers.BLOCKS: mbconv, ds, basic, bottleneck
    repeats: int  # number of blocks (the paper's L_i)
    channels: int  # output channels of every block (the paper's C_i)
    stride: int = 1  # stride of the first block
    kernel: int = 3  # depthwise / spatial kernel size
    expand: float = 1.0  # mbconv: inner width = block input width x expand
    mid: int = 0  # bottleneck / basic: inner width (scaled like any channel count)
    se_ratio: float = 0.0  # squeeze-excite width = block input width x se_ratio; 0: none
    groups: int = 1  # bottleneck: groups of its 3x3 conv (ResNeXt: 32); mid stays divisible


@dataclass(frozen=True)
class BackboneSpec:
    """A whole backbone at one (d, w): what a builder needs, and nothing it does not."""

    name: str
    family: str  # efficientnet, mobilenet, resnet, or a user's own
    stages: tuple[StageSpec, ...]
    stem_channels: int
    stem_kernel: int = 3
    stem_stride: int = 2
    stem_pool: bool = False  # ResNet's 3x3 stride-2 max-pool after the stem conv
    head_channels: int = 0  # 1x1 conv before pooling; 0: none (ResNet, MobileNetV1)
    act: str = "relu"  # relu, relu6 or silu
    dropout: float = 0.0  # before the classifier
    drop_path: float = 0.0  # stochastic depth at the last block, ramped linearly from 0
    resolution: int = 224  # native input resolution, the base of r
    small_input: bool = False  # stem adapted for small images (see adapt_small_input)
    reference: str = ""  # the paper or code this spec follows
    channel_divisor: int = 8  # scaled channel counts snap to multiples of this (timm's
    #                           round_chs_fn); a stage's mid also to multiples of its groups

    @property
    def depth(self) -> int:
        """Number of blocks over all stages."""
        return sum(s.repeats for s in self.stages)

    @property
    def total_stride(self) -> int:
        """Downsampling from input to the last feature map."""
        stride = self.stem_stride * (2 if self.stem_pool else 1)
        for s in self.stages:
            stride *= s.stride
        return stride

    def to_dict(self) -> dict:
        return asdict(self)


def adapt_small_input(spec: BackboneSpec) -> BackboneSpec:
    """The standard small-image adaptation: stem stride 1 and no max-pool.

    A backbone designed for 224 px reaches a 1x1 feature map at 32 px and learns poorly;
    CIFAR ports of ResNet use a 3x3 stride-1 stem without max-pool, and EfficientNet /
    MobileNet ports set the stem stride to 1 (DESIGN §6). Costs are counted on the
    adapted model, so the saving in resolution shows up honestly in FLOPs.
    """
    if spec.small_input:
        return spec
    return replace(
        spec, stem_kernel=min(spec.stem_kernel, 3), stem_stride=1, stem_pool=False, small_input=True
    )
