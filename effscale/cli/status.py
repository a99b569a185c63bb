"""effscale status: the state of each point in a run directory.

Example:
    effscale status runs/figure3
    effscale status runs/figure3 --points --format csv
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import FormatOpt, RunDirArg
from effscale.output import Format


@app.command()
def status(
    run_dir: RunDirArg,
    points: Annotated[
        bool,
        typer.Option(
            "--points",
            help="One row per point instead: its d, w, r, resolution, seed, budget, roles, "
            "state, top-1 and directory (to find 'w = 2, seed 0' without results.csv).",
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
):
    """Points done, running, interrupted, failed, diverged and left in a run directory.

    Example: effscale status runs/figure3; effscale status runs/figure3 --points --format csv
    """
    from effscale.rundir import StudyDir
    from effscale.study.executors.slurm import job_states

    if points:
        output.rows(point_rows(StudyDir(run_dir)), fmt, title=f"Points of {run_dir}")
        return

    st = StudyDir(run_dir).status()
    jobs = job_states(run_dir)  # None unless the points were submitted to Slurm
    if jobs is not None:
        st["slurm"] = jobs
    if fmt is Format.json:
        output.record(st, fmt)
        return
    output.record(st, fmt, title=f"Study {st['study']}")
    if st["progress"]:
        output.rows(
            [
                {
                    "point": p["variant"],
                    "seed": p["seed"],
                    "state": st["states"][key],
                    "samples": f"{p['samples_done']:,}/{p['samples']:,}",
                    "epochs": p["epochs_done"],
                    "top1_last": p["top1_last"],
                }
                for key, p in st["progress"].items()
            ],
            fmt,
            title="Points in progress (from each point's progress.json, else its metrics.jsonl)",
        )
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


def point_rows(store) -> list[dict]:
    """Each planned point with what names it for a person, and where it is."""
    study = store.load_study()
    rows = []
    for p in study.points:
        result = store.finished_result(p.key) or {}
        v = p.variant
        rows.append(
            {
                "key": p.key,
                "model": v.backbone,
                "d": v.d,
                "w": v.w,
                "r": v.r,
                "resolution": v.resolution,
                "seed": p.seed,
                "samples": p.recipe.samples,
                "roles": ",".join(p.roles),
                "state": store.state(p.key),
                "top1": result.get("top1"),
                "path": str(store.point_dir(p.key)),
            }
        )
    return rows
