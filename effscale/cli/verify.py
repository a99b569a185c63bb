"""effscale verify: the recommended network's seeds against the networks at its FLOPs.

Examples:
    effscale verify docs/results/imagenette-recommend --against docs/results/imagenette
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import FormatOpt, RunDirArg
from effscale.output import Format

SCREEN = {
    "network": "network", "shape": "shape", "flops_ratio": "FLOPs x", "top1_mean": "top1",
    "top1_std": "std", "seeds_paired": "seeds", "difference": "rec - it", "ci_low": "ci low",
    "ci_high": "ci high", "p_holm": "p (Holm)", "verdict": "verdict",
}  # fmt: skip


@app.command()
def verify(
    run_dir: RunDirArg,
    against: Annotated[
        list[str],
        typer.Option(
            "--against",
            metavar="DIR",
            help="Run directories with the networks to compare (the study the law was "
            "fitted on); repeat for several.",
        ),
    ],
    tolerance: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Relative FLOPs difference that still counts as equal."
        ),
    ] = 0.10,
    alpha: Annotated[
        float,
        typer.Option("--alpha", min=1e-6, max=0.5, help="The two-sided level a verdict needs."),
    ] = 0.05,
    fmt: FormatOpt = Format.table,
):
    """Test a recommendation: the points of role "recommended" in RUN_DIR (the plan
    `effscale recommend --plan` wrote, trained) against every network of --against at the
    same budget, protocol and base within --tolerance of its FLOPs, paired by seed (Student's
    paired t, Holm's correction over the networks).

    Example: effscale verify runs/recommend --against docs/results/imagenette
    """
    from effscale.report.recommendation import check_recommendation

    result = check_recommendation(run_dir, against, alpha, tolerance)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    r = result["recommended"]
    std = f" ± {r['top1_std']:.2f}" if r["top1_std"] == r["top1_std"] else ""
    output.rows(
        result["comparisons"], fmt, screen=SCREEN,
        title=f"The recommended {r['shape']}: {r['top1_mean']:.2f}{std} top-1 over "
        f"{r['seeds']} seed(s), {r['samples']:,} samples, protocol {r['protocol']}; against "
        f"each network within {result['tolerance']:.0%} of its FLOPs (alpha {alpha:g})",
    )  # fmt: skip
