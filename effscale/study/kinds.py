"""The studies a command plans: a sweep, a compound scaling, a grid search.

Each is planned from its settings and named with its identity (what a run directory must
agree on), as a study file is (effscale.study.files); the ``*_costs`` functions count
what ``--cost-only`` prints, at the resolution and class count training would use.
"""

from contextlib import nullcontext
from dataclasses import dataclass

from effscale.recipe import Recipe, budget, samples_for_epochs
from effscale.study.plan import (
    Base,
    Study,
    at_budgets,
    plan_compound,
    plan_sweep,
    recipe_identity,
    sweep_variants,
)


@dataclass(frozen=True)
class Setting:
    """What each study starts from: the data (its spec and its sizes, classes and resolution:
    effscale.data.cache.DataFacts), the recipe and its training budgets (None: the recipe's
    own samples), and the base."""

    data: str
    dataset: object
    recipe: Recipe
    budgets: list[int] | None
    base: Base


def study_base(
    model: str,
    data: str,
    base_resolution: int | None = None,
    base_width: float = 1.0,
    base_depth: float = 1.0,
    multiple: int = 4,
    small_input: bool | None = None,
) -> tuple[Base, object]:
    """The base a study on ``data`` starts from (at the data's resolution unless
    ``base_resolution``), and the dataset's facts (effscale.data.cache.DataFacts)."""
    from effscale.data.cache import facts
    from effscale.errors import EffscaleError
    from effscale.scaling import make_variant
    from effscale.zoo import get_spec

    get_spec(model)  # an unknown model fails here, before any data is loaded
    if base_resolution is not None and base_resolution < 1:  # 0 is not "the data's"
        raise EffscaleError(f"base resolution must be positive, got {base_resolution}")
    ds = facts(data)  # sizes, classes, resolution: nothing downloaded to plan
    base = Base(
        model,
        ds.resolution if base_resolution is None else base_resolution,
        base_width,
        base_depth,
        multiple,
        small_input,
    )
    make_variant(model, base_resolution=base.base_resolution, **base.design)  # checked now
    return base, ds


def study_setting(
    model: str,
    data: str = "embedded",
    budget_name: str = "short",
    *,
    budgets: list[int] | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    schedule: str | None = None,
    **base,
) -> Setting:
    """The setting of a sweep, compound or search: ``budgets`` (training samples), or
    ``epochs`` passes over the data; ``base``: study_base's options."""
    from effscale.zoo import get_spec

    get_spec(model)  # an unknown model fails first, before the recipe or any data
    recipe = budget(budget_name, lr=lr, batch_size=batch_size, schedule=schedule).validate()
    base_, ds = study_base(model, data, **base)
    if epochs is not None:
        budgets = [samples_for_epochs(epochs, ds.train)]
    return Setting(data, ds, recipe, budgets, base_)


def _identity(kind: str, s: Setting, recipe: dict, **more) -> dict:
    """A study's identity: its kind and settings (in the order stored results hold them)."""
    model, base = s.base.model, s.base.__dict__
    return {"kind": kind, "model": model, **more, "data": s.data, "recipe": recipe, "base": base}


def sweep_study(
    s: Setting, dim: str, values: list[float], seeds: list[int], planning=nullcontext
) -> Study:
    """One dimension scaled alone (paper Figure 3) at each budget; ``planning(what)``: a
    context held while the points are planned (the command line's status line)."""
    identity = _identity("sweep", s, recipe_identity(s.recipe), dim=dim)
    study = Study(f"sweep-{s.base.model}-{dim}", identity)
    with planning(f"planning {study.name}"):
        for r in at_budgets(s.recipe, s.budgets):
            study.add_all(plan_sweep(s.base, dim, values, seeds, r, s.data))
    return study


def compound_study(
    s: Setting,
    phis: list[float],
    seeds: list[int],
    *,
    alpha: float,
    beta: float,
    gamma: float,
    table: str = "formula",
    match_single: bool = False,
    planning=nullcontext,
    match: str = "flops",
    device: str = "cpu",
) -> Study:
    """Compound scaling along phi at each budget (effscale.study.plan.plan_compound)."""
    rule = {"alpha": alpha, "beta": beta, "gamma": gamma, "table": table}
    if match != "flops":  # studies matched by FLOPs keep the identity they always had
        rule["match"] = match
    if match == "latency":  # measured where the study says, not counted
        rule["device"] = device
    identity = _identity("compound", s, recipe_identity(s.recipe)) | rule
    study = Study(f"compound-{s.base.model}", identity)
    timer = None
    if match == "latency":
        from effscale.study.matching import latency_metric

        timer = latency_metric(s.dataset.num_classes, device)
    with planning(f"planning {study.name}"):
        for r in at_budgets(s.recipe, s.budgets):
            points = plan_compound(
                s.base,
                phis,
                seeds,
                r,
                s.data,
                **rule,
                match_single=match_single,
                num_classes=s.dataset.num_classes,
                metric=timer,
            )
            study.add_all(points)
    return study


def search_study(
    s: Setting, seeds: list[int], *, flops_tolerance: float | None = None, on_progress=None, **grid
) -> tuple[Study, dict]:
    """The grid search of Step 1 at one budget, and its record (effscale.study.search);
    ``grid``: plan_search's phi, target, step, max_ and tolerance."""
    from effscale.study.search import plan_search, stored_names

    recipe = at_budgets(s.recipe, s.budgets)[0]
    # A search ranks at one budget.
    identity = _identity("search", s, recipe.to_dict()) | stored_names(grid)
    study = Study(f"search-{s.base.model}", identity | {"flops_tolerance": flops_tolerance})
    phi = grid.pop("phi")
    points, record = plan_search(
        s.base,
        phi,
        seeds,
        recipe,
        s.data,
        **grid,
        flops_tolerance=flops_tolerance,
        num_classes=s.dataset.num_classes,
        on_progress=on_progress,
    )
    return study.add_all(points), record


def sweep_costs(base: Base, dim: str, values: list[float], num_classes: int) -> list[dict]:
    """The cost of each variant a sweep trains (effscale.cost.describe)."""
    from effscale.cost import describe_all

    return describe_all([v for _, v in sweep_variants(base, dim, values)], num_classes)


def compound_costs(base: Base, phis: list[float], num_classes: int, **rule) -> list[dict]:
    """Per phi, the compound variant's cost and its target vs realised FLOPs ratio;
    ``rule``: alpha, beta, gamma, table."""
    from effscale.cost import compound_costs

    kw = {"base_resolution": base.base_resolution, "num_classes": num_classes, **base.design}
    return compound_costs(base.model, phis, **kw, **rule)


def phi_for_flops(
    base: Base, ratio: float, num_classes: int, *, alpha: float, beta: float, gamma: float
) -> float:
    """The phi whose compound network's counted FLOPs come closest to ``ratio`` times the
    base's, after rounding (compound --flops 4x), as match_flops does for one dimension.

    Equation 3 targets (alpha * beta^2 * gamma^2)^phi, but whole blocks, channel multiples
    and whole pixels realise more or less (phi = 2.12 targets 3.99x and realised 5.03x on
    one base). Counted FLOPs grow with phi in steps, so a bisection finds the smallest phi
    reaching the target; the step just below is the other candidate."""
    import math

    from effscale.cost import count_cost
    from effscale.errors import EffscaleError

    if not ratio >= 1:
        raise EffscaleError(f"a FLOPs target of {ratio:g}x the base", "give 1x or more, e.g. 4x")
    target = ratio * count_cost(base.variant(), num_classes).flops
    counted: dict[float, int] = {}

    def flops(phi: float) -> int:
        if phi not in counted:
            ((_, variant),) = base.compound([phi], alpha=alpha, beta=beta, gamma=gamma)
            counted[phi] = count_cost(variant, num_classes).flops
        return counted[phi]

    growth = math.log(alpha * beta**2 * gamma**2)
    if growth <= 0:
        raise EffscaleError("alpha * beta^2 * gamma^2 is 1: phi does not change the FLOPs")
    lo, high = 0.0, math.log(ratio) / growth + 0.5
    while flops(high) < target:
        lo, high = high, high * 1.5 + 0.5
        if high > 20:
            raise EffscaleError(f"no phi up to 20 reaches {ratio:g}x the base's FLOPs")
    while high - lo > 1e-3:
        mid = (lo + high) / 2
        lo, high = (lo, mid) if flops(mid) >= target else (mid, high)
    tidy = math.ceil(high * 100) / 100  # a two-decimal phi, where it realises the same FLOPs
    high = tidy if flops(tidy) == flops(high) else round(high, 4)
    low = math.floor(lo * 100) / 100 if flops(math.floor(lo * 100) / 100) == flops(lo) else lo
    return min((high, round(low, 4)), key=lambda p: abs(flops(p) - target))
