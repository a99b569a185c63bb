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

from functools import cache

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
            "only `resolution`=/ `res_mult`",
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
def timm_version() -> str:
    return getattr(_timm(), "__version__", "?")
