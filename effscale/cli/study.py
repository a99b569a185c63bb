"""Study commands: sweep, compound, run, studies, speed, status, report, plot.

Examples:
    effscale sweep --model resnet50 --dim width
    effscale compound --phi 0..7 --cost-only
    effscale run quick && effscale report runs/quick
"""

import sys
from typing import Annotated

import typer

from effscale import io, output
from effscale.cli.app import app
from effscale.cli.options import (
    BUDGET_CHOICES,
    AddressOpt,
    AlphaOpt,
    BaseDepthOpt,
    BaseResOpt,
    BaseWidthOpt,
    BatchOpt,
    BetaOpt,
    BudgetOpt,
    CompileOpt,
    CostOnlyOpt,
    DataOpt,
    DeviceOpt,
    DryRunOpt,
    EpochsOpt,
    ExecutorOpt,
    ForceOpt,
    FormatOpt,
    GammaOpt,
    GpusPerPointOpt,
    LatencyOpt,
    LrOpt,
    MaxParallelOpt,
    ModelOpt,
    MultipleOpt,
    OutOpt,
    PartitionOpt,
    RunDirArg,
    SamplesOpt,
    SeedsOpt,
    SmallInputOpt,
    TimeOpt,
    WorkersOpt,
    YesOpt,
)
from effscale.errors import EffscaleError
from effscale.output import Format


def _study_context(
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
):
    """Dataset, recipe, training budgets and base shared by sweep, compound and search."""
    from effscale.data.cache import dataset
    from effscale.recipe import budget, parse_budgets, samples_for_epochs
    from effscale.study.plan import Base
    from effscale.zoo import get_spec

    if epochs is not None and samples is not None:
        raise EffscaleError("--epochs and --samples both set the budget", "give one of them")
    budgets = parse_budgets(samples) if samples is not None else None
    get_spec(model)  # an unknown model fails here, before any data is loaded
    recipe = budget(budget_, lr=lr, batch_size=batch_size).validate()  # train's messages
    ds = dataset(data)
    if epochs is not None:
        budgets = [samples_for_epochs(epochs, len(ds.train_labels))]
    base = Base(
        model, base_resolution or ds.resolution, base_width, base_depth, multiple, small_input
    )
    return ds, recipe, budgets, base


def _run_and_print(
    study,
    out,
    workers,
    device,
    force,
    fmt,
    executor="local",
    latency=False,
    compile_=None,
    dry_run=False,
    yes=False,
    **cluster,
):
    """Estimate a study, then print its plan (dry run) or run it on the executor asked for;
    ``cluster``: make_executor's cluster options."""
    from effscale.report.verdicts import summarise
    from effscale.study.engine import check_plan, raise_if_failed, run_study
    from effscale.study.executors import make_executor

    out = out or f"runs/{study.name}"
    io.writable_dir(out, create=False)  # before estimating: a bad --out is said at once
    check_plan(study, device, here=executor == "local")
    runner = make_executor(executor, workers, device, run_dir=out, **cluster)
    plan = _estimate(study, out, device, runner)
    if dry_run:
        _print_plan(plan, fmt)
        return
    output.note(f"{study.name}: {len(study.points)} points -> {out}", fmt)
    output.note(plan.sentence(), fmt)
    confirm_long_run(plan.wall_seconds or plan.total_seconds, yes)
    df = run_study(
        study, out, executor=runner, device=device, force=force, estimates=plan, compile=compile_
    )
    if executor == "slurm":  # submitted, not finished: the executor said how to follow it
        return
    if latency:
        _measure_latency(out, device)
    summary = summarise(df)
    output.rows(
        summary.to_dict("records"),
        fmt,
        title=f"{study.name}: mean over seeds",
        screen=["d", "w", "r", "resolution", "roles", "flops", "seeds", "top1_mean", "top1_std"],
    )
    output.note(f"results: {out}/results.csv; report and plots: effscale report {out}", fmt)
    raise_if_failed(study, out)  # exit code 1 when points failed


def _estimate(study, out, device, executor=None, **kw):
    """The study's plan and estimate (effscale.study.estimate.estimate_study, ``kw`` its
    options); the speed probe (seconds, once per device and thread count) says so."""
    from effscale.study.estimate import estimate_study

    with output.planning("estimating") as say:
        say("measuring this device's training speed (once per device and thread count)")
        return estimate_study(study, out, device=device, executor=executor, **kw)


PLAN_SCREEN = ["point", "roles", "gflops", "mparams", "samples", "seed", "covered", "est"]


def _print_plan(plan, fmt) -> None:
    """A dry run's output: one row per point, then the totals and the estimate."""
    if fmt is Format.json:
        output.record({**plan.summary(), "plan": plan.rows}, fmt)
        return
    output.rows(plan.rows, fmt, title=f"{plan.study}: plan (dry run)", screen=PLAN_SCREEN)
    output.note(f"Dry run, nothing trained: {plan.sentence()}", fmt)


LONG_RUN = 3600  # seconds: a run estimated longer than this asks first, on a terminal


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm_long_run(seconds: float | None, yes: bool) -> None:
    """Ask before a run estimated over an hour; never without a terminal, nor with --yes."""
    if yes or seconds is None or seconds <= LONG_RUN or not _interactive():
        return
    question = f"Estimated {output.fmt_seconds(seconds)} on this machine. Start?"
    if not typer.confirm(question, default=False, err=True):
        output.err_console.print(
            "not started (--dry-run shows the plan; --yes starts without asking)",
            highlight=False,
        )
        raise typer.Exit(1)


def _cost_base(data, model, base_resolution, base_width, base_depth, multiple, small_input):
    """The base costs are counted at (--cost-only): the resolution and class count training
    on ``data`` would use, and the note that says so."""
    from effscale.data.cache import dataset
    from effscale.study.plan import Base
    from effscale.zoo import get_spec

    get_spec(model)
    ds = dataset(data)
    base = Base(
        model, base_resolution or ds.resolution, base_width, base_depth, multiple, small_input
    )
    where = "the data's" if base_resolution is None else "as given"
    note = (
        f"Costs at the resolution and class count training would use: a {base.base_resolution} "
        f"px base ({where}) and {ds.num_classes} classes ({data})"
    )
    if base_resolution is None:
        note += f"; --base-resolution {get_spec(model).resolution} for the backbone's native size"
    return base, ds.num_classes, note


def _measure_latency(run_dir, device):
    from effscale.latency import latency_for_results

    # One thread on a CPU: the paper's setting (Table 4), and stable on a shared machine.
    with output.progress() as bar:
        latency_for_results(run_dir, batch=1, device=device, threads=1, progress=bar)


@app.command()
def sweep(
    model: ModelOpt = "efficientnet-b0",
    dim: Annotated[
        str,
        typer.Option(metavar="[width|depth|resolution]", help="The dimension scaled alone."),
    ] = "width",
    values: Annotated[
        str | None,
        typer.Option(
            metavar="RANGE",
            help="Multipliers, e.g. 1,1.4,2 or 1..4 (default: the paper's Figure 3 values).",
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
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    partition: PartitionOpt = None,
    gpus_per_point: GpusPerPointOpt = None,
    time_min: TimeOpt = 60,
    max_parallel: MaxParallelOpt = None,
    latency: LatencyOpt = False,
    compile_: CompileOpt = None,
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
    """Scale one dimension alone and train each variant briefly (paper Figure 3).

    Default values are the paper's: w 1.0,1.4,1.8,2.6,3.8,5.0; d 1,2,3,4,6,8;
    r 1.0,1.3,1.5,1.7,1.9,2.2,2.5. Example: effscale sweep --model resnet50 --dim width
    """
    from effscale.scaling import DIMENSIONS, parse_range
    from effscale.study.plan import (
        FIGURE3_VALUES,
        Study,
        at_budgets,
        plan_sweep,
        recipe_identity,
        seed_list,
    )

    if dim not in DIMENSIONS:
        raise EffscaleError(f"unknown dimension {dim!r}", f"use one of {', '.join(DIMENSIONS)}")
    vals = parse_range(values) if values is not None else FIGURE3_VALUES[dim]
    if cost_only and dry_run:
        raise EffscaleError("--cost-only and --dry-run both print without training", "give one")
    if cost_only:
        from effscale.cost import describe_all

        base, classes, where = _cost_base(
            data, model, base_resolution, base_width, base_depth, multiple, small_input
        )
        rows = describe_all(
            [base.variant(**{dim[0]: v}) for v in sorted(set([1.0] + vals))], classes
        )
        output.rows(
            rows,
            fmt,
            title=f"{model}: {dim} alone",
            screen=[
                "d",
                "w",
                "r",
                "resolution",
                "params",
                "gflops",
                "target_flops_ratio",
                "realised_flops_ratio",
            ],
        )
        output.note(f"{where}.", fmt)
        return
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
    study = Study(
        f"sweep-{model}-{dim}",
        {
            "kind": "sweep",
            "model": model,
            "dim": dim,
            "data": data,
            "recipe": recipe_identity(recipe),
            "base": base.__dict__,
        },
    )
    with output.planning(f"planning {study.name}"):
        for r in at_budgets(recipe, budgets):
            plan_sweep(study, base, dim, vals, seed_ids, r, data)
    _run_and_print(
        study,
        out,
        workers,
        device,
        force,
        fmt,
        executor,
        address=address,
        partition=partition,
        gpus_per_point=gpus_per_point,
        time_min=time_min,
        max_parallel=max_parallel,
        latency=latency,
        compile_=compile_,
        dry_run=dry_run,
        yes=yes,
    )


@app.command(name="compound")
def compound_cmd(
    ctx: typer.Context,
    model: ModelOpt = "efficientnet-b0",
    phi: Annotated[
        str, typer.Option(metavar="RANGE", help="Range of phi: 1..7, 0..2:0.5 or 1,2,3.")
    ] = "1..7",
    alpha: AlphaOpt = 1.2,
    beta: BetaOpt = 1.1,
    gamma: GammaOpt = 1.15,
    from_search: Annotated[
        str | None,
        typer.Option(
            "--from-search",
            metavar="RUN_DIR",
            help="Use the alpha, beta, gamma chosen by `effscale search` in this run directory "
            "(Step 2); not together with --alpha/--beta/--gamma.",
        ),
    ] = None,
    table_: Annotated[
        str,
        typer.Option(
            "--table",
            metavar="[formula|official]",
            help="formula: Equation 3; official: the published B0-B7 table.",
        ),
    ] = "formula",
    match_single: Annotated[
        bool,
        typer.Option(
            "--match-single",
            help="Add, per phi, each dimension alone at the same counted FLOPs (paper Figure 8).",
        ),
    ] = False,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: EpochsOpt = None,
    samples: SamplesOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    seeds: SeedsOpt = 1,
    workers: WorkersOpt = 1,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    partition: PartitionOpt = None,
    gpus_per_point: GpusPerPointOpt = None,
    time_min: TimeOpt = 60,
    max_parallel: MaxParallelOpt = None,
    latency: LatencyOpt = False,
    compile_: CompileOpt = None,
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
    """Compound scaling by phi (Equation 3, or the official B0-B7 table), trained briefly.

    With --cost-only: per phi, (d, w, r), cost, and target vs realised FLOPs ratio.
    Examples: effscale compound --phi 0..7 --cost-only;
    effscale compound --model efficientnet-b0 --phi 1..3 --match-single --seeds 3
    """
    from effscale.scaling import parse_range

    if from_search:
        from effscale.study.search import chosen_coefficients

        given = [
            n for n in ("alpha", "beta", "gamma") if ctx.get_parameter_source(n).name != "DEFAULT"
        ]
        if given or table_ == "official":
            other = f"--{given[0]}" if given else "--table official"
            raise EffscaleError(f"--from-search and {other} both set the scaling", "give one")
        alpha, beta, gamma = chosen_coefficients(from_search)
    rule = (
        "the official B0-B7 table (efficientnet_builder.py)"
        if table_ == "official"
        else f"Equation 3 with alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}"
        + (f" (chosen by the search in {from_search})" if from_search else "")
    )
    phis = parse_range(phi)
    if cost_only and dry_run:
        raise EffscaleError("--cost-only and --dry-run both print without training", "give one")
    if cost_only:
        from effscale.cost import compound_costs

        base, classes, where = _cost_base(
            data, model, base_resolution, base_width, base_depth, multiple, small_input
        )
        with output.planning("counting"):
            rows = compound_costs(
                model,
                phis,
                alpha=alpha,
                beta=beta,
                gamma=gamma,
                table=table_,
                base_resolution=base.base_resolution,
                num_classes=classes,
                multiple=multiple,
                small_input=small_input,
                base_width=base_width,
                base_depth=base_depth,
            )
        output.rows(
            rows,
            fmt,
            title=f"Compound scaling of {model}",
            screen=[
                "phi",
                "d",
                "w",
                "r",
                "resolution",
                "params",
                "gflops",
                "target_flops_ratio",
                "realised_flops_ratio",
            ],
        )
        output.note(
            f"Scaling rule: {rule}. Target ratio = (alpha*beta^2*gamma^2)^phi; "
            f"realised = counted FLOPs / base FLOPs after rounding. {where}.",
            fmt,
        )
        return
    from effscale.study.plan import Study, at_budgets, plan_compound, recipe_identity, seed_list

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
    study = Study(
        f"compound-{model}",
        {
            "kind": "compound",
            "model": model,
            "data": data,
            "recipe": recipe_identity(recipe),
            "base": base.__dict__,
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "table": table_,
        },
    )
    with output.planning(f"planning {study.name}"):
        for r in at_budgets(recipe, budgets):
            plan_compound(
                study,
                base,
                phis,
                seed_ids,
                r,
                data,
                alpha=alpha,
                beta=beta,
                gamma=gamma,
                table=table_,
                match_single=match_single,
                num_classes=ds.num_classes,
            )
    output.note(f"Scaling rule: {rule}", fmt)
    _run_and_print(
        study,
        out,
        workers,
        device,
        force,
        fmt,
        executor,
        address=address,
        partition=partition,
        gpus_per_point=gpus_per_point,
        time_min=time_min,
        max_parallel=max_parallel,
        latency=latency,
        compile_=compile_,
        dry_run=dry_run,
        yes=yes,
    )


@app.command(name="run")
def run_cmd(
    study_file: Annotated[
        str,
        typer.Argument(
            metavar="STUDY",
            help="A study file, or the name of a packaged one (quick, figure3 ...: "
            "see `effscale studies`).",
        ),
    ],
    data: Annotated[
        str | None, typer.Option(metavar="DATA", help="Override the file's data.")
    ] = None,
    budget_: Annotated[
        str | None,
        typer.Option("--budget", metavar=BUDGET_CHOICES, help="Override the budget."),
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Override the number of seeds.")] = None,
    samples: SamplesOpt = None,
    workers: WorkersOpt = 1,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    partition: PartitionOpt = None,
    gpus_per_point: GpusPerPointOpt = None,
    time_min: TimeOpt = 60,
    max_parallel: MaxParallelOpt = None,
    latency: LatencyOpt = False,
    compile_: CompileOpt = None,
    device: DeviceOpt = "auto",
    out: OutOpt = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    fmt: FormatOpt = Format.table,
):
    """Run a whole study written as a TOML file; resumable.

    STUDY is a path, or a name: studies/NAME.toml here, else the study of that name that
    ships with effscale. Examples: effscale run quick; effscale run studies/figure3.toml
    """
    from effscale.recipe import parse_budgets
    from effscale.study.files import load_study

    budgets = parse_budgets(samples) if samples is not None else None
    with output.planning(f"planning {study_file}"):
        study = load_study(study_file, data=data, budget_name=budget_, seeds=seeds, samples=budgets)
    _run_and_print(
        study,
        out,
        workers,
        device,
        force,
        fmt,
        executor,
        address=address,
        partition=partition,
        gpus_per_point=gpus_per_point,
        time_min=time_min,
        max_parallel=max_parallel,
        latency=latency,
        compile_=compile_,
        dry_run=dry_run,
        yes=yes,
    )


@app.command()
def studies(fmt: FormatOpt = Format.table):
    """The study files that ship with effscale, for `effscale run NAME`.

    Example: effscale studies; effscale run quick
    """
    from effscale.study.files import describe_studies

    output.rows(
        describe_studies(),
        fmt,
        title="Packaged studies (effscale run NAME)",
        screen=["name", "description", "data", "budget", "seeds"],
    )


@app.command()
def speed(
    device: DeviceOpt = "auto",
    threads: Annotated[
        int | None, typer.Option(help="Torch threads per point (default: torch's).")
    ] = None,
    fmt: FormatOpt = Format.table,
):
    """Measure this device's training speed afresh and cache it: the FLOP/s every estimate
    (--dry-run, the time printed before a run) divides by.

    Measure again on a quieter machine, or after a change of hardware. Example: effscale speed
    """
    from effscale.study.estimate import measure_speed

    with output.planning("measuring") as say:
        say("a few training steps of a small model")
        measured = measure_speed(device, threads, fresh=True)
    output.record({k: v for k, v in measured.__dict__.items() if k != "cached"}, fmt)


@app.command()
def status(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Points done, running, interrupted, failed, diverged and left in a run directory.

    Example: effscale status runs/figure3
    """
    from effscale.rundir import StudyDir
    from effscale.study.executors.slurm import job_states

    st = StudyDir(run_dir).status()
    jobs = job_states(run_dir)  # None unless the points were submitted to Slurm
    if jobs is not None:
        st["slurm"] = jobs
    if fmt is Format.json:
        output.record(st, fmt)
        return
    output.record(st, fmt, title=run_dir)
    if jobs:
        output.rows(
            [{"key": k, "state": s, **jobs.get(k, {})} for k, s in st["states"].items()],
            fmt,
            title="Points and their Slurm jobs",
        )
    if st["errors"]:
        output.rows(
            [{"key": k, "error": e} for k, e in st["errors"].items()],
            fmt,
            title=f"Failed points (errors in {run_dir}/points/<key>/error.json)",
        )
    for problem in st["problems"]:
        output.note(f"damaged: {problem}; that point counts as not finished", fmt)


@app.command()
def report(
    run_dir: RunDirArg,
    latency: LatencyOpt = False,
    device: DeviceOpt = "auto",
    fmt: FormatOpt = Format.table,
):
    """Tables, plots and the paper's verdicts (with numbers) from a run directory.

    Re-runnable on partial results. Example: effscale report runs/figure3
    """
    from effscale.report import write_report

    if latency:
        _measure_latency(run_dir, device)
    result = write_report(run_dir)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    for title, key, screen in (
        (
            "Diminishing returns: gain per doubling of FLOPs (top-1 points)",
            "diminishing_returns",
            [
                "dimension",
                "first_gain_per_doubling",
                "first_std",
                "last_gain_per_doubling",
                "last_std",
                "verdict",
            ],
        ),
        (
            "Compound minus best single dimension at matched FLOPs",
            "compound_vs_single",
            [
                "phi",
                "compound_top1",
                "best_single",
                "best_single_top1",
                "compound_minus_best",
                "difference_std",
                "verdict",
            ],
        ),
    ):
        if result[key]:
            output.rows(result[key], fmt, title=title, screen=screen)
    timing = result["timing"]
    if timing["points"]:
        output.note(
            f"time: estimated {timing['estimated_seconds']:,.0f} s, measured "
            f"{timing['measured_seconds']:,.0f} s over {len(timing['points'])} points "
            f"(measured / estimated {timing['ratio']:.2f}; per point, median "
            f"{timing['median_ratio']:.2f})",
            fmt,
        )
    for warning in result["warnings"]:
        output.note(f"warning: {warning}", fmt)
    output.note(f"report: {result['report']} ({len(result['figures'])} figure files)", fmt)


@app.command()
def plot(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Redraw the plots of a run directory (PNG and SVG in RUN_DIR/figures).

    Example: effscale plot runs/figure3
    """
    from effscale.report import redraw

    paths = redraw(run_dir)
    output.rows([{"figure": str(p)} for p in paths], fmt, title="Figures")
