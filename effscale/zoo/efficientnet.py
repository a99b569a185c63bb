"""EfficientNet-B0 to B7 (Tan & Le, ICML 2019, arXiv 1905.11946).

B0 is decoded from the official block strings (tensorflow/tpu efficientnet_builder.py,
``_DEFAULT_BLOCKS_ARGS``), which are right where the paper's Table 1 strides are not
(tensorflow/tpu issue #383). B1-B7 are B0 under the official (width, depth, resolution,
dropout) table, not Equation 3 at integer phi:

    model  width  depth  res  dropout
    b0     1.0    1.0    224  0.2
    b1     1.0    1.1    240  0.2
    b2     1.1    1.2    260  0.3
    b3     1.2    1.4    300  0.3
    b4     1.4    1.8    380  0.4
    b5     1.6    2.2    456  0.4
    b6     1.8    2.6    528  0.5
    b7     2.0    3.1    600  0.5
"""

import re
from dataclasses import replace

from effscale.scaling import EFFICIENTNET_PARAMS, scale_spec
from effscale.spec import BackboneSpec, StageSpec
from effscale.zoo.registry import register_backbone

# r: repeats, k: kernel, s: stride, e: expansion, i/o: input/output filters, se: SE ratio
B0_BLOCKS = (
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
)


def decode_block(block: str) -> StageSpec:
    """Decode one official block string, e.g. ``r2_k3_s22_e6_i16_o24_se0.25``."""
    fields = dict(re.match(r"([a-z]+)(.*)", part).groups() for part in block.split("_"))
    return StageSpec(
        block="mbconv",
        repeats=int(fields["r"]),
        channels=int(fields["o"]),
        stride=int(fields["s"][0]),
        kernel=int(fields["k"]),
        expand=float(fields["e"]),
        se_ratio=float(fields.get("se", 0)),
    )


@register_backbone
def efficientnet_b0() -> BackboneSpec:
    return BackboneSpec(
        name="efficientnet-b0",
        family="efficientnet",
        stages=tuple(decode_block(b) for b in B0_BLOCKS),
        stem_channels=32,
        head_channels=1280,
        act="silu",
        dropout=0.2,
        drop_path=0.2,  # official survival probability 0.8 at the last block
        resolution=224,
        reference="Tan & Le 2019, Table 1; tensorflow/tpu efficientnet_builder.py",
    )


def _official(name: str) -> BackboneSpec:
    width, depth, resolution, dropout = EFFICIENTNET_PARAMS[name]
    spec = scale_spec(efficientnet_b0(), d=depth, w=width)
    return replace(
        spec,
        name=name,
        resolution=resolution,
        dropout=dropout,
        reference="official (width, depth, resolution) table, efficientnet_builder.py",
    )


@register_backbone
def efficientnet_b1() -> BackboneSpec:
    return _official("efficientnet-b1")


@register_backbone
def efficientnet_b2() -> BackboneSpec:
    return _official("efficientnet-b2")


@register_backbone
def efficientnet_b3() -> BackboneSpec:
    return _official("efficientnet-b3")


@register_backbone
def efficientnet_b4() -> BackboneSpec:
    return _official("efficientnet-b4")


@register_backbone
def efficientnet_b5() -> BackboneSpec:
    return _official("efficientnet-b5")


@register_backbone
def efficientnet_b6() -> BackboneSpec:
    return _official("efficientnet-b6")


@register_backbone
def efficientnet_b7() -> BackboneSpec:
    return _official("efficientnet-b7")
