"""The search command: Step 1 of the paper, a grid search for alpha, beta, gamma.

Examples:
    effscale search --model efficientnet-b0 --cost-only --base-resolution 32
    effscale search --model efficientnet-b0 --base-width 0.5 --seeds 3
    effscale compound --from-search runs/search-efficientnet-b0 --phi 1..3
"""

from typing import Annotated

import typer

from effscale import display, output
from effscale.cli import running
from effscale.cli.app import app
from effscale.cli.options import BASE, EXECUTOR, RUN, STUDY, FormatOpt, ModelOpt, takes
from effscale.errors import EffscaleError
from effscale.output import Format

SCREEN = [  # the terminal table; CSV, JSON and Markdown carry every column
    "alpha",
    "beta",
    "gamma",
    "realised_flops_ratio",
    "seeds",
    "top1_mean",
    "top1_std",
    "rank",
]
COST_SCREEN = ["alpha", "beta", "gamma", "product", "resolution", "realised_flops_ratio", "kept"]
PhiOpt = Annotated[
    float, typer.Option("--phi", help="phi at which candidates are scaled (the paper: 1).")
]
TargetOpt = Annotated[
    float, typer.Option("--target", help="Target of alpha*beta^2*gamma^2 (the paper: 2).")
]
StepOpt = Annotated[float, typer.Option("--step", help="Grid step of alpha, beta, gamma.")]
MaxOpt = Annotated[float, typer.Option("--max", help="Largest alpha, beta, gamma.")]
ToleranceOpt = Annotated[
    float,
    typer.Option(
        "--tolerance",
        help="Relative: keep triples with |alpha*beta^2*gamma^2 - target| <= tol*target.",
    ),
]
FlopsToleranceOpt = Annotated[
    float | None,
    typer.Option(
        "--flops-tolerance",
        help="Relative: drop candidates whose counted FLOPs ratio is off target^phi by more "
        "(default: --tolerance). Rounding moves FLOPs by tens of percent at small bases.",
    ),
]


@app.command()
@takes
def search(
    model: ModelOpt = "efficientnet-b0",
    phi: PhiOpt = 1.0,
    target: TargetOpt = 2.0,
    step: StepOpt = 0.05,
    max_: MaxOpt = 1.5,
    tolerance: ToleranceOpt = 0.05,
    flops_tolerance: FlopsToleranceOpt = None,
    study: dict = STUDY,
    cluster: dict = EXECUTOR,
    run: dict = RUN.pick("device out force cost_only dry_run yes"),
    base: dict = BASE,
    fmt: FormatOpt = Format.table,
):
    """Grid search for alpha, beta, gamma at phi = 1 (paper Step 1), trained and ranked.

    Every alpha, beta, gamma >= 1 on the grid 1, 1+step, ..., max with alpha*beta^2*gamma^2
    within --tolerance of --target is scaled at --phi and counted; candidates whose realised
    FLOPs ratio misses target^phi by more than --flops-tolerance are dropped, the rest are
    trained (triples that round to the same network once) and ranked by mean top-1 over
    seeds. RUN_DIR/search.json keeps the table and the chosen coefficients, which
    `effscale compound --from-search RUN_DIR` uses (Step 2). Resumable; use --seeds 3.
    Example: effscale search --model efficientnet-b0 --base-width 0.5 --seeds 3
    """
    grid = {"phi": phi, "target": target, "step": step, "max_": max_, "tolerance": tolerance}
    running.one_of(run["cost_only"], run["dry_run"])
    if run["cost_only"]:
        _print_candidates(model, study["data"], base, grid, flops_tolerance, fmt)
        return
    from effscale.report.search import search_report
    from effscale.report.search import table as search_table
    from effscale.study import search as s
    from effscale.study.engine import raise_if_failed, run_search
    from effscale.study.kinds import search_study

    setting, seeds = running.setting(model, study, base)
    if setting.budgets and len(setting.budgets) > 1:
        raise EffscaleError("a search trains at one budget", "give one --samples value")
    with output.progress(transient=True) as bar:
        planned, record = search_study(
            setting, seeds, **grid, flops_tolerance=flops_tolerance,
            on_progress=display.show_count(bar, "counting candidates"),
        )  # fmt: skip
    out = run["out"] or f"runs/{planned.name}"
    output.note(
        f"{s.dropped_note(record['candidates'], record['flops_tolerance'])}; "
        f"{len(planned.points)} points with the base -> {out}",
        fmt,
    )
    if study["seeds"] < 2:
        output.note("one seed: the ranking has no spread to judge it by (use --seeds 3)", fmt)
    prepared = running.prepare(planned, fmt, cluster, run, out)
    if prepared is None:
        return
    out, runner, plan = prepared
    output.note(plan.sentence(), fmt)
    running.confirm_long_run(plan.wall_seconds, run["yes"], plan.speed.busy)
    with output.progress() as bar:
        run_search(
            planned, record, out, executor=runner, device=run["device"], force=run["force"],
            estimates=plan, on_event=display.show_study(bar, planned),
        )  # fmt: skip
    result = search_report(out)  # the ranking and Step 1's choice, into search.json
    output.rows(
        search_table(result), fmt, title=f"Grid search for {model} at phi={phi:g}: best first",
        screen=SCREEN,
    )  # fmt: skip
    _print_chosen(result, out, fmt)
    raise_if_failed(planned, out)  # exit code 1 when points failed


def _print_candidates(model, data, base, grid, flops_tolerance, fmt) -> None:
    """--cost-only: every candidate of the grid with its counted FLOPs, kept or dropped."""
    from effscale.study import search as s

    b, classes, where = running.cost_base(model, data, base)
    grid = dict(grid)
    phi = grid.pop("phi")
    with output.progress(transient=True) as bar:
        rows = s.candidates(
            b, phi, **grid, flops_tolerance=flops_tolerance, num_classes=classes,
            on_progress=display.show_count(bar, "counting candidates"),
        )  # fmt: skip
    title = f"Grid search candidates for {model} at phi={phi:g}"
    output.rows(rows, fmt, title=title, screen=COST_SCREEN)
    ftol = s.flops_tolerance_or(grid["tolerance"], flops_tolerance)
    output.note(f"{s.dropped_note(rows, ftol)}. {where}.", fmt)
    if not any(r["kept"] for r in rows):
        s.survivors(rows, ftol)  # says how close the nearest came and what to change


def _print_chosen(result: dict, out: str, fmt) -> None:
    """The coefficients chosen (or leading, unfinished) and where they are kept."""
    best = result["chosen"] or result["leader"]
    if not best:
        return
    from effscale.report.search import margin_sentence

    std = f" ± {best['top1_std']:.2f}" if best["top1_std"] is not None else ""
    ahead = margin_sentence(best)
    output.note(
        f"{'chosen' if result['chosen'] else 'leading (unfinished)'}: "
        f"alpha={best['alpha']:g}, beta={best['beta']:g}, gamma={best['gamma']:g} "
        f"({best['top1_mean']:.2f}{std} % top-1 over {best['seeds']} seeds, realised FLOPs "
        f"x{best['realised_flops_ratio']:g})"
        + (f"; {ahead}" if ahead else "")
        + f"; saved in {out}/search.json, plot in "
        f"{out}/figures/search.png; Step 2: effscale compound --from-search {out}",
        fmt,
    )
