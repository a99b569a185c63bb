"""Which points of a study are branches of another (WSD budgets, effscale.training.branches).

Points of the "wsd" schedule that differ only in their budget (same variant, seed, data,
source checkpoint and recipe otherwise) form a group: the longest budget is the trunk,
trained in full, and each shorter one is a branch that trains only its cool-down from the
checkpoint the trunk writes where that cool-down starts. Each keeps its own key, result
and row: a branch is the same training as a run to its budget alone.
"""

import json
from dataclasses import replace

from effscale.study.plan import Point


def _group(p: Point) -> str:
    recipe = replace(p.recipe, samples=0).to_dict()
    return json.dumps([p.variant.to_dict(), p.seed, p.data, p.init_from, recipe], sort_keys=True)


def wsd_branches(points: list[Point]) -> dict[str, list[Point]]:
    """Trunk key -> the points that branch off it (shorter budgets), for every WSD group of
    two budgets or more."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        if p.recipe.schedule == "wsd":
            groups.setdefault(_group(p), []).append(p)
    out = {}
    for members in groups.values():
        members = sorted(members, key=lambda p: p.recipe.samples)
        if len({p.recipe.samples for p in members}) > 1:
            out[members[-1].key] = [
                p for p in members[:-1] if p.recipe.samples < members[-1].recipe.samples
            ]
    return out


def trunk_of(points: list[Point]) -> dict[str, str]:
    """Branch key -> its trunk's key."""
    return {b.key: trunk for trunk, branches in wsd_branches(points).items() for b in branches}
