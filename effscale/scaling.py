"""Scaling rules: depth, width, resolution and the compound coefficient.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
ICML 2019 (arXiv 1905.11946), Equation 3: d = alpha^phi, w = beta^phi, r = gamma^phi with
alpha * beta^2 * gamma^2 ~= 2, so FLOPs grow by about 2^phi. Rounding follows the official
code (tensorflow/tpu models/official/efficientnet): ``round_filters`` snaps channels to
multiples of 8 without losing more than 10 %, ``round_repeats`` takes the ceiling.
Rules act on specs, never on built modules.
"""

import math
import re
from dataclasses import dataclass, replace

from effscale import limits
from effscale.errors import EffscaleError
from effscale.spec import BackboneSpec

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's Step 1 result for B0

# The official B0-B7 table (efficientnet_builder.py, efficientnet_params):
# name: (width_coefficient, depth_coefficient, resolution, dropout_rate).
# It is not Equation 3 at integer phi: B1 is (w 1.0, d 1.1, 240 px), phi = 1 gives
# (w 1.1, d 1.2, r 1.15). Both are offered, named apart.
EFFICIENTNET_PARAMS = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2),
    "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3),
    "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4),
    "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5),
    "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}

DIMENSIONS = ("depth", "width", "resolution")


# --------------------------------------------------------------------------------------
# Rounding (official code)
# --------------------------------------------------------------------------------------


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels x width, snapped to a multiple of ``divisor`` and never 10 % below."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Repeats x depth, rounded up (the official ``round_repeats``)."""
    return int(math.ceil(depth * repeats))


def round_resolution(base: int, r: float, multiple: int = 4) -> int:
    """Base resolution x r, rounded to the nearest multiple of ``multiple`` (r = 1: base)."""
    if r == 1.0:
        return base
    return max(multiple, int(round(base * r / multiple)) * multiple)


def scale_spec(spec: BackboneSpec, d: float = 1.0, w: float = 1.0) -> BackboneSpec:
    """Scale every stage's repeats by d and every channel count (stem and head too) by w."""
    if d == 1.0 and w == 1.0:
        return spec
    div = spec.channel_divisor
    stages = tuple(
        replace(
            s,
            repeats=round_repeats(s.repeats, d),
            channels=round_filters(s.channels, w, div),
            # a grouped conv needs its width divisible by its groups at every w
            mid=round_filters(s.mid, w, math.lcm(div, s.groups)) if s.mid else 0,
        )
        for s in spec.stages
    )
    return replace(
        spec,
        stages=stages,
        stem_channels=round_filters(spec.stem_channels, w, div),
        head_channels=round_filters(spec.head_channels, w, div) if spec.head_channels else 0,
    )


def compound(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA):
    """Equation 3: (d, w, r) = (alpha^phi, beta^phi, gamma^phi)."""
    try:
        d, w, r = alpha**phi, beta**phi, gamma**phi
    except OverflowError:
        d = w = r = math.inf
    if not all(math.isfinite(m) for m in (d, w, r)):
        raise EffscaleError(
            f"phi={phi:g} overflows: alpha^phi, beta^phi or gamma^phi is not a finite number",
            "use a phi that gives a network this machine can hold, e.g. 0 to 7",
        )
    return d, w, r


def flops_ratio(d: float, w: float, r: float) -> float:
    """The FLOPs growth a regular conv net would see: d x w^2 x r^2 (the paper's target)."""
    return d * w * w * r * r


# --------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A backbone at multipliers (d, w, r) of its base design and base resolution.

    ``resolution`` is the realised input size in pixels after rounding; ``small_input``
    says whether the stem was adapted for small images (see spec.adapt_small_input).
    ``base_depth`` and ``base_width`` first derive a smaller or larger base design from the
    registered one (a study's base, e.g. B0 at width 0.5); d and w then scale that base.
    """

    backbone: str
    d: float = 1.0
    w: float = 1.0
    r: float = 1.0
    resolution: int = 224
    base_resolution: int = 224
    small_input: bool = False
    base_depth: float = 1.0
    base_width: float = 1.0

    @property
    def base_name(self) -> str:
        """The backbone, with the derived base's multipliers when it is not the registered one."""
        derived = [
            f"{k}{v:g}" for k, v in (("d", self.base_depth), ("w", self.base_width)) if v != 1.0
        ]
        return f"{self.backbone}[{','.join(derived)}]" if derived else self.backbone

    @property
    def scaled_dimensions(self) -> tuple[str, ...]:
        """The dimensions this variant scales away from its base design, in DIMENSIONS order."""
        return tuple(dim for dim, m in zip(DIMENSIONS, (self.d, self.w, self.r)) if m != 1.0)

    @property
    def target_flops_ratio(self) -> float:
        return flops_ratio(self.d, self.w, self.r)

    @property
    def label(self) -> str:
        parts = [f"d={self.d:.4g}", f"w={self.w:.4g}", f"{self.resolution}px"]  # as reports
        if self.small_input:
            parts.append("small-input stem")
        return f"{self.base_name} ({', '.join(parts)})"

    @property
    def short_label(self) -> str:
        """The label for narrow screens: ``b0[w0.25] d2.33 w1 32px`` (for efficientnet-b0)."""
        name = self.base_name.removeprefix("efficientnet-")
        return f"{name} d{self.d:.3g} w{self.w:.3g} {self.resolution}px"

    @classmethod
    def from_row(cls, row) -> "Variant":
        """The variant a results-table row describes (a dict or a pandas row)."""
        return cls(
            backbone=str(row["model"]),
            d=float(row["d"]),
            w=float(row["w"]),
            r=float(row["r"]),
            resolution=int(row["resolution"]),
            base_resolution=int(row["base_resolution"]),
            small_input=str(row["small_input"]).lower() in ("true", "1", "1.0"),
            base_depth=float(row["base_depth"]),
            base_width=float(row["base_width"]),
        )

    @classmethod
    def from_dict(cls, d: dict) -> "Variant":
        """The inverse of to_dict (as stored in config.json, checkpoints and study.json)."""
        d = dict(d)
        return cls(backbone=d.pop("model"), **d)

    def to_dict(self) -> dict:
        return {
            "model": self.backbone,
            "base_depth": self.base_depth,
            "base_width": self.base_width,
            "d": self.d,
            "w": self.w,
            "r": self.r,
            "resolution": self.resolution,
            "base_resolution": self.base_resolution,
            "small_input": self.small_input,
        }


SMALL_INPUT_BELOW = 64  # px: below this base resolution the stem is adapted by default


def make_variant(
    backbone: str,
    d: float = 1.0,
    w: float = 1.0,
    r: float = 1.0,
    *,
    base_resolution: int | None = None,
    resolution: int | None = None,
    multiple: int = 4,
    small_input: bool | None = None,
    base_depth: float = 1.0,
    base_width: float = 1.0,
) -> Variant:
    """A validated variant of a registered backbone, the one way to build one.

    ``base_resolution`` defaults to the backbone's native resolution (224 px for B0);
    ``resolution`` (px) overrides ``base_resolution x r``; ``small_input`` defaults to on
    below 64 px. ``base_depth`` and ``base_width`` derive the base design d and w scale.
    """
    if base_resolution is None:
        from effscale.zoo.registry import get_spec

        base_resolution = get_spec(backbone).resolution
    for name, value in (
        ("depth", d),
        ("width", w),
        ("resolution multiplier", r),
        ("base depth", base_depth),
        ("base width", base_width),
    ):
        if not value > 0 or not math.isfinite(value):
            raise EffscaleError(
                f"{name} must be a positive number, got {value:g}",
                "multipliers are relative to the base design, 1 = unscaled",
            )
        limits.at_most(name, value, limits.MAX_MULTIPLIER)
    if base_resolution < 1:
        raise EffscaleError(f"base resolution must be positive, got {base_resolution}")
    limits.at_most("base resolution", base_resolution, limits.MAX_RESOLUTION)
    if resolution is not None:
        limits.at_most("resolution", resolution, limits.MAX_RESOLUTION)
    if multiple < 1:
        raise EffscaleError(f"resolution multiple must be at least 1, got {multiple}")
    if resolution is None:
        resolution = round_resolution(base_resolution, r, multiple)
    else:
        if resolution < 1:
            raise EffscaleError(f"resolution must be positive, got {resolution} px")
        r = resolution / base_resolution
    if small_input is None:
        from effscale.zoo.registry import module_factory

        # a register_module network has no stem effscale adapts: it takes any input as is
        small_input = base_resolution < SMALL_INPUT_BELOW and module_factory(backbone) is None
    return Variant(
        backbone,
        float(d),
        float(w),
        float(r),
        int(resolution),
        int(base_resolution),
        bool(small_input),
        float(base_depth),
        float(base_width),
    )


# --------------------------------------------------------------------------------------
# Ranges: "1..7", "0..2:0.5", "1,1.4,2", "3"
# --------------------------------------------------------------------------------------

_NUM = r"-?\d+(?:\.\d*)?|-?\.\d+"
_RANGE = re.compile(rf"^\s*({_NUM})\s*\.\.\s*({_NUM})\s*(?::\s*({_NUM}))?\s*$")


def parse_range(text: str) -> list[float]:
    """Parse ``a..b`` (step 1, inclusive), ``a..b:step`` or a comma list into numbers."""
    text = str(text).strip()
    if not text:
        raise EffscaleError("empty range", "write 1..7, 0..2:0.5 or 1,1.4,2")
    m = _RANGE.match(text)
    if m:
        start, stop = float(m.group(1)), float(m.group(2))
        step = float(m.group(3)) if m.group(3) else 1.0
        if step <= 0:
            raise EffscaleError(f"range step must be positive in {text!r}", "write 0..2:0.5")
        if not all(math.isfinite(v) for v in (start, stop, step)):
            raise EffscaleError(f"range {text!r} holds a value that is not a finite number")
        n = math.floor((stop - start) / step + 1e-9) + 1
        limits.count_at_most(f"range {text!r}", n)
        values = [round(start + i * step, 10) for i in range(max(n, 0))]
        if not values:
            raise EffscaleError(
                f"range {text!r} is empty",
                f"write the smaller end first: {m.group(2)}..{m.group(1)}",
            )
        return values
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EffscaleError(
            f"cannot read {text!r} as a range", "write 1..7, 0..2:0.5 or 1,1.4,2"
        ) from None
    if not values:
        raise EffscaleError(f"range {text!r} is empty", "write 1..7, 0..2:0.5 or 1,1.4,2")
    limits.count_at_most("the list", len(values))
    if not all(math.isfinite(v) for v in values):
        raise EffscaleError(f"range {text!r} holds a value that is not a finite number")
    return values


def compound_variants(
    backbone: str,
    phis: list[float],
    *,
    base_resolution: int,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    table: str = "formula",
    multiple: int = 4,
    small_input: bool | None = None,
    base_depth: float = 1.0,
    base_width: float = 1.0,
) -> list[tuple[float, Variant]]:
    """Variants along phi, by Equation 3 (``formula``) or the published B0-B7 (``official``).

    The official table is defined on B0, at integer phi 0..7; its resolutions (240 ... 600
    px at a 224 base) scale with the base resolution.
    """
    if table not in ("formula", "official"):
        raise EffscaleError(f"unknown compound table {table!r}", "use formula or official")
    if alpha < 1 or beta < 1 or gamma < 1:
        raise EffscaleError(
            f"alpha, beta, gamma must be at least 1, got {alpha:g}, {beta:g}, {gamma:g}",
            "Equation 3 scales up every dimension; scale down with a negative phi",
        )
    out = []
    for phi in phis:
        if table == "official":
            name = f"efficientnet-b{int(phi)}"
            if backbone != "efficientnet-b0":
                raise EffscaleError(
                    f"the official table scales efficientnet-b0, not {backbone}",
                    "use the formula (Equation 3) instead of the official table",
                )
            if phi != int(phi) or name not in EFFICIENTNET_PARAMS:
                raise EffscaleError(
                    f"the official table has B0-B7 only, got phi={phi:g}",
                    "use whole phis from 0 to 7",
                )
            w, d, px, _ = EFFICIENTNET_PARAMS[name]
            r = px / 224
        else:
            d, w, r = compound(phi, alpha, beta, gamma)
        out.append(
            (
                phi,
                make_variant(
                    backbone,
                    d,
                    w,
                    r,
                    base_resolution=base_resolution,
                    multiple=multiple,
                    small_input=small_input,
                    base_depth=base_depth,
                    base_width=base_width,
                ),
            )
        )
    return out


# --------------------------------------------------------------------------------------
# Equal-FLOPs matching (paper Figure 8 compares methods at the same FLOPs)
# --------------------------------------------------------------------------------------


def match_flops(
    base: Variant, dim: str, target_flops: int, flops_of, multiple: int = 4, hi: float = 16.0
) -> Variant:
    """The single-dimension variant of ``base`` whose counted FLOPs come closest to a target.

    ``flops_of(variant) -> int`` counts FLOPs (effscale.cost.count_cost(...).flops). Counted
    FLOPs grow monotonically, in steps, with each multiplier, so a bisection finds the
    smallest multiplier reaching the target; the step just below is the other candidate.
    """
    if dim not in DIMENSIONS:
        raise EffscaleError(f"unknown dimension {dim!r}", f"use one of {', '.join(DIMENSIONS)}")

    def at(m: float) -> Variant:
        kw = {"d": base.d, "w": base.w, "r": base.r}
        kw[dim[0]] = m
        return make_variant(
            base.backbone,
            **kw,
            base_resolution=base.base_resolution,
            multiple=multiple,
            small_input=base.small_input,
            base_depth=base.base_depth,
            base_width=base.base_width,
        )

    # Counting a variant traces it, and a trace of a 16x network takes minutes. FLOPs grow
    # monotonically with the multiplier, so a probe above a multiplier known to reach the
    # target reaches it too: first bracket the target from below by doublings (small
    # networks), then bisect over [1, hi] exactly as before, counting only the probes that
    # monotonicity cannot answer. The multipliers found are the same as a plain bisection's.
    reaches: dict[float, bool] = {}

    def reached(m: float) -> bool:
        if any(r and k <= m for k, r in reaches.items()):
            return True
        if any(not r and k >= m for k, r in reaches.items()):
            return False
        reaches[m] = flops_of(at(m)) >= target_flops
        return reaches[m]

    m = 2.0
    while m < hi and not reached(m):
        m *= 2
    lo, high = 1.0, hi
    if not reached(high):
        raise EffscaleError(
            f"{dim} x{hi:g} does not reach the target FLOPs", "scale a smaller compound point"
        )
    for _ in range(40):  # bisection to a 1e-6 relative step: enough for any rounding rule
        mid = (lo + high) / 2
        if reached(mid):
            high = mid
        else:
            lo = mid
        if high - lo < 1e-6 * high:
            break
    above = at(math.ceil(high * 1000) / 1000)  # a tidy multiplier, if it rounds the same way
    if flops_of(above) != flops_of(at(high)):
        above = at(round(high, 6))
    below = at(lo)
    return min((above, below), key=lambda v: abs(flops_of(v) - target_flops))
