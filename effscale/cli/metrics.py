"""effscale metrics: every point's per-epoch metrics of a run directory in one long table.

Example:
    effscale metrics runs/figure3 --format csv > epochs.csv
"""

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import FormatOpt, RunDirArg
from effscale.output import Format


@app.command()
def metrics(run_dir: RunDirArg, fmt: FormatOpt = Format.csv):
    """Every point's metrics.jsonl in one table: one row per point and epoch, with the
    point's key, d, w, r, resolution, seed, budget and roles (CSV by default).

    Example: effscale metrics runs/figure3 > epochs.csv
    """
    from effscale.rundir import StudyDir

    store = StudyDir(run_dir)
    rows = []
    for p in store.load_study().points:
        v = p.variant
        who = {"key": p.key, "model": v.backbone, "d": v.d, "w": v.w, "r": v.r,
               "resolution": v.resolution, "seed": p.seed, "budget": p.recipe.samples,
               "roles": ",".join(p.roles)}  # fmt: skip
        for epoch in store.point(p.key).epochs():  # damaged lines are skipped
            rows.append(
                {**who, **{k: v for k, v in epoch.items() if not isinstance(v, dict | list)}}
            )
    output.rows(rows, fmt, title=f"Epochs of {run_dir}")
