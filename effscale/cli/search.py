"""The search command: Step 1 of the paper, a grid search for alpha, beta, gamma.

Examples:
    effscale search --model efficientnet-b0 --cost-only --base-resolution 32
    effscale search --model efficientnet-b0 --base-width 0.5 --seeds 3
    effscale compound --from-search runs/search-efficientnet-b0 --phi 1..3
"""

from typing import Annotated

import typer

from effscale import io, output
from effscale.cli.app import app
from effscale.cli.options import (
    BaseDepthOpt,
    BaseResOpt,
    BaseWidthOpt,
    BatchOpt,
    BudgetOpt,
    CostOnlyOpt,
    DataOpt,
    DeviceOpt,
    DryRunOpt,
    EpochsOpt,
    ForceOpt,
    FormatOpt,
    LrOpt,
    ModelOpt,
    MultipleOpt,
    OutOpt,
    SamplesOpt,
    SeedsOpt,
    SmallInputOpt,
    WorkersOpt,
    YesOpt,
)
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


@app.command()
def search(
    model: ModelOpt = "efficientnet-b0",
    phi: Annotated[
        float, typer.Option("--phi", help="phi at which candidates are scaled (the paper: 1).")
    ] = 1.0,
    target: Annotated[
        float, typer.Option("--target", help="Target of alpha*beta^2*gamma^2 (the paper: 2).")
    ] = 2.0,
    step: Annotated[float, typer.Option("--step", help="Grid step of alpha, beta, gamma.")] = 0.05,
    max_: Annotated[float, typer.Option("--max", help="Largest alpha, beta, gamma.")] = 1.5,
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            help="Relative: keep triples with |alpha*beta^2*gamma^2 - target| <= tol*target.",
        ),
    ] = 0.05,
    flops_tolerance: Annotated[
        float | None,
        typer.Option(
            "--flops-tolerance",
            help="Relative: drop candidates whose counted FLOPs ratio is off target^phi by more "
            "(default: --tolerance). Rounding moves FLOPs by tens of percent at small bases.",
        ),
    ] = None,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: EpochsOpt = None,
    samples: SamplesOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    seeds: SeedsOpt = 1,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    out: OutOpt = None,
    force: ForceOpt = False,
    cost_only: CostOnlyOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    base_resolution: BaseResOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    multiple: MultipleOpt = 4,
    small_input: SmallInputOpt = None,
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
    from effscale.report.search import table as search_table
    from effscale.study import search as s

    if cost_only and dry_run:
        raise EffscaleError("--cost-only and --dry-run both print without training", "give one")
    if cost_only:
        from effscale.cli.study import _cost_base

        base, classes, where = _cost_base(
            data, model, base_resolution, base_width, base_depth, multiple, small_input
        )
        with output.progress(transient=True) as bar:
            rows = s.candidates(
                base,
                phi,
                target=target,
                step=step,
                max_=max_,
                tolerance=tolerance,
                flops_tolerance=flops_tolerance,
                num_classes=classes,
                progress=bar,
            )
        output.rows(
            rows,
            fmt,
            title=f"Grid search candidates for {model} at phi={phi:g}",
            screen=COST_SCREEN,
        )
        ftol = tolerance if flops_tolerance is None else flops_tolerance
        output.note(f"{s.dropped_note(rows, ftol)}. {where}.", fmt)
        if not any(r["kept"] for r in rows):
            s.survivors(rows, ftol)  # says how close the nearest came and what to change
        return

    from effscale.cli.study import _estimate, _print_plan, _study_context, confirm_long_run
    from effscale.study.engine import check_plan, raise_if_failed
    from effscale.study.executors import make_executor
    from effscale.study.plan import Study, at_budgets, seed_list

    seed_ids = seed_list(seeds)
    ds, recipe, budgets, base = _study_context(
        data,
        budget_,
        epochs,
        samples,
        lr,
        batch_size,
        base_resolution,
        base_width,
        base_depth,
        multiple,
        small_input,
        model,
    )
    if budgets and len(budgets) > 1:
        raise EffscaleError("a search trains at one budget", "give one --samples value")
    recipe = at_budgets(recipe, budgets)[0]
    settings = {"phi": phi, "target": target, "step": step, "max": max_, "tolerance": tolerance}
    study = Study(
        f"search-{model}",
        {
            "kind": "search",
            "model": model,
            "data": data,
            "recipe": recipe.to_dict(),  # with its samples: a search ranks at one budget
            "base": base.__dict__,
            **settings,
            "flops_tolerance": flops_tolerance,
        },
    )
    with output.progress(transient=True) as bar:
        record = s.plan_search(
            study,
            base,
            phi,
            seed_ids,
            recipe,
            data,
            target=target,
            step=step,
            max_=max_,
            tolerance=tolerance,
            flops_tolerance=flops_tolerance,
            num_classes=ds.num_classes,
            progress=bar,
        )
    out = out or f"runs/{study.name}"
    output.note(
        f"{s.dropped_note(record['candidates'], record['flops_tolerance'])}; "
        f"{len(study.points)} points with the base -> {out}",
        fmt,
    )
    if seeds < 2:
        output.note("one seed: the ranking has no spread to judge it by (use --seeds 3)", fmt)
    io.writable_dir(out, create=False)  # before estimating: a bad --out is said at once
    check_plan(study, device)
    executor = make_executor("local", workers, device)
    plan = _estimate(study, out, device, executor)
    if dry_run:
        _print_plan(plan, fmt)
        return
    output.note(plan.sentence(), fmt)
    confirm_long_run(plan.wall_seconds, yes)
    result = s.run_search(
        study, record, out, executor=executor, device=device, force=force, estimates=plan
    )
    output.rows(
        search_table(result),
        fmt,
        title=f"Grid search for {model} at phi={phi:g}: best first",
        screen=SCREEN,
    )
    best = result["chosen"] or result["leader"]
    if best:
        std = f" ± {best['top1_std']:.2f}" if best["top1_std"] is not None else ""
        output.note(
            f"{'chosen' if result['chosen'] else 'leading (unfinished)'}: "
            f"alpha={best['alpha']:g}, beta={best['beta']:g}, gamma={best['gamma']:g} "
            f"({best['top1_mean']:.2f}{std} % top-1 over {best['seeds']} seeds, realised FLOPs "
            f"x{best['realised_flops_ratio']:g}); saved in {out}/search.json, plot in "
            f"{out}/figures/search.png; Step 2: effscale compound --from-search {out}",
            fmt,
        )
    raise_if_failed(study, out)  # exit code 1 when points failed
