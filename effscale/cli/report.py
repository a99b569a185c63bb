"""effscale report and effscale plot: tables, plots and verdicts from a run directory.

Examples:
    effscale report runs/figure3
    effscale plot runs/figure3
"""

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import DeviceOpt, FormatOpt, LatencyOpt, RunDirArg
from effscale.output import Format


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
    from effscale.report.report import trend_sentences

    if latency:
        from effscale.cli.running import measure_latency

        measure_latency(run_dir, device)
    result = write_report(run_dir)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    # The columns that tell rows apart come first: a study may hold several models,
    # training budgets and coefficient choices.
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
            output.rows(result[key], fmt, title=title, screen=_telling(result[key]) + screen)
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
