"""The paper's published numbers, and our counted costs beside them.

Reference data (effscale/reference/efficientnet.json) is a copy of the project's checked
reference file: Tan & Le 2019 Tables 1, 2, 3, 7, the official code's coefficients, and
torchvision / timm parameter and GMAC counts, each with its source. Deviations are
(ours - paper) / paper; the paper rounds to two significant digits, so a few per cent is
rounding, and for ResNet / MobileNet the paper does not state its scaling rules at all.
"""

import json
from functools import cache
from importlib.resources import files

from effscale.cost import describe
from effscale.errors import EffscaleError
from effscale.scaling import make_variant

TABLES = ("efficientnet", "table3", "table7")

# Reference family names -> registered backbones.
_FAMILY = {"mobilenet_v1": "mobilenet-v1", "mobilenet_v2": "mobilenet-v2", "resnet50": "resnet50"}


@cache
def reference() -> dict:
    """The reference numbers, with a ``sources`` map from ids (S1 ... S9) to files read."""
    return json.loads(files("effscale").joinpath("reference/efficientnet.json").read_text())


def _deviation(ours: float, paper: float | None) -> float | None:
    return None if not paper else round(100.0 * (ours - paper) / paper, 1)


def efficientnet_table() -> list[dict]:
    """B0-B7 at the paper's resolutions: our params and FLOPs beside Table 2 and torchvision."""
    ref = reference()
    out = []
    for i in range(8):
        key = f"b{i}"
        v = ref["variants"][key]
        row = describe(make_variant(f"efficientnet-{key}"))
        tv = ref["torchvision_reference"][f"efficientnet_{key}"]
        out.append(
            {
                "model": f"efficientnet-{key}",
                "w": v["width"],
                "d": v["depth"],
                "resolution": row["resolution"],
                "params": row["params"],
                "paper_params_m": v["params_m"],
                "flops": row["flops"],
                "gflops": row["gflops"],
                "paper_gflops": v["flops_b"],
                "deviation_pct": _deviation(row["gflops"], v["flops_b"]),
                "torchvision_params": tv["params"],
                "torchvision_gflops": tv["gflops"],
                "torchvision_crop": tv["crop"],
            }
        )
    return out


def _scaled_rows(entries: list[dict], backbone_of) -> list[dict]:
    out = []
    for e in entries:
        backbone = backbone_of(e)
        row = {
            "paper_model": e["model"],
            "model": backbone,
            "d": e["d"],
            "w": e["w"],
            "r": e["r"],
            "resolution": None,
            "params": None,
            "flops": None,
            "gflops": None,
            "paper_gflops": e["flops_b"],
            "deviation_pct": None,
            "paper_top1": e["top1"],
            "note": e.get("note", ""),
        }
        if e["d"] is not None:
            variant = make_variant(backbone, e["d"], e["w"], e["r"], base_resolution=224)
            counted = describe(variant)
            row.update(
                resolution=counted["resolution"],
                params=counted["params"],
                flops=counted["flops"],
                gflops=counted["gflops"],
                deviation_pct=_deviation(counted["gflops"], e["flops_b"]),
            )
        out.append(row)
    return out


def table3() -> list[dict]:
    """Table 3: scaled MobileNetV1, MobileNetV2 and ResNet-50, counted under effscale's rules."""
    return _scaled_rows(reference()["table3"], lambda e: _FAMILY[e["family"]])


def table7() -> list[dict]:
    """Table 7: B0 scaled by depth, width, resolution and compound (the CAM models)."""
    return _scaled_rows(reference()["table7"], lambda e: "efficientnet-b0")


def paper_table(name: str) -> list[dict]:
    if name not in TABLES:
        raise EffscaleError(f"unknown table {name!r}", f"choose one of {', '.join(TABLES)}")
    return {"efficientnet": efficientnet_table, "table3": table3, "table7": table7}[name]()
