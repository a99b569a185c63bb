"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018).

V1 follows timm's ``mobilenetv1_100`` (32-channel stem, depthwise-separable stages, no head
conv): 4,231,976 parameters. V2 follows torchvision's ``mobilenet_v2`` (t, c, n, s table,
1280-channel head): 3,504,872 parameters. Width scales every channel count, the head
included; torchvision instead keeps V2's head at 1280 when the width shrinks below 1.
"""

from effscale.spec import BackboneSpec, StageSpec
from effscale.zoo.registry import register_backbone


@register_backbone
def mobilenet_v1() -> BackboneSpec:
    # (repeats, channels, stride), as timm's dsa_r1_k3_s1_c64 ... dsa_r2_k3_s2_c1024
    stages = ((1, 64, 1), (2, 128, 2), (2, 256, 2), (6, 512, 2), (2, 1024, 2))
    return BackboneSpec(
        name="mobilenet-v1",
        family="mobilenet",
        stages=tuple(StageSpec("ds", n, c, s) for n, c, s in stages),
        stem_channels=32,
        act="relu",
        resolution=224,
        reference="Howard et al. 2017, Table 1; timm mobilenetv1_100",
    )


@register_backbone
def mobilenet_v2() -> BackboneSpec:
    # (expansion t, channels c, repeats n, stride s): Sandler et al. 2018, Table 2
    settings = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    return BackboneSpec(
        name="mobilenet-v2",
        family="mobilenet",
        stages=tuple(StageSpec("mbconv", n, c, s, expand=t) for t, c, n, s in settings),
        stem_channels=32,
        head_channels=1280,
        act="relu6",
        dropout=0.2,
        resolution=224,
        reference="Sandler et al. 2018, Table 2; torchvision mobilenet_v2",
    )
