"""Any timm model, costed the same way as effscale's own backbones (``timm:NAME``).

timm (huggingface/pytorch-image-models) is an optional extra: ``pip install "effscale[timm]"``.
A timm model is counted by ``effscale.cost.count_model``, the one fvcore path (multiply-adds of
conv / linear / matmul ops at batch 1, every parameter, conv / linear output elements), at the
model's own input size unless another resolution is asked for, and cached on disk like any cost.

Scaling goes through timm's own multipliers where its builders take them: the EfficientNet
generator ``_gen_efficientnet(variant, channel_multiplier, depth_multiplier)`` behind
``efficientnet_b0`` ... ``efficientnet_l2``. Those names' entry points fix their multipliers
(B1 is width 1.0, depth 1.1), so a scaled variant multiplies them: ``timm:efficientnet_b1
--depth 2`` is the B0 design at width 1.0 and depth 2.2. Other timm models are costed at any
resolution, not scaled in depth or width. timm models are costed, not trained.
"""

import hashlib
import json
from functools import cache

from effscale import io
from effscale.errors import EffscaleError

PREFIX = "timm:"
INSTALL = "pip install 'effscale[timm]'; timm needs a torchvision built for your torch"

# timm's efficientnet_* entry points: name -> (channel_multiplier, depth_multiplier), as in
# the docstring of timm.models.efficientnet._gen_efficientnet (the official B0-B8, L2 table).
EFFICIENTNET_MULTIPLIERS = {
    "efficientnet_b0": (1.0, 1.0),
    "efficientnet_b1": (1.0, 1.1),
    "efficientnet_b2": (1.1, 1.2),
    "efficientnet_b3": (1.2, 1.4),
    "efficientnet_b4": (1.4, 1.8),
    "efficientnet_b5": (1.6, 2.2),
    "efficientnet_b6": (1.8, 2.6),
    "efficientnet_b7": (2.0, 3.1),
    "efficientnet_b8": (2.2, 3.6),
    "efficientnet_l2": (4.3, 5.3),
}


def is_timm(name: str) -> bool:
    return name.startswith(PREFIX)


def _timm():
    """The timm module, or one line that says how to get it."""
    try:
        import timm
    except ModuleNotFoundError as e:
        missing = e.name or "timm"
        message = f"{missing} is not installed, and timm: models need it"
        raise EffscaleError(message, INSTALL) from None
    except Exception as e:  # e.g. a torchvision built for another torch
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]
        raise EffscaleError(f"timm is installed but cannot be imported: {first}", INSTALL) from None
    return timm


def list_timm(pattern: str = "timm:*") -> list[str]:
    """timm's model names matching a wildcard (``timm:*eff*``), with the ``timm:`` prefix."""
    names = _timm().list_models(pattern.removeprefix(PREFIX) or "*")
    return [PREFIX + n for n in names]


def _check_name(name: str) -> str:
    bare = name.removeprefix(PREFIX)
    timm = _timm()
    if bare not in timm.list_models(bare):
        import difflib

        close = difflib.get_close_matches(bare, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(PREFIX + c for c in close)}?" if close else None
        raise EffscaleError(f"timm has no model {bare!r}", hint or "see `effscale models 'timm:*'`")
    return bare


def build_timm(name: str, d: float = 1.0, w: float = 1.0, num_classes: int = 1000):
    """A timm model without pretrained weights; d and w through timm's own multipliers."""
    bare = _check_name(name)
    timm = _timm()
    if d == 1.0 and w == 1.0:
        return timm.create_model(bare, pretrained=False, num_classes=num_classes)
    if bare not in EFFICIENTNET_MULTIPLIERS:
        raise EffscaleError(
            f"timm's builder for {bare} takes no depth or width multiplier here",
            f"scale one of {', '.join(PREFIX + n for n in EFFICIENTNET_MULTIPLIERS)}, or give "
            "only --resolution / --res-mult",
        )
    from timm.models.efficientnet import _gen_efficientnet

    w0, d0 = EFFICIENTNET_MULTIPLIERS[bare]
    return _gen_efficientnet(
        bare,
        channel_multiplier=w0 * w,
        depth_multiplier=d0 * d,
        pretrained=False,
        num_classes=num_classes,
    )


def native_resolution(model) -> int:
    """The input side timm's pretrained config names (224 when it names none)."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size") or (3, 224, 224)
    return int(size[-1])


@cache
def _version() -> str:
    return getattr(_timm(), "__version__", "?")


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
    from effscale.cost import count_model

    blob = json.dumps([1, _version(), name, d, w, resolution, num_classes])
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
                "reference": f"timm {_version()}",
            }
        )
    return rows
