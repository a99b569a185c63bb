"""effscale run and effscale studies: a whole study written as a TOML file.

Examples:
    effscale studies
    effscale run quick && effscale report runs/quick
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli import running
from effscale.cli.app import app
from effscale.cli.options import BUDGET_CHOICES, EXECUTOR, RUN, FormatOpt, SamplesOpt, takes
from effscale.errors import EffscaleError
from effscale.output import Format

StudyArg = Annotated[
    str,
    typer.Argument(
        metavar="STUDY",
        help="A study file, or the name of a packaged one (quick, figure3 ...: "
        "see `effscale studies`).",
    ),
]


@app.command(name="run")
@takes
def run_cmd(
    study_file: StudyArg,
    data: Annotated[
        str | None, typer.Option(metavar="DATA", help="Override the file's data.")
    ] = None,
    finetune_data: Annotated[
        str | None,
        typer.Option(
            metavar="DATA",
            help="Override the data every [[transfer]] fine-tunes on, e.g. a local "
            "cifar-100-python directory where CIFAR-100 cannot be downloaded.",
        ),
    ] = None,
    reuse: Annotated[
        list[str] | None,
        typer.Option(
            metavar="RUN_DIR",
            help="Take the points this study shares with another run directory, finished "
            "there, instead of training them (e.g. a transfer study's pre-training); "
            "repeatable.",
        ),
    ] = None,
    budget_: Annotated[
        str | None,
        typer.Option("--budget", metavar=BUDGET_CHOICES, help="Override the budget."),
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Override the number of seeds.")] = None,
    samples: SamplesOpt = None,
    cluster: dict = EXECUTOR,
    run: dict = RUN.pick("latency log compile_ device out force dry_run yes"),
    detect: Annotated[
        float | None,
        typer.Option(
            metavar="POINTS",
            min=1e-6,
            max=100,
            help="With --dry-run: the seeds a paired t-test needs to resolve a difference of "
            "this many top-1 points (compound vs a dimension) at 80 % power.",
        ),
    ] = None,
    spread: Annotated[
        float | None,
        typer.Option(
            metavar="POINTS",
            min=1e-6,
            max=100,
            help="With --detect: the std of per-seed differences (default: pooled from the "
            "run directory's finished Figure-8 cells).",
        ),
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=1e-6, max=0.5, help="With --detect: the two-sided level.")
    ] = 0.05,
    fmt: FormatOpt = Format.table,
):
    """Run a whole study written as a TOML file; resumable.

    STUDY is a path, or a name: studies/NAME.toml here, else the study of that name that
    ships with effscale. Examples: effscale run quick; effscale run studies/figure3.toml
    """
    from effscale.study.files import load_study

    if detect is not None and not run["dry_run"]:
        raise EffscaleError("--detect sizes a study: it goes with --dry-run", "add --dry-run")
    budgets = running.budgets_of(None, samples)
    with output.planning(f"planning {study_file}"):
        study = load_study(
            study_file,
            data=data,
            budget_name=budget_,
            seeds=seeds,
            samples=budgets,
            finetune=finetune_data,
            fetch=not run["dry_run"],  # a dry run downloads nothing
        )
    cluster = running.with_study_settings(cluster, study)
    run = {**run, "log": run["log"] or study.log}  # --log wins over the file's
    running.run_and_print(study, fmt, cluster, {**run, "reuse": reuse or []})
    if detect is not None:
        output.note(running.seeds_to_detect(study, run, detect, spread, alpha), fmt)


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
        screen=["name", "description", "data", "needs", "budget", "seeds"],
    )
