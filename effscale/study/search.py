"""Step 1 of the paper: a small grid search for alpha, beta, gamma at phi = 1.

Tan & Le (2019), Section 3.3: "fix phi = 1, assuming twice more resources available, and do
a small grid search of alpha, beta, gamma based on Equation 2 and 3"; for B0 they found
alpha = 1.2, beta = 1.1, gamma = 1.15. Here, in four steps:

1. ``grid``: every alpha, beta, gamma >= 1 on 1, 1 + step, ..., max whose product
   alpha * beta^2 * gamma^2 is within a *relative* tolerance of the target:
   |product - target| <= tolerance * target.
2. ``candidates``: each triple scaled at phi by Equation 3, then built and counted. Rounding
   (ceil of repeats, channels to multiples of 8, resolution to multiples of 4 px) moves the
   realised FLOPs ratio by tens of percent: the paper's own (1.2, 1.1, 1.15) realises 2.23x
   on B0 at 224 px and 2.83x at a 32 px base (B0 at width 0.5). A candidate whose counted
   ratio is off target^phi by more than ``flops_tolerance`` (relative; by default the grid's
   tolerance) is dropped. Triples that round to the same network (same resolved spec and
   resolution) are trained once.
3. ``plan_search``: one point per network and seed (role "search") and the base (role
   "base"); search.json in the run directory maps every triple to its network's point keys.
4. ``search_report`` (effscale.report.search): per network, mean and spread of top-1 over
   seeds; the winner has the highest mean (ties: fewer FLOPs). search.json gets the ranked
   table and ``chosen``, figures/search.png the plot. Re-runnable on a partial run directory
   at any time.

Step 2 (``effscale compound --from-search RUN_DIR``) reads ``chosen_coefficients``.
"""

import hashlib
import json
import math
from pathlib import Path

from effscale import limits
from effscale.cost import count_cost
from effscale.errors import EffscaleError
from effscale.recipe import Recipe
from effscale.scaling import Variant, compound_variants
from effscale.study.plan import Base, Point
from effscale.zoo import resolve_spec

_SLACK = 1e-9  # float noise: 1.05 * 1.05 is 1.1025000000000003

# The grid's settings and their defaults, as ``candidates`` and ``plan_search`` take them.
GRID = dict(target=2.0, step=0.05, max_=1.5, tolerance=0.05, flops_tolerance=None)


# --------------------------------------------------------------------------------------
# 1. The grid
# --------------------------------------------------------------------------------------


def grid_values(step: float = 0.05, max_: float = 1.5) -> list[float]:
    """1, 1 + step, ..., up to max (inclusive when it falls on the grid)."""
    if not (step > 0 and math.isfinite(step)):
        raise EffscaleError(
            f"grid step must be a positive number, got {step:g}", "e.g. `step`=0.05"
        )
    if not (max_ >= 1 and math.isfinite(max_)):
        raise EffscaleError(
            f"grid maximum must be at least 1, got {max_:g}",
            "alpha, beta, gamma are >= 1: e.g. `max`=1.5",
        )
    n = math.floor((max_ - 1) / step + 1e-9)
    # the search enumerates every triple: 100 values an axis is a million triples already
    limits.count_at_most(f"the grid from 1 to {max_:g} by {step:g} (a side)", n + 1, 100)
    return [round(1 + i * step, 10) for i in range(n + 1)]


def product(alpha: float, beta: float, gamma: float) -> float:
    """alpha * beta^2 * gamma^2: the FLOPs growth per unit of phi (Equation 3)."""
    return alpha * beta * beta * gamma * gamma


def grid(
    target: float = 2.0, step: float = 0.05, max_: float = 1.5, tolerance: float = 0.05
) -> list[tuple[float, float, float]]:
    """Every (alpha, beta, gamma) on the grid with alpha*beta^2*gamma^2 within the tolerance.

    The tolerance is relative: |product - target| <= tolerance * target.

    Raises:
        EffscaleError: when no triple qualifies; it names the nearest reachable product and
            what to change (target, tolerance, step or max).
    """
    if not (target > 0 and math.isfinite(target)):
        raise EffscaleError(f"target must be a positive number, got {target:g}", "e.g. 2.0")
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise EffscaleError(
            f"tolerance must be a non-negative fraction, got {tolerance:g}", "e.g. 0.05 (5 %)"
        )
    values = grid_values(step, max_)
    triples = [(a, b, g) for a in values for b in values for g in values]
    found = [t for t in triples if abs(product(*t) - target) <= tolerance * target + _SLACK]
    if found:
        return found
    nearest = min(triples, key=lambda t: abs(product(*t) - target))
    p = product(*nearest)
    needed = math.ceil(abs(p - target) / target * 1000) / 1000
    hints = [f"`target`={p:.4g}", f"`tolerance`={needed:g}"]
    if target > product(values[-1], values[-1], values[-1]):
        hints.append(f"`max`={math.ceil(target**0.2 * 100) / 100:g} or more")
    else:
        hints.append("a finer `step`")
    raise EffscaleError(
        f"no alpha, beta, gamma on the grid 1..{values[-1]:g} (step {step:g}) has "
        f"alpha*beta^2*gamma^2 within {tolerance:.1%} of {target:g}; the nearest reachable "
        f"target is {p:.4g} (alpha={nearest[0]:g}, beta={nearest[1]:g}, gamma={nearest[2]:g})",
        "use " + ", or ".join(hints),
    )


# --------------------------------------------------------------------------------------
# 2. Candidates: scaled, counted, filtered on realised FLOPs, grouped into networks
# --------------------------------------------------------------------------------------


def _fingerprint(variant: Variant) -> str:
    """Two variants with the same fingerprint are the same network, trained the same way."""
    spec = resolve_spec(variant).to_dict()
    spec.pop("reference")
    blob = json.dumps([spec, variant.resolution], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _scaled(base: Base, phi: float, abg: tuple[float, float, float]) -> Variant:
    ((_, variant),) = compound_variants(
        base.model,
        [phi],
        base_resolution=base.base_resolution,
        alpha=abg[0],
        beta=abg[1],
        gamma=abg[2],
        multiple=base.multiple,
        small_input=base.small_input,
        base_depth=base.base_depth,
        base_width=base.base_width,
    )
    return variant


def flops_tolerance_or(tolerance: float, flops_tolerance: float | None) -> float:
    """The FLOPs tolerance in force: the grid's own tolerance unless one is given."""
    return tolerance if flops_tolerance is None else flops_tolerance


def candidates(
    base: Base,
    phi: float = 1.0,
    *,
    target: float = GRID["target"],
    step: float = GRID["step"],
    max_: float = GRID["max_"],
    tolerance: float = GRID["tolerance"],
    flops_tolerance: float | None = GRID["flops_tolerance"],
    num_classes: int = 1000,
    on_progress=None,
) -> list[dict]:
    """Every grid triple at phi: its variant, counted FLOPs ratio, and whether it is kept.

    Kept: |realised ratio - target^phi| <= flops_tolerance * target^phi (flops_tolerance
    defaults to ``tolerance``). Kept triples that build the same network share a ``network``
    number; its ``trained`` triple (the one whose product is closest to the target) is the
    variant the points train. ``on_progress(done, total, label)`` hears of the counting.
    """
    flops_tolerance = flops_tolerance_or(tolerance, flops_tolerance)
    if not (flops_tolerance >= 0 and math.isfinite(flops_tolerance)):
        raise EffscaleError(
            f"FLOPs tolerance must be a non-negative fraction, got {flops_tolerance:g}",
            "e.g. 0.2 (20 %)",
        )
    if not (phi > 0 and math.isfinite(phi)):
        raise EffscaleError(
            f"the search scales candidates at a positive phi, got {phi:g}",
            "the paper searches at phi = 1",
        )
    goal = target**phi
    base_flops = count_cost(base.variant(), num_classes).flops
    flops: dict[str, int] = {}  # fingerprint -> counted FLOPs, each network counted once
    rows = []
    triples = grid(target, step, max_, tolerance)
    for done, abg in enumerate(triples, 1):
        v = _scaled(base, phi, abg)
        fp = _fingerprint(v)
        if fp not in flops:
            flops[fp] = count_cost(v, num_classes).flops
        if on_progress:
            on_progress(done, len(triples), "")
        ratio = flops[fp] / base_flops
        off = (ratio - goal) / goal
        rows.append(
            {
                "alpha": abg[0],
                "beta": abg[1],
                "gamma": abg[2],
                "product": round(product(*abg), 4),
                "d": round(v.d, 4),
                "w": round(v.w, 4),
                "r": round(v.r, 4),
                "resolution": v.resolution,
                "flops": flops[fp],
                "target_flops_ratio": round(goal, 4),
                "realised_flops_ratio": round(ratio, 4),
                "off_target": round(off, 4),
                "kept": abs(off) <= flops_tolerance + _SLACK,
                "fingerprint": fp,
                "variant": v.to_dict(),
            }
        )
    networks: dict[str, int] = {}
    for row in rows:
        row["network"], row["trained"] = None, False
        if row["kept"]:
            row["network"] = networks.setdefault(row["fingerprint"], len(networks) + 1)
    for n in networks.values():
        group = [r for r in rows if r.get("network") == n]
        best = min(group, key=lambda r: abs(r["product"] - target))
        for r in group:
            r["trained"] = r is best
    return rows


def survivors(rows: list[dict], flops_tolerance: float) -> list[dict]:
    """The kept candidates; all dropped is an error that says how close the nearest came."""
    kept = [r for r in rows if r["kept"]]
    if kept:
        return kept
    nearest = min(rows, key=lambda r: abs(r["off_target"]))
    needed = math.ceil(abs(nearest["off_target"]) * 1000) / 1000
    raise EffscaleError(
        f"all {len(rows)} candidates were dropped: after rounding, every realised FLOPs ratio "
        f"is off {nearest['target_flops_ratio']:g} by more than {flops_tolerance:.1%} (nearest: "
        f"{nearest['realised_flops_ratio']:g} at alpha={nearest['alpha']:g}, "
        f"beta={nearest['beta']:g}, gamma={nearest['gamma']:g})",
        f"use `flops_tolerance`={needed:g}, a finer `multiple` (e.g. 1), or a larger base "
        "(`base_width`, `base_resolution`): rounding moves FLOPs most at small bases",
    )


def dropped_note(rows: list[dict], flops_tolerance: float) -> str:
    """One sentence: how many triples, how many dropped and why, how many networks to train."""
    kept = [r for r in rows if r["kept"]]
    networks = len({r["network"] for r in kept})
    goal = rows[0]["target_flops_ratio"] if rows else float("nan")
    return (
        f"{len(rows)} candidate{'s' if len(rows) != 1 else ''} on the grid; "
        f"{len(rows) - len(kept)} dropped (realised FLOPs "
        f"ratio off {goal:g} by more than {flops_tolerance:.1%} after rounding); {len(kept)} kept, "
        f"{networks} distinct network{'s' if networks != 1 else ''} to train"
        + _wider(rows, networks)
    )


def _wider(rows: list[dict], networks: int, want: int = 5) -> str:
    """When few networks are kept: the --flops-tolerance that would keep ``want`` (or all)."""
    if networks >= want or len(rows) == len([r for r in rows if r["kept"]]):
        return ""
    by_miss = sorted(rows, key=lambda r: abs(r["off_target"]))
    seen, needed = set(), None
    for r in by_miss:
        seen.add(r.get("network", id(r)) if r["kept"] else (r["alpha"], r["beta"], r["gamma"]))
        if len(seen) >= want:
            needed = math.ceil(abs(r["off_target"]) * 100) / 100
            break
    if needed is None:
        needed = math.ceil(max(abs(r["off_target"]) for r in rows) * 100) / 100
    return f"; `flops_tolerance`={needed:g} would keep about {min(want, len(rows))} candidates"


# --------------------------------------------------------------------------------------
# 3. Planning
# --------------------------------------------------------------------------------------


def stored_names(grid: dict) -> dict:
    """The grid's settings as search.json and the study identity name them: ``max``, not the
    keyword ``max_`` (which only keeps Python's builtin free)."""
    return {"max" if k == "max_" else k: v for k, v in grid.items()}


def plan_search(
    base: Base,
    phi: float,
    seeds: list[int],
    recipe: Recipe,
    data: str,
    *,
    num_classes: int = 10,
    on_progress=None,
    **grid,
) -> tuple[list[Point], dict]:
    """The base's points and one point per kept network and seed, and the search record.
    ``grid``: the grid's settings as ``candidates`` takes them (``GRID``: their defaults).

    The record (settings, every candidate with its point keys, the base's keys) is what
    ``run_search`` stores as search.json, so any triple maps back to the runs that judge it.
    """
    grid = {**GRID, **grid}
    grid["flops_tolerance"] = flops_tolerance_or(grid["tolerance"], grid["flops_tolerance"])
    rows = candidates(base, phi, num_classes=num_classes, on_progress=on_progress, **grid)
    survivors(rows, grid["flops_tolerance"])
    base_points = [Point(base.variant(), seed, recipe, data, ("base",)) for seed in seeds]
    points = list(base_points)
    keys: dict[int, list[str]] = {}
    for row in rows:
        if row["kept"] and row["trained"]:
            variant = _scaled(base, phi, (row["alpha"], row["beta"], row["gamma"]))
            network = [Point(variant, seed, recipe, data, ("search",)) for seed in seeds]
            points += network
            keys[row["network"]] = [point.key for point in network]
    for row in rows:
        row["keys"] = keys.get(row.get("network"), [])
    record = {
        "model": base.model,
        "base": dict(base.__dict__),
        "data": data,
        "phi": phi,
        **stored_names(grid),
        "seeds": list(seeds),
        "num_classes": num_classes,
        "base_keys": [point.key for point in base_points],
        "candidates": rows,
    }
    return points, record


# --------------------------------------------------------------------------------------
# 4. The choice, for Step 2 (running is effscale.study.engine.run_search, ranking
#    effscale.report.search, which writes the choice into search.json)
# --------------------------------------------------------------------------------------


def chosen_coefficients(run_dir: str | Path) -> tuple[float, float, float]:
    """(alpha, beta, gamma) chosen by a finished search in ``run_dir`` (Step 2 uses them)."""
    from effscale.rundir import read_search

    record = read_search(run_dir)
    chosen = record.get("chosen")
    if not chosen:
        points = record.get("points")
        points = points if isinstance(points, dict) else {}
        raise EffscaleError(
            f"the search in {run_dir} is not finished "
            f"({points.get('finished', 0)} of {points.get('planned', '?')} points done)",
            "rerun the same `effscale search` command with `out` pointing there to finish it",
        )
    names = ("alpha", "beta", "gamma")
    values = [chosen.get(n) for n in names] if isinstance(chosen, dict) else [None]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise EffscaleError(
            f"{run_dir}: the search's chosen coefficients are damaged (alpha, beta and gamma "
            "must be numbers)",
            "rerun the same `effscale search` command to rank its points again",
        )
    return tuple(float(v) for v in values)
