"""Backbones: specs, the registry, and the builder that turns a variant into a module.

Specs and the registry need no torch; the modules (``Net``, ``register_block``) load on first
use, so answering from the cost cache never imports torch (which alone takes ~2 s to import).
"""

from dataclasses import replace
from typing import TYPE_CHECKING

from effscale import limits
from effscale.errors import EffscaleError
from effscale.scaling import ALPHA, BETA, GAMMA, Variant, compound, make_variant, scale_spec
from effscale.spec import BackboneSpec, StageSpec, adapt_small_input
from effscale.zoo import efficientnet, mobilenet, resnet  # noqa: F401  (registers them)
from effscale.zoo.footprint import check_footprint
from effscale.zoo.registry import (
    MODULE,
    get_spec,
    list_backbones,
    module_factory,
    register_backbone,
    register_module,
)

if TYPE_CHECKING:
    from effscale.zoo.net import Net

__all__ = [
    "BackboneSpec",
    "StageSpec",
    "Net",
    "register_backbone",
    "register_module",
    "register_block",
    "list_backbones",
    "get_spec",
    "resolve_spec",
    "build_model",
    "variant_for",
    "stage_table",
]


def __getattr__(name: str):
    if name == "Net":
        from effscale.zoo.net import Net

        return Net
    if name == "register_block":
        from effscale.zoo.layers import register_block

        return register_block
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_spec(variant: Variant) -> BackboneSpec:
    """The spec a variant builds: base spec (derived if asked), scaled by (d, w), stem adapted.

    A variant too small for the backbone's strides, or too large to build on this machine
    (zoo.footprint), is refused here, before anything is allocated."""
    spec = get_spec(variant.backbone)
    if spec.family == MODULE:  # any nn.Module: its factory scales it (build_model)
        return spec
    spec = scale_spec(spec, d=variant.base_depth, w=variant.base_width)
    spec = scale_spec(spec, d=variant.d, w=variant.w)
    if variant.small_input:
        spec = adapt_small_input(spec)
    if variant.resolution < spec.total_stride:
        raise EffscaleError(
            f"{variant.resolution} px is too small for {variant.backbone}, whose total "
            f"stride is {spec.total_stride}",
            f"use at least {spec.total_stride} px",
        )
    check_footprint(spec, variant.resolution, variant.label)
    return spec


def check_classes(num_classes: int) -> None:
    """A classifier's class count: 1 to limits.MAX_CLASSES."""
    if num_classes < 1:
        raise EffscaleError(f"num_classes must be at least 1, got {num_classes}")
    limits.at_most("num_classes", num_classes, limits.MAX_CLASSES)


def build_module(variant: Variant, num_classes: int):
    """A register_module backbone built by its factory at the variant's depth and width
    (the base design's multipliers times the variant's)."""
    import torch.nn as nn

    factory = module_factory(variant.backbone)
    d, w = variant.d * variant.base_depth, variant.w * variant.base_width
    try:
        model = factory(depth_mult=d, width_mult=w, num_classes=num_classes)
    except Exception as e:  # the user's code: its error, in one line, with where it came from
        raise EffscaleError(
            f"backbone {variant.backbone!r} failed to build at d={d:g}, w={w:g}: "
            f"{type(e).__name__}: {str(e)[:200]}",
            "its factory takes depth_mult, width_mult and num_classes",
        ) from None
    if not isinstance(model, nn.Module):
        raise EffscaleError(
            f"backbone {variant.backbone!r} returned a {type(model).__name__}, not an nn.Module"
        )
    model.num_classes = num_classes  # what fine-tuning reads to replace a head
    return model


def build_model(variant: Variant, num_classes: int = 1000, **overrides) -> "Net":
    """Build a variant; ``overrides`` replace spec fields such as dropout or drop_path."""
    from effscale.zoo.net import Net

    check_classes(num_classes)
    spec = resolve_spec(variant)
    if spec.family == MODULE:
        return build_module(variant, num_classes)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return Net(replace(spec, **overrides) if overrides else spec, num_classes)


def variant_for(
    backbone: str,
    *,
    depth: float | None = None,
    width: float | None = None,
    res_mult: float | None = None,
    resolution: int | None = None,
    phi: float | None = None,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    base_resolution: int | None = None,
    **kwargs,
) -> Variant:
    """A variant from explicit multipliers (depth, width, and res_mult or a resolution) or a
    compound ``phi``, each unset one 1. The remaining keywords (multiple, small_input,
    base_depth, base_width) go to make_variant, as does ``base_resolution`` (0 or None: the
    backbone's native one)."""
    scaled = {"depth": depth, "width": width, "res_mult": res_mult, "resolution": resolution}
    given = [n for n, v in scaled.items() if v is not None]
    if phi is not None:
        if given:
            raise EffscaleError(
                f"phi sets depth, width and resolution together; it cannot be combined "
                f"with {', '.join(given)}",
                "drop one of them",
            )
        depth, width, res_mult = compound(phi, alpha, beta, gamma)
    if resolution is not None and res_mult is not None:
        raise EffscaleError("resolution and res_mult both set the input size", "give one of them")
    return make_variant(
        backbone,
        depth if depth is not None else 1.0,
        width if width is not None else 1.0,
        res_mult if res_mult is not None else 1.0,
        base_resolution=base_resolution or None,
        resolution=resolution,
        **kwargs,
    )


def stage_table(variant: Variant) -> list[dict]:
    """What the rounding did: per stage, repeats and channels before and after scaling."""
    base = resolve_spec(replace(variant, d=1.0, w=1.0))
    spec = resolve_spec(variant)
    size = variant.resolution
    stem = f"conv{spec.stem_kernel}x{spec.stem_kernel}"
    rows = [("stem", stem, 1, 1, spec.stem_channels, base.stem_channels, spec.stem_stride, size)]
    size = -(-size // spec.stem_stride)
    if spec.stem_pool:
        size = -(-size // 2)
    for i, (s, b) in enumerate(zip(spec.stages, base.stages), 1):
        block = _block_name(s)
        rows.append((f"s{i}", block, s.repeats, b.repeats, s.channels, b.channels, s.stride, size))
        size = -(-size // s.stride)
    if spec.head_channels:
        rows.append(("head", "conv1x1", 1, 1, spec.head_channels, base.head_channels, 1, size))
    return [dict(zip(STAGE_COLUMNS, row)) for row in rows]


STAGE_COLUMNS = (
    "stage",
    "block",
    "repeats",
    "base_repeats",
    "channels",
    "base_channels",
    "stride",
    "input_px",
)


def _block_name(s: StageSpec) -> str:
    """Paper-style block names: MBConv6 k5x5, Bottleneck 3x3 ..."""
    if s.block == "mbconv":
        return f"MBConv{s.expand:g} k{s.kernel}" + ("+SE" if s.se_ratio else "")
    if s.block == "ds":
        return f"DWSep k{s.kernel}"
    if s.block == "bottleneck":
        return f"Bottleneck/{s.mid}"
    if s.block == "basic":
        return "Basic k3"
    return s.block
