"""effscale sweep: one dimension scaled alone, each variant trained briefly (Figure 3).

Example:
    effscale sweep --model resnet50 --dim width
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli import running
from effscale.cli.app import app
from effscale.cli.options import BASE, EXECUTOR, RUN, STUDY, FormatOpt, ModelOpt, takes
from effscale.errors import EffscaleError
from effscale.output import Format

COST_SCREEN = ["d", "w", "r", "resolution", "params", "gflops"]
COST_SCREEN += ["target_flops_ratio", "realised_flops_ratio"]


@app.command()
@takes
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
    study: dict = STUDY,
    cluster: dict = EXECUTOR,
    run: dict = RUN,
    base: dict = BASE,
    fmt: FormatOpt = Format.table,
):
    """Scale one dimension alone and train each variant briefly (paper Figure 3).

    Default values are the paper's: w 1.0,1.4,1.8,2.6,3.8,5.0; d 1,2,3,4,6,8;
    r 1.0,1.3,1.5,1.7,1.9,2.2,2.5. Example: effscale sweep --model resnet50 --dim width
    """
    from effscale.scaling import DIMENSIONS, parse_range
    from effscale.study.kinds import sweep_costs, sweep_study
    from effscale.study.plan import FIGURE3_VALUES

    if dim not in DIMENSIONS:
        raise EffscaleError(f"unknown dimension {dim!r}", f"use one of {', '.join(DIMENSIONS)}")
    vals = parse_range(values) if values is not None else FIGURE3_VALUES[dim]
    running.one_of(run["cost_only"], run["dry_run"])
    if run["cost_only"]:
        b, classes, where = running.cost_base(model, study["data"], base)
        rows = sweep_costs(b, dim, vals, classes)
        output.rows(rows, fmt, title=f"{model}: {dim} alone", screen=COST_SCREEN)
        output.note(f"{where}.", fmt)
        return
    s, seeds = running.setting(model, study, base)
    planned = sweep_study(s, dim, vals, seeds, planning=output.planning)
    running.run_and_print(planned, fmt, cluster, run)
