"""Running a study from the command line: its setting from the options, the estimate, the
question before a long run, the run on the executor asked for, and what it prints.

Shared by sweep, compound, run, search and train.
"""

import sys
from pathlib import Path

import typer

from effscale import display, io, limits, output
from effscale.errors import EffscaleError


def seeds_of(n: int) -> list[int]:
    """Seeds 0 .. n-1 for ``--seeds n``."""
    if n < 1:
        raise EffscaleError(f"--seeds must be at least 1, got {n}", "write e.g. --seeds 3")
    limits.count_at_most(f"--seeds {n}", n)
    return list(range(n))


def budgets_of(epochs, samples) -> list[int] | None:
    """The training budgets ``--samples`` gives (None: the budget's, or ``--epochs``)."""
    from effscale.recipe import parse_budgets

    if epochs is not None and samples is not None:
        raise EffscaleError("--epochs and --samples both set the budget", "give one of them")
    if samples is None:
        return None
    try:
        return parse_budgets(samples)
    except EffscaleError as e:
        raise EffscaleError(f"--samples: {e.message}", e.hint) from None


def setting(model: str, study: dict, base: dict):
    """A sweep's, compound's or search's setting (effscale.study.kinds.study_setting) from
    the STUDY and BASE options; and its seeds."""
    from effscale.study.kinds import study_setting

    seeds = seeds_of(study["seeds"])
    budgets = budgets_of(study["epochs"], study["samples"])
    s = study_setting(
        model,
        study["data"] or "embedded",
        study["budget_"],
        budgets=budgets,
        epochs=study["epochs"],
        lr=study["lr"],
        batch_size=study["batch_size"],
        schedule=study["schedule"],
        **base,
    )
    return s, seeds


def cost_base(model: str, data: str | None, base: dict):
    """The base costs are counted at (--cost-only), its class count and the note that says
    so: the resolution and classes training on ``data`` would use; without data, as `cost`
    and `models` count, the backbone's native resolution (or --base-resolution) and 1000."""
    from effscale.study.kinds import study_base
    from effscale.study.plan import Base
    from effscale.zoo import get_spec

    if data is None:
        resolution = base["base_resolution"] or get_spec(model).resolution
        b = Base(model, resolution, **{k: v for k, v in base.items() if k != "base_resolution"})
        where = "as given" if base["base_resolution"] else "the backbone's native size"
        return (
            b,
            1000,
            (
                f"Costs at a {resolution} px base ({where}) and 1000 classes, as `cost` counts; "
                "--data DATA counts at what training on DATA would use"
            ),
        )
    b, ds = study_base(model, data, **base)
    where = "the data's" if base["base_resolution"] is None else "as given"
    note = (
        f"Costs at the resolution and class count training would use: a {b.base_resolution} "
        f"px base ({where}) and {ds.num_classes} classes ({data})"
    )
    if base["base_resolution"] is None:
        note += f"; --base-resolution {get_spec(model).resolution} for the backbone's native size"
    return b, ds.num_classes, note


def one_of(cost_only: bool, dry_run: bool) -> None:
    if cost_only and dry_run:
        raise EffscaleError("--cost-only and --dry-run both print without training", "give one")


def executor_for(study, out: str, device: str, cluster: dict, plan_only: bool = False):
    """The executor the EXECUTOR options ask for (effscale.study.executors.make_executor),
    after checking the plan can run there; ``plan_only``: for a dry run (Slurm then needs no
    sbatch here)."""
    from effscale.cli.options import EXECUTOR, flag_of
    from effscale.study.engine import check_plan
    from effscale.study.executors import OPTIONS, make_executor, misplaced

    cluster = {**cluster, "setup": cluster.get("setup") or None}
    cluster["sbatch"] = sbatch_options(cluster.get("sbatch"))
    name = cluster.pop("executor")
    check_plan(study, device, here=name == "local")
    if cluster["workers"] < 1:
        raise EffscaleError(f"--workers must be at least 1, got {cluster['workers']}")
    wrong = misplaced(name, **cluster) if name in OPTIONS else []
    if wrong:
        option, owners = wrong[0]
        raise EffscaleError(
            f"{flag_of(option, EXECUTOR)} does not apply to --executor {name}",
            f"it is for --executor {' or '.join(owners)}",
        )
    from effscale.study.engine import worker_imports

    executor = make_executor(name, device=device, run_dir=out, plan_only=plan_only, **cluster)
    worker_imports(study, executor)  # a backbone its workers could not know: said now
    return executor


def with_study_settings(cluster: dict, study) -> dict:
    """The EXECUTOR options completed by a study file's: its threads, and its [slurm] table
    for a Slurm run; an option given on the command line wins."""
    from effscale.cli.options import EXECUTOR

    if cluster["threads"] is None and study.threads is not None:
        cluster = {**cluster, "threads": study.threads}
    if cluster["executor"] == "slurm":
        defaults = EXECUTOR.defaults()
        given = {k: v for k, v in cluster.items() if v not in (None, [], defaults[k])}
        cluster = {**cluster, **study.slurm, **given}
    return cluster


def sbatch_options(given) -> dict | None:
    """--sbatch NAME=VALUE options as a dict (a study file's [slurm] sbatch table is one)."""
    if not given or isinstance(given, dict):
        return given or None
    out = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise EffscaleError(
                f"--sbatch {item!r}: not NAME=VALUE", "e.g. --sbatch reservation=lab"
            )
        out[name.strip().removeprefix("--")] = value.strip()
    return out


def say_what_it_adds(study, out: str, force: bool, fmt) -> None:
    """Before estimating: a run directory of another study is refused now (not after the
    estimate), one this study extends (effscale.study.plan.extends) is said."""
    from effscale.rundir import StudyDir, identity_difference
    from effscale.study.plan import extends

    store = StudyDir(out)
    if not store.plan.exists():
        return
    try:
        old = store.load_study()
    except EffscaleError:
        return  # damaged: the run replaces its plan and says so
    if old.identity == study.identity or force:
        return
    if not extends(old.identity, study.identity):
        raise EffscaleError(
            f"{out} holds a different study ({identity_difference(old.identity, study.identity)})",
            "use another --out, or --force to replace its plan (finished points are kept "
            "and reused)",
        )
    known = {p.key for p in old.points}
    new = sum(p.key not in known for p in study.points)
    output.note(
        f"{out} holds the study {old.name}: this {study.identity['kind']} adds {new} "
        f"point{'s' * (new != 1)} to it (same model, data, recipe and base; one report "
        "covers both)",
        fmt,
    )


def estimate(study, out, device, executor=None, **kw):
    """The study's plan and estimate (effscale.study.estimate.estimate_study, ``kw`` its
    options); the speed probe (seconds, once per device and thread count) says so."""
    from effscale.study.estimate import estimate_study

    with output.planning("estimating") as say:
        say("measuring this device's training speed (once per device and thread count)")
        return estimate_study(study, out, device=device, executor=executor, **kw)


def prepare(study, fmt, cluster: dict, run: dict, out: str | None = None):
    """The run directory, executor and estimate of a study about to run; None for a dry
    run, whose plan is printed instead."""
    from effscale.cli.results import print_plan
    from effscale.tracking import check_trackers

    out = out or run["out"] or f"runs/{study.name}"
    io.writable_dir(out, create=False)  # before estimating: a bad --out is said at once
    check_trackers(run.get("log"))  # a tracker that is not installed: said now
    say_what_it_adds(study, out, run["force"], fmt)
    runner = executor_for(study, out, run["device"], cluster, plan_only=run["dry_run"])
    covered = reuse_points(study, out, run, fmt)
    plan = estimate(study, out, run["device"], runner, covered=covered)
    if run["dry_run"]:
        print_plan(plan, fmt)
        return None
    return out, runner, plan


def reuse_points(study, out: str, run: dict, fmt) -> set[str] | None:
    """Take the points ``run["reuse"]``'s run directories hold finished (a dry run only
    counts them): the keys the estimate takes as done, or None (its default) without any."""
    from effscale.rundir import FINISHED, StudyDir
    from effscale.study.reuse import reusable, take

    if not run.get("reuse"):
        return None
    found = reusable(study, out, run["reuse"])
    if run["dry_run"]:
        output.note(f"{len(found)} finished points to take from {', '.join(run['reuse'])}", fmt)
    elif found:
        StudyDir(io.writable_dir(out)).save_study(study, force=run["force"])  # its own first
        taken = take(found, out)
        output.note(f"took {len(taken)} finished points from {', '.join(run['reuse'])}", fmt)
    here = StudyDir(out) if Path(out).is_dir() else None
    done = {p.key for p in study.points if here and here.state(p.key) in FINISHED}
    return done | set(found)


def run_and_print(study, fmt, cluster: dict, run: dict) -> None:
    """Estimate a study, then print its plan (dry run) or run it on the executor asked
    for and print its results; ``cluster``: the EXECUTOR options, ``run``: the RUN ones."""
    from effscale.cli.results import print_summary
    from effscale.study.engine import raise_if_failed, run_study

    prepared = prepare(study, fmt, cluster, run)
    if prepared is None:
        return
    out, runner, plan = prepared
    output.note(f"{study.name}: {len(study.points)} points -> {out}", fmt)
    output.note(plan.sentence(), fmt)
    confirm_long_run(plan.wall_seconds or plan.total_seconds, run["yes"], plan.speed.busy)
    device = run["device"]
    with output.progress() as bar:
        df = run_study(
            study, out, executor=runner, device=device, force=run["force"], estimates=plan,
            compile=run["compile_"], on_event=display.show_study(bar, study),
            log=tuple(run.get("log") or ()),
        )  # fmt: skip
    if cluster["executor"] == "slurm":  # submitted, not finished: the executor said how to follow
        return
    if run["latency"]:
        measure_latency(out, device)
    print_summary(study, df, out, fmt)
    raise_if_failed(study, out)  # exit code 1 when points failed


def seeds_to_detect(study, run: dict, detect: float, spread: float | None, alpha: float) -> str:
    """One line for `run --dry-run --detect`: the seeds a difference of ``detect`` points
    needs, at ``spread`` or the spread pooled from the run directory's finished cells."""
    from effscale.report.pooling import difference_spread
    from effscale.report.stats import seeds_needed, seeds_phrase
    from effscale.rundir import StudyDir

    out = run["out"] or f"runs/{study.name}"
    basis = "as given"
    if spread is None:
        measured = difference_spread(StudyDir(out).results()) if Path(out).is_dir() else None
        if measured is None:
            raise EffscaleError(
                f"no finished Figure-8 cell with two seeds in {out} to measure the seed spread",
                "give --spread POINTS (the std of per-seed differences)",
            )
        spread, dof = measured
        basis = f"pooled from {out}, {dof} degrees of freedom"
    n = seeds_needed(detect, spread, alpha)
    planned = max((p.seed for p in study.points), default=-1) + 1
    return (
        f"to resolve a {detect:g}-point difference (paired t, two-sided, alpha {alpha:g}, 80 % "
        f"power) at a per-seed spread of {spread:.2f} points ({basis}): {seeds_phrase(n)} "
        f"seeds; this study plans {planned}"
    )


LONG_RUN = 3600  # seconds: a run estimated longer than this asks first, on a terminal


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm_long_run(seconds: float | None, yes: bool, busy: bool = False) -> None:
    """Ask before a run estimated over an hour; never without a terminal, nor with --yes.
    ``busy``: the speed was measured while other work ran, and the question says so."""
    if yes or seconds is None or seconds <= LONG_RUN or not _interactive():
        return
    doubt = " (measured while the machine was busy: it may be much less)" if busy else ""
    question = f"Estimated {output.fmt_seconds(seconds)} on this machine{doubt}. Start?"
    if not typer.confirm(question, default=False, err=True):
        output.err_console.print(
            "not started (--dry-run shows the plan; --yes starts without asking)",
            highlight=False,
        )
        raise typer.Exit(1)


def measure_latency(run_dir, device):
    from effscale.latency import latency_for_results

    # One thread on a CPU: the paper's setting (Table 4), and stable on a shared machine.
    with output.progress() as bar:
        latency_for_results(
            run_dir, batch=1, device=device, threads=1,
            on_progress=display.show_count(bar, "latency"),
        )  # fmt: skip
