"""effscale recommend: the shape a fitted law recommends at a FLOPs target.

Examples:
    effscale recommend runs/imagenette --flops 6x
    effscale recommend docs/results/imagenette --flops 6.4x --samples 100k --plan verify.toml
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.lawing import (
    BootstrapOpt,
    FormOpt,
    LawSamplesOpt,
    PerParamOpt,
    RunDirsArg,
    SeedOpt,
    fitted,
    ratio,
    samples_of,
)  # fmt: skip
from effscale.cli.options import FormatOpt
from effscale.output import Format

SCREEN = ["role", "d", "w", "r", "resolution", "flops_ratio", "top1", "lo", "hi",
          "p_recommended_beats"]  # fmt: skip


FlopsOpt = Annotated[
    str, typer.Option("--flops", metavar="RATIO", help="Target: counted FLOPs over the base's.")
]
ToleranceOpt = Annotated[
    float,
    typer.Option("--tolerance", min=0.001, max=0.5, help="Counted FLOPs within this fraction."),
]
PlanOpt = Annotated[
    str | None,
    typer.Option("--plan", metavar="FILE", help="Write a study file that trains the "
                 "recommendation and its comparisons."),
]  # fmt: skip
SeedsOpt = Annotated[
    int, typer.Option("--seeds", min=1, help="Seeds per network (intervals: for their mean).")
]
NextOpt = Annotated[
    int | None,
    typer.Option("--next", metavar="N", help="Also list the N points (shape, budget) that "
                 "would shrink the recommendation's interval most per unit of training cost "
                 "(FLOPs x samples x seeds), by a bootstrap heuristic (effscale.law.nextruns)."),
]  # fmt: skip
NEXT_SCREEN = {"role": "role", "d": "d", "w": "w", "resolution": "px", "samples": "samples",
               "flops_ratio_est": "FLOPs", "top1": "top1", "sd_after": "sd after",
               "cost": "cost", "score": "score"}  # fmt: skip


@app.command()
def recommend(
    run_dirs: RunDirsArg,
    flops: FlopsOpt,
    samples: LawSamplesOpt = None,
    tolerance: ToleranceOpt = 0.02,
    plan: PlanOpt = None,
    seeds: SeedsOpt = 3,
    next_n: NextOpt = None,
    form: FormOpt = "auto",
    draws: BootstrapOpt = 200,
    seed: SeedOpt = 0,
    per_param: PerParamOpt = 3.0,
    fmt: FormatOpt = Format.table,
):
    """The best realisable network at a FLOPs target, from a law fitted to the study:
    beside each dimension alone and the paper's compound rule at the same counted FLOPs,
    with predicted top-1, 80 % intervals and the probability the recommendation beats each.

    --samples fits the points at that budget (default: all budgets, predicting at the
    largest). --next N adds the N points worth training next (CSV: those rows). Example:
    effscale recommend docs/results/imagenette --flops 6.4x --samples 100k --next 3
    """
    from effscale.errors import EffscaleError
    from effscale.law import load_points
    from effscale.law.plan import write_plan
    from effscale.law.recommend import recommend as recommend_at

    if next_n is not None and next_n < 1:  # before the minute a fit takes
        raise EffscaleError(f"--next {next_n}: ask for one point or more", "e.g. --next 3")
    target = ratio(flops, "--flops")
    points = load_points(run_dirs, samples_of(samples))
    points, _, boot = fitted(run_dirs, form, None, per_param, draws, seed, points)
    budget = samples_of(samples) or max(points.budgets)
    rec = recommend_at(boot, points, target, budget, seeds, tolerance)
    result = {
        "target": target, "samples": budget, "form": boot.fit.form.name, "seeds": seeds,
        "candidates": [c.to_dict() for c in rec.candidates],
        "equivalent": {k: float(v) for k, v in rec.equivalent.items()},
        "warnings": rec.warnings,
    }  # fmt: skip
    if plan:
        result["plan"] = str(write_plan(plan, rec, points, seeds))
    if next_n:
        from effscale.law.nextruns import next_points

        result["next"] = next_points(boot, points, rec, next_n, seeds)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    if fmt is Format.csv and next_n:  # one table per CSV: with --next, the points to train
        output.rows(result["next"], fmt)
        return
    output.rows(result["candidates"], fmt, screen=SCREEN, title=f"At {target:g}x the base's "
                f"FLOPs, {budget:,} samples ({result['form']}; 80 % intervals for a "
                f"{seeds}-seed mean)")  # fmt: skip
    eq = result["equivalent"]
    output.note("the recommendation as the paper's rule: " + ", ".join(
        f"{k} = {v:.3f}" for k, v in eq.items()), fmt)  # fmt: skip
    for w in rec.warnings:
        output.note(f"warning: {w}", fmt)
    if plan:
        output.note(f"plan: {result['plan']} (effscale run {result['plan']})", fmt)
    if next_n:
        _print_next(result["next"], seeds, fmt)


def _print_next(rows: list[dict], seeds: int, fmt: Format) -> None:
    sd_now = rows[0]["sd_now"] if rows else float("nan")
    output.rows(rows, fmt, screen=NEXT_SCREEN, title=f"What to train next ({seeds} seeds each): "
                f"the recommendation's top-1 has a bootstrap sd of {sd_now:.2f} points; sd_after "
                "is what training the point is expected to leave, cost is FLOPs (over the "
                "base's) x samples x seeds / 1e6, score the variance removed per cost")  # fmt: skip
