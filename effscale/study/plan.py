"""Planning a study: a set of points (variant x seed x recipe x data), each with a stable key.

A point's key is a hash of everything its training depends on, so a point planned twice
(a width sweep's w=1.4 and a Figure-8 match that happens to be the same variant) is
trained once, and a finished point is found again by any later study. What a point is
*for* lives in its roles ("width", "compound", "match-depth" ...), which are not in the key.
"""

import hashlib
import json
from dataclasses import dataclass, field, replace

from effscale.cost import count_cost
from effscale.errors import EffscaleError
from effscale.recipe import Recipe
from effscale.scaling import (
    DIMENSIONS,
    Variant,
    compound_variants,
    make_variant,
    match_flops,
)
from effscale.zoo import resolve_spec

# Paper Figure 3: the values labelled on each panel.
FIGURE3_VALUES = {
    "width": [1.0, 1.4, 1.8, 2.6, 3.8, 5.0],
    "depth": [1.0, 2.0, 3.0, 4.0, 6.0, 8.0],
    "resolution": [1.0, 1.3, 1.5, 1.7, 1.9, 2.2, 2.5],
}


@dataclass(frozen=True)
class Point:
    variant: Variant
    seed: int
    recipe: Recipe
    data: str  # dataset spec as load_dataset takes it
    roles: tuple[str, ...] = ()  # what the point is for: base, width, compound, match-depth ...
    phi: float | None = None  # for compound points and their matches
    init_from: str | None = None  # key of the point whose checkpoint it fine-tunes (transfer)
    scaling: str | None = None  # compound points and their matches: the rule, e.g. the
    #                             coefficients "alpha=1.2 beta=1.1 gamma=1.15" (not in the key)
    # The other Figure-8 cells the same run serves, as (roles, phi, scaling): two rules'
    # matched points can be the same network (depth moves in whole blocks), trained once.
    also: tuple[tuple[tuple[str, ...], float | None, str | None], ...] = ()

    @property
    def key(self) -> str:
        blob = json.dumps(
            [self.variant.to_dict(), self.seed, self.recipe.to_dict(), self.data, self.init_from],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "variant": self.variant.to_dict(),
            "seed": self.seed,
            "recipe": self.recipe.to_dict(),
            "data": self.data,
            "roles": list(self.roles),
            "phi": self.phi,
            "init_from": self.init_from,
            **({"scaling": self.scaling} if self.scaling else {}),
            **(
                {"also": [{"roles": list(r), "phi": f, "scaling": s} for r, f, s in self.also]}
                if self.also
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Point":
        variant = Variant.from_dict(d["variant"])
        return cls(
            variant,
            d["seed"],
            Recipe.from_dict(d["recipe"]),
            d["data"],
            tuple(d["roles"]),
            d.get("phi"),
            d.get("init_from"),
            d.get("scaling"),
            tuple((tuple(c["roles"]), c.get("phi"), c.get("scaling")) for c in d.get("also", [])),
        )


def recipe_identity(recipe: Recipe) -> dict:
    """The recipe as a study's identity holds it: without its samples, since budgets are an
    axis of a study (a run directory takes points at more budgets later)."""
    return {k: v for k, v in recipe.to_dict().items() if k != "samples"}


def at_budgets(recipe: Recipe, budgets: list[int] | None) -> list[Recipe]:
    """The recipe once per training budget (its own samples when none are given)."""
    return [replace(recipe, samples=s) for s in budgets] if budgets else [recipe]


@dataclass
class Study:
    """A named set of points. ``identity`` is what a run directory must agree on to reuse it."""

    name: str
    identity: dict
    points: list[Point] = field(default_factory=list)
    # Torch threads per point that a study file asks for: how to run it, not its identity.
    threads: int | None = None
    # Its [slurm] table: Slurm settings for when it runs there (the CLI's options win).
    slurm: dict = field(default_factory=dict)
    log: tuple[str, ...] = ()  # trackers its points also log to (effscale.tracking)

    def add(self, point: Point) -> None:
        """Add a point; one already planned gains the new roles, or, when it was planned for
        another Figure-8 cell (phi and scaling rule), the new cell (``also``)."""
        for i, p in enumerate(self.points):
            if p.key != point.key:
                continue
            cell = (point.phi, point.scaling)
            # A stored point without a rule was planned before plans recorded one (the
            # first Imagenette points): it is this cell's, not a second cell beside it.
            if (
                cell == (None, None)
                or (p.phi, p.scaling) == cell
                or (p.scaling is None and p.phi in (None, point.phi))
            ):
                self.points[i] = replace(
                    p,
                    roles=tuple(dict.fromkeys(p.roles + point.roles)),
                    phi=p.phi if p.phi is not None else point.phi,
                    scaling=p.scaling or point.scaling,
                )
                return
            also = list(p.also)
            for j, (roles, phi, scaling) in enumerate(also):
                if (phi, scaling) == cell:
                    also[j] = (tuple(dict.fromkeys(roles + point.roles)), phi, scaling)
                    break
            else:
                also.append((point.roles, point.phi, point.scaling))
            self.points[i] = replace(p, also=tuple(also))
            return
        self.points.append(point)

    def add_all(self, points: list[Point]) -> "Study":
        """Add planned points in order (see add); the study, to chain."""
        for point in points:
            self.add(point)
        return self

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "identity": self.identity,
            "points": [p.to_dict() for p in self.points],
        }


# What Figure 8's single-dimension points can be matched to the compound point by, and the
# dimensions that can match it: resolution adds no parameters, so it cannot match those.
MATCH_BY = {"flops": DIMENSIONS, "params": ("depth", "width"), "activations": DIMENSIONS,
            "latency": DIMENSIONS}  # fmt: skip


# What makes points comparable: the same backbone, data, recipe (protocol) and base design.
TRAINED_ON = ("model", "data", "recipe", "base")


def extends(old: dict, new: dict) -> bool:
    """Whether a sweep or compound study (identity ``new``) may add its points to a run
    directory holding another (``old``): a depth sweep into a width sweep's directory, a
    compound scaling beside them. They must be trained alike (TRAINED_ON); a grid search's
    or a study file's directory holds only its own kind."""
    kinds = ("sweep", "compound")
    return (
        old.get("kind") in kinds
        and new.get("kind") in kinds
        and all(old.get(k) == new.get(k) for k in TRAINED_ON)
    )


@dataclass(frozen=True)
class Base:
    """Where a study starts: the backbone, its derived base design and the base resolution."""

    model: str
    base_resolution: int
    base_width: float = 1.0
    base_depth: float = 1.0
    multiple: int = 4
    small_input: bool | None = None

    @property
    def design(self) -> dict:
        """The base design's options beside the base resolution, as make_variant takes them."""
        return {
            k: getattr(self, k) for k in ("multiple", "small_input", "base_depth", "base_width")
        }

    def variant(self, d: float = 1.0, w: float = 1.0, r: float = 1.0) -> Variant:
        return make_variant(
            self.model, d, w, r, base_resolution=self.base_resolution, **self.design
        )

    def compound(self, phis: list[float], **rule) -> list[tuple[float, Variant]]:
        """(phi, variant) per phi; ``rule``: compound_variants' alpha, beta, gamma, table."""
        return compound_variants(
            self.model, phis, base_resolution=self.base_resolution, **self.design, **rule
        )


def seed_list(n: int) -> list[int]:
    """Seeds 0 .. n-1."""
    if n < 1:
        raise EffscaleError(f"a study needs at least 1 seed, got {n}")
    return list(range(n))


def _check_values(dim: str, values: list[float]) -> None:
    if dim not in DIMENSIONS:
        raise EffscaleError(f"unknown dimension {dim!r}", f"use one of {', '.join(DIMENSIONS)}")
    if not values:
        raise EffscaleError(f"no values to sweep along {dim}", "give e.g. `values`=1,1.4,2")


def sweep_variants(base: Base, dim: str, values: list[float]) -> list[tuple[str, Variant]]:
    """(role, variant) per value of one dimension scaled alone, the base (1.0) first."""
    _check_values(dim, values)
    return [
        ("base" if value == 1.0 else dim, base.variant(**{dim[0]: value}))
        for value in sorted(set([1.0] + list(values)))
    ]


def plan_sweep(
    base: Base,
    dim: str,
    values: list[float],
    seeds: list[int],
    recipe: Recipe,
    data: str,
) -> list[Point]:
    """Scale one dimension alone (paper Figure 3); the base point is always included."""
    return [
        Point(variant, seed, recipe, data, (role,))
        for role, variant in sweep_variants(base, dim, values)
        for seed in seeds
    ]


def plan_compound(
    base: Base,
    phis: list[float],
    seeds: list[int],
    recipe: Recipe,
    data: str,
    *,
    alpha: float,
    beta: float,
    gamma: float,
    table: str = "formula",
    match_single: bool = False,
    num_classes: int = 10,
    match: str = "flops",
    device: str = "cpu",
    metric=None,
) -> list[Point]:
    """Compound points along phi (Equation 3 or the official table), with the base, and, for
    Figure 8, each dimension alone scaled to the compound point's counted FLOPs (``match``:
    or its parameters, or its activations, which predict GPU time better than FLOPs, or its
    latency on ``device``, measured; at equal parameters resolution is no match, since it
    adds none). A latency match is as exact as the timing: its noise, a few per cent of the
    median on a quiet machine, is the match's tolerance."""
    if match not in MATCH_BY:
        raise EffscaleError(f"unknown match {match!r}", f"use one of {', '.join(MATCH_BY)}")
    variants = base.compound(phis, alpha=alpha, beta=beta, gamma=gamma, table=table)
    for _, variant in variants:  # each buildable here, before any is counted
        resolve_spec(variant)
    points = [Point(base.variant(), seed, recipe, data, ("base",)) for seed in seeds]
    rule = "official B0-B7 table" if table == "official" else (
        f"alpha={alpha:g} beta={beta:g} gamma={gamma:g}"
    )  # fmt: skip
    if match != "flops":  # another cell than the FLOPs-matched one, and named so
        rule += f", matched by {match}" + (f" ({device}, batch 1)" if match == "latency" else "")
    if metric is None and match == "latency":  # measured, not counted: the caller times it
        raise EffscaleError("a latency match needs its timer", "use `match`=latency")
    metric = metric or (lambda v: getattr(count_cost(v, num_classes), match))
    for phi, variant in variants:
        role = "base" if phi == 0 else "compound"
        for seed in seeds:
            points.append(Point(variant, seed, recipe, data, (role,), phi=phi, scaling=rule))
        if match_single and phi != 0:
            target = metric(variant)
            for dim in MATCH_BY[match]:
                # A rule that scales one dimension alone (a Step 1 that chose width alone)
                # makes the compound network that dimension's match, at exactly the target:
                # train it once rather than again at a multiplier one rounding step away.
                matched = variant if variant.scaled_dimensions == (dim,) else match_flops(
                    base.variant(),
                    dim,
                    target,
                    metric,
                    base.multiple,
                )  # fmt: skip
                for seed in seeds:
                    points.append(
                        Point(matched, seed, recipe, data, (f"match-{dim}",), phi=phi, scaling=rule)
                    )
    return points


def plan_transfer(
    sources: list[Point],
    seeds: list[int],
    finetune: str,
    *,
    finetune_samples: int | None = None,
    scratch: bool = False,
) -> list[Point]:
    """Pre-train variants on one dataset, then fine-tune them on another (paper Table 5).

    ``sources``: the pre-training points, one or more seeds per variant. Per variant and
    fine-tune seed, a "transfer" point on ``finetune`` starts from that variant's pre-training
    at the same seed, or at its first seed when fewer were pre-trained (three fine-tunes of
    one pre-trained checkpoint measure the fine-tune's noise, not the pre-training's); a
    fresh classifier when the class counts differ. ``scratch``: beside each, a "scratch"
    point, the same network trained on ``finetune`` from random weights at the same budget,
    which says what pre-training adds. The engine runs a fine-tune only after its
    pre-training has finished.
    """
    if finetune_samples is not None and finetune_samples < 1:
        raise EffscaleError(f"finetune_samples must be at least 1, got {finetune_samples}")
    for source in sources:
        if source.data == finetune:
            raise EffscaleError(
                f"transfer pre-trains and fine-tunes on the same data ({finetune!r})",
                "name two datasets, e.g. pretrain = 'embedded', finetune = 'cifar100'",
            )
    by_variant: dict[Variant, dict[int, Point]] = {}
    for source in sources:
        by_variant.setdefault(source.variant, {})[source.seed] = replace(
            source, roles=("pretrain",), phi=None, scaling=None, also=()
        )
    points = []
    for variant, pretrained in by_variant.items():
        points += pretrained.values()
        for seed in seeds:
            source = pretrained.get(seed) or next(iter(pretrained.values()))
            tune = replace(source.recipe, samples=finetune_samples or source.recipe.samples)
            points.append(Point(variant, seed, tune, finetune, ("transfer",), init_from=source.key))
            if scratch:
                points.append(Point(variant, seed, tune, finetune, ("scratch",)))
    return points
