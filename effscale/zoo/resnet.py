"""ResNet-18/34/50/101/152 (He et al. 2016), as torchvision builds them (V1.5: the 3x3
conv of a bottleneck strides). Parameter counts equal torchvision's ``num_params``.

The paper does not say how it scaled ResNet-50's width or depth (Table 3). effscale
scales every stage's repeats and every channel count: stem, bottleneck (inner) widths
and block outputs; torchvision's ``wide_resnet50_2`` widens only the inner width.
"""

from effscale.spec import BackboneSpec, StageSpec
from effscale.zoo.registry import register_backbone

WIDTHS = (64, 128, 256, 512)  # inner width per stage


def _resnet(name: str, block: str, repeats: tuple[int, ...]) -> BackboneSpec:
    expansion = 4 if block == "bottleneck" else 1
    return BackboneSpec(
        name=name,
        family="resnet",
        stages=tuple(
            StageSpec(block, n, w * expansion, stride=1 if i == 0 else 2, mid=w)
            for i, (n, w) in enumerate(zip(repeats, WIDTHS))
        ),
        stem_channels=64,
        stem_kernel=7,
        stem_stride=2,
        stem_pool=True,
        act="relu",
        resolution=224,
        reference="He et al. 2016, Table 1; torchvision resnet",
    )


@register_backbone
def resnet18() -> BackboneSpec:
    return _resnet("resnet18", "basic", (2, 2, 2, 2))


@register_backbone
def resnet34() -> BackboneSpec:
    return _resnet("resnet34", "basic", (3, 4, 6, 3))


@register_backbone
def resnet50() -> BackboneSpec:
    return _resnet("resnet50", "bottleneck", (3, 4, 6, 3))


@register_backbone
def resnet101() -> BackboneSpec:
    return _resnet("resnet101", "bottleneck", (3, 4, 23, 3))


@register_backbone
def resnet152() -> BackboneSpec:
    return _resnet("resnet152", "bottleneck", (3, 8, 36, 3))
