"""effscale fit: a scaling law fitted to a study's points, with intervals.

Examples:
    effscale fit runs/imagenette
    effscale fit docs/results/imagenette docs/results/imagenette-search --samples 100k
    effscale fit docs/results/cifar10 --holdout-above 7x --format json
"""

from pathlib import Path
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

HELD_SCREEN = ["form", "config", "flops_ratio", "measured", "measured_std", "predicted", "lo",
               "hi", "error", "covered"]  # fmt: skip


@app.command()
def fit(
    run_dirs: RunDirsArg,
    form: FormOpt = "auto",
    holdout_above: Annotated[
        str | None,
        typer.Option(
            "--holdout-above",
            metavar="RATIO",
            help="Fit on the points up to this FLOPs ratio (e.g. 2.6x) and score the "
            "law on the rest, per configuration.",
        ),
    ] = None,  # fmt: skip
    samples: LawSamplesOpt = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Write law_parity and law_curves (PNG and SVG) into DIR: measured against "
            "predicted (with --holdout-above: the chosen form fitted below the ratio, the "
            "held-out points marked) and the full fit drawn over accuracy vs FLOPs. Nothing "
            "is written into the run directories.",
        ),
    ] = None,  # fmt: skip
    draws: BootstrapOpt = 200,
    seed: SeedOpt = 0,
    per_param: PerParamOpt = 3.0,
    fmt: FormatOpt = Format.table,
):
    """Fit a scaling law (top-1 error against realised depth, width, resolution and
    budget) to a study's points: the chosen form, its parameters with 80 % bootstrap
    intervals, each dimension's saturation, and the optimal FLOP shares at 2x FLOPs as the
    paper's alpha, beta, gamma. When the points span two budgets or more, the
    compute-optimal split between model FLOPs and samples (exponents of training compute).

    CSV is the parameters (with --holdout-above: the held-out configurations). Example:
    effscale fit docs/results/imagenette --samples 100k --holdout-above 2.6x
    """
    from effscale.law import load_points
    from effscale.law.shape import optimal_shares, saturation
    from effscale.law.split import compute_split, split_line
    from effscale.law.validate import extrapolate

    points = load_points(run_dirs, samples_of(samples))
    held = None
    if holdout_above is not None:
        held = extrapolate(points, ratio(holdout_above, "--holdout-above"), per_param, draws, seed)
    points, selection, boot = fitted(run_dirs, form, samples, per_param, draws, seed, points)
    budget = max(points.budgets)
    result = {
        "points": len(points), "configs": points.n_configs, "budgets": points.budgets,
        "excluded": points.excluded, "form": boot.fit.form.name,
        "chosen_by": selection.reason if selection else "--form",
        "candidates": selection.scores if selection else [],
        "huber_delta": boot.fit.delta, "seed_sd": boot.fit.seed_sd,
        "bootstrap": {"draws": boot.draws, "failed": boot.failures, "seed": seed},
        "parameters": boot.parameters(), "saturation": saturation(boot, budget),
        "step1": optimal_shares(boot, budget),
    }  # fmt: skip
    result["compute_split"] = compute_split(boot, points)
    result["compute_split_note"] = split_line(points, result["compute_split"], boot.fit.form.name)
    if held:
        result["holdout"] = {k: v for k, v in held.items()
                             if k not in ("selection", "tables", "boots", "train")}  # fmt: skip
        result["holdout"]["chosen"] = held["selection"].chosen
        result["holdout"]["configs"] = [
            {"form": name, **row} for name, t in held["tables"].items()
            for row in t.to_dict("records")
        ]  # fmt: skip
    if plots:
        result["plots"] = [str(p) for p in _plots(plots, boot, points, held)]
    _print(result, fmt)


def _plots(out: str, boot, points, held: dict | None) -> list:
    """The parity plot (held-out points marked when there are some) and the law's curves."""
    import pandas as pd

    from effscale.law.validate import score
    from effscale.report.lawplots import law_figures

    table, parity_law = score(boot, points)[0].assign(held=False), None
    name = held and (held["selection"].chosen if held["selection"].chosen in held["boots"]
                     else next(iter(held["boots"]), None))  # fmt: skip
    if name:
        table = pd.concat(
            [
                score(held["boots"][name], held["train"])[0].assign(held=False),
                held["tables"][name].assign(held=True),
            ],
            ignore_index=True,
        )
        parity_law = (
            f"parity: law {name} fitted on the {held['fit_configs']} configurations "
            f"up to {held['above']:g}x FLOPs, the {held['held_configs']} above held out"
        )
    return law_figures(boot, points, Path(out), table, parity_law)


def _print(result: dict, fmt: Format) -> None:
    if fmt is Format.json:
        output.record(result, fmt)
        return
    if fmt is Format.csv:
        rows = result["holdout"]["configs"] if "holdout" in result else result["parameters"]
        output.rows(rows, fmt)
        return
    if result["excluded"]:
        output.note("left out: " + "; ".join(result["excluded"]), fmt)
    if result["candidates"]:
        output.rows(result["candidates"], fmt, title="Forms: extrapolation error within the "
                    "fitted points (top-1 points)")  # fmt: skip
    output.note(f"{result['form']} ({result['chosen_by']}), {result['points']} points, "
                f"{result['configs']} configurations; bootstrap {result['bootstrap']['draws']} "
                f"draws, {result['bootstrap']['failed']} failed", fmt)  # fmt: skip
    output.rows(result["parameters"], fmt, title="Parameters (80 % intervals)")
    output.rows(result["saturation"], fmt, title="Each dimension alone: exponent and the "
                "top-1 it saturates at")  # fmt: skip
    s = result["step1"]
    shares = [{"dimension": k, "share": s[f"share_{k}"][0], "lo": s[f"share_{k}"][1],
               "hi": s[f"share_{k}"][2], "p_optimum_beats_alone": s[f"p_beats_{k}"]}
              for k in ("d", "w", "r")]  # fmt: skip
    output.rows(shares, fmt, title="Optimal FLOP shares at 2x FLOPs (Step 1 from the law)")
    output.note("equivalent " + ", ".join(
        f"{n} = {s[n][0]:.3f} ({s[n][1]:.3f}-{s[n][2]:.3f})" for n in ("alpha", "beta", "gamma")
    ), fmt)  # fmt: skip
    output.note(result["compute_split_note"], fmt)
    if "holdout" in result:
        h = result["holdout"]
        output.rows(h["forms"], fmt, title=f"Extrapolation: fitted up to {h['above']:g}x "
                    f"({h['fit_configs']} configurations), {h['held_configs']} held out; "
                    f"chosen within the fitted points: {h['chosen']}")  # fmt: skip
        title = "Held-out configurations: measured (mean, std over seeds), predicted (80 %)"
        output.rows(h["configs"], fmt, title=title, screen=HELD_SCREEN)
    if result.get("plots"):
        output.note("plots: " + ", ".join(result["plots"]), fmt)
