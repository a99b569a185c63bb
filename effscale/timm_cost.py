"""timm models costed as effscale's own backbones are (``effscale cost timm:NAME``,
``effscale models 'timm:*'``): built by effscale.zoo.timm_models, counted by fvcore with
effscale's convention (effscale.cost.count_model), cached by timm's version."""

import hashlib
import json

from effscale import io
from effscale.cost import count_model
from effscale.errors import EffscaleError
from effscale.zoo.timm_models import build_timm, list_timm, native_resolution, timm_version


def timm_cost(
    name: str,
    *,
    d: float = 1.0,
    w: float = 1.0,
    resolution: int | None = None,
    num_classes: int = 1000,
) -> dict:
    """Counted cost of a timm model: ``{"resolution", "native_resolution", "flops", "params",
    "activations"}``, from the on-disk cache when counted before (keyed by timm's version)."""
    blob = json.dumps([1, timm_version(), name, d, w, resolution, num_classes])
    path = io.cache_dir() / "cost" / f"timm-{hashlib.sha256(blob.encode()).hexdigest()[:32]}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass  # a damaged entry is recounted
    model = build_timm(name, d, w, num_classes)
    native = native_resolution(model)
    size = resolution or native
    if size < 8:
        raise EffscaleError(f"resolution must be at least 8 px, got {size}")
    cost = count_model(model, size)
    result = {"resolution": size, "native_resolution": native, **cost.to_dict()}
    io.write_json(path, result)
    return result


def describe_timm(
    name: str,
    *,
    d: float = 1.0,
    w: float = 1.0,
    r: float | None = None,
    resolution: int | None = None,
    multiple: int = 4,
    num_classes: int = 1000,
) -> dict:
    """One cost row of a timm model, in the shape of effscale.cost.describe: the variant, its
    exact counts, and target vs realised FLOPs ratio to the unscaled model at its own size."""
    from effscale.scaling import round_resolution

    if r is not None and resolution is not None:
        raise EffscaleError("resolution and r both set the input size", "give one")
    base = timm_cost(name, num_classes=num_classes)
    native = base["native_resolution"]
    if r is not None:
        resolution = round_resolution(native, r, multiple)
    cost = timm_cost(name, d=d, w=w, resolution=resolution, num_classes=num_classes)
    r = cost["resolution"] / native
    return {
        "model": name,
        "d": d,
        "w": w,
        "r": round(r, 4),
        "resolution": cost["resolution"],
        "base_resolution": native,
        "flops": cost["flops"],
        "gflops": round(cost["flops"] / 1e9, 4),
        "params": cost["params"],
        "activations": cost["activations"],
        "target_flops_ratio": round(d * w * w * r * r, 4),
        "realised_flops_ratio": round(cost["flops"] / base["flops"], 4),
    }


def timm_costs(pattern: str) -> list[dict]:
    """``effscale models 'timm:*eff*'``: each matching timm model at its own input size."""
    rows = []
    for name in list_timm(pattern):
        cost = timm_cost(name)
        rows.append(
            {
                "model": name,
                "family": "timm",
                "resolution": cost["resolution"],
                "params": cost["params"],
                "flops": cost["flops"],
                "gflops": round(cost["flops"] / 1e9, 4),
                "activations": cost["activations"],
                "reference": f"timm {timm_version()}",
            }
        )
    return rows
