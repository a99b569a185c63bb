"""effscale report and effscale plot: tables, plots and verdicts from a run directory.

Examples:
    effscale report runs/figure3
    effscale plot runs/figure3
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import DeviceOpt, FormatOpt, LatencyOpt, RunDirArg
from effscale.errors import EffscaleError
from effscale.output import Format


@app.command()
def report(
    run_dirs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_DIR...",
            help="A run directory; or several, whose points were trained alike (the same "
            "study on two machines, a sweep and a compound scaling), reported together "
            "into --out.",
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="With several run directories: where to combine them."),
    ] = None,
    latency: LatencyOpt = False,
    device: DeviceOpt = "auto",
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            min=1e-6,
            max=0.5,
            help="The two-sided level a verdict needs (paired t-test over seeds).",
        ),
    ] = 0.05,
    fmt: FormatOpt = Format.table,
):
    """Tables, plots and the paper's verdicts (with p-values and intervals) from a run
    directory.

    Re-runnable on partial results. Example: effscale report runs/figure3 --alpha 0.05;
    effscale report runs/width runs/compound --out runs/both
    """
    from effscale.report import write_report
    from effscale.report.report import trend_sentences

    run_dir = _one_run_dir(run_dirs, out)

    if latency:
        from effscale.cli.running import measure_latency

        measure_latency(run_dir, device)
    result = write_report(run_dir, alpha)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    for title, key, screen in (
        ("Diminishing returns: gain per doubling of FLOPs (top-1 points)", "diminishing_returns",
         DIMINISHING_SCREEN),
        ("Compound minus best single dimension at matched FLOPs (top-1 points)",
         "compound_vs_single", COMPOUND_SCREEN),
        ("The study as a whole: compound minus each dimension, pooled over cells",
         "pooled_compound_vs_single", POOLED_SCREEN),
    ):  # fmt: skip
        if result[key]:
            rows = result[key]
            # The columns that tell rows apart come first: a study may hold several models,
            # training budgets and coefficient choices.
            columns = {c: c for c in _telling(rows)} | screen
            output.rows(_on_screen(rows), fmt, title=title, screen=columns)
    for line in trend_sentences(result["budget_trend"]):
        output.note(line, fmt)
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


# Short headers, two decimals and the columns a reader needs first, so both tables fit an
# 80-column terminal beside a model, budget and coefficient column; report.md, CSV and JSON
# carry every column at full precision (the best dimension's own top-1 among them).
DIMINISHING_SCREEN = {
    "dimension": "dimension",
    "first_gain_per_doubling": "first gain",
    "first_std": "±",
    "last_gain_per_doubling": "last gain",
    "last_std": "±",
    "p": "p",
    "verdict": "verdict",
}
COMPOUND_SCREEN = {
    "phi": "φ",
    "compound_top1": "compound",
    "best_single": "best",
    "compound_minus_best": "diff",
    "difference_std": "±",
    "p": "p",
    "verdict": "verdict",
}
POOLED_SCREEN = {
    "dimension": "dimension",
    "cells": "cells",
    "compound_minus": "diff",
    "ci_low": "low",
    "ci_high": "high",
    "p": "p",
    "verdict": "verdict",
}


def _on_screen(rows: list[dict]) -> list[dict]:
    """Rows as the terminal shows them: top-1 points to two decimals, budgets as 100k,
    coefficients as α=1.2."""
    from effscale.report.plots import budget_label

    def short(column, value):
        if column == "budget" and isinstance(value, int):
            return budget_label(value)
        if column == "scaling" and isinstance(value, str):  # alpha=1.2 beta=1.1 -> α=1.2 β=1.1
            for name, letter in (("alpha", "α"), ("beta", "β"), ("gamma", "γ")):
                value = value.replace(f"{name}=", f"{letter}=")
            return value
        if column == "p" and isinstance(value, float):
            return float(f"{value:.2g}")  # 0.003 is not 0.0
        return round(value, 2) if isinstance(value, float) else value

    return [{c: short(c, v) for c, v in row.items()} for row in rows]


def _telling(rows: list[dict]) -> list[str]:
    """The model, budget and coefficient-choice columns, where they differ between rows."""
    return [c for c in ("model", "budget", "scaling") if len({r.get(c) for r in rows}) > 1]


@app.command()
def plot(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Redraw the plots of a run directory (PNG and SVG in RUN_DIR/figures).

    Example: effscale plot runs/figure3
    """
    from effscale.report import redraw

    paths = redraw(run_dir)
    output.rows([{"figure": str(p)} for p in paths], fmt, title="Figures")


def _one_run_dir(run_dirs: list[str], out: str | None) -> str:
    """The run directory to report: the one given, or several combined into --out."""
    from effscale.study.combine import combine_runs

    if len(run_dirs) == 1 and out is None:
        return run_dirs[0]
    if out is None:
        raise EffscaleError(
            "several run directories are reported together into one", "give --out DIR"
        )
    return str(combine_runs(run_dirs, out))
