"""A study file that trains a recommendation and its comparisons, so `effscale run FILE`
verifies it: the same base, data, recipe (every field, protocol included) and budget as the
fitted points, the base, the recommended network and each alternative at the same FLOPs."""

from pathlib import Path

from effscale import io
from effscale.law.points import Points
from effscale.law.recommend import Recommendation


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def plan_text(rec: Recommendation, points: Points, name: str, seeds: int = 3) -> str:
    i = points.identity
    best = rec.best
    lines = [
        f"# Written by `effscale recommend --flops {rec.target:g}x --samples {rec.samples}` from",
        f"# {', '.join(points.sources)}: the law's best network at {rec.target:g}x the base's",
        f"# counted FLOPs predicts {best.top1:.2f} top-1 ({best.lo:.2f}-{best.hi:.2f}, 80 % "
        f"interval for a {rec.seeds}-seed mean).",
        "# Train it beside the base, each dimension alone and the paper's compound rule at",
        "# the same FLOPs:  effscale run FILE",
        f"name = {_toml(name)}",
        f"description = {_toml(f'recommendation at {rec.target:g}x FLOPs, and its comparisons')}",
        f"model = {_toml(i['model'])}",
        f"data = {_toml(i['data'])}",
        f"samples = [{rec.samples}]",
        f"seeds = {seeds}",
        f"base_width = {_toml(float(i['base_width']))}",
        f"base_depth = {_toml(float(i['base_depth']))}",
        f"base_resolution = {int(i['base_resolution'])}",
        f"small_input = {_toml(bool(i['small_input']))}",
        "",
        "[recipe]  # the fitted points' recipe, every field",
    ]
    lines += [f"{k} = {_toml(v)}" for k, v in sorted(i["recipe"].items())]
    lines += ["", "[[variant]]", 'role = "base"']
    for c in rec.candidates:
        v = c.variant
        lines += [
            "",
            "[[variant]]",
            f"# {c.flops_ratio:.3f}x FLOPs, {v.resolution} px; predicted {c.top1:.2f} "
            f"({c.lo:.2f}-{c.hi:.2f})",
            f"role = {_toml(c.role)}",
            f"d = {v.d!r}",
            f"w = {v.w!r}",
            f"r = {v.resolution / v.base_resolution!r}",
        ]
    return "\n".join(lines) + "\n"


def write_plan(path: str | Path, rec: Recommendation, points: Points, seeds: int = 3) -> Path:
    path = Path(path)
    io.write_text(path, plan_text(rec, points, path.stem, seeds))
    return path
