"""The one engine every study goes through: sweep, compound, search and study files.

run_study writes (or extends) the plan, skips finished points, hands the rest to an
executor, shows a study bar above each run's bar, and rebuilds the results table after
every point. Killing it loses at most the current epoch of the running points: a rerun
resumes them from their checkpoints and never retrains a finished one.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.markup import escape

from effscale import output
from effscale.cost import count_cost
from effscale.study.plan import Point, Study
from effscale.study.store import RunDir, file_lock

FINISHED = ("done", "diverged")


@dataclass(frozen=True)
class Task:
    """What an executor needs to train one point; picklable, so it can cross processes."""

    point: Point
    run_dir: str
    device: str = "auto"
    compile: bool | None = None  # torch.compile: forced on or off, or decided (None)


_datasets: dict = {}


def dataset(spec: str, min_size: int | None = None):
    """Load a dataset once per process: points of one study share it. ``min_size``: the
    resolution to be trained; images of mixed sizes are stored at least that large."""
    from effscale.data.decode import mixed_size

    cached = _datasets.get(spec)
    # a point sees the same pixels whichever points this process trained before it
    if cached is None or (cached.resized and cached.resolution != mixed_size(min_size)):
        from effscale.data import load_dataset

        _datasets.pop(spec, None)  # one copy per process: images take memory
        _datasets[spec] = load_dataset(spec, min_size=min_size)
    return _datasets[spec]


def run_point(task: Task, emit=None) -> dict:
    """Train one point into its directory, unless another process is already on it.

    ``emit(kind, key, payload)`` receives the run's events (effscale.train) under its key.
    """
    from effscale.train import train

    store = RunDir(task.run_dir)
    out = store.point_dir(task.point.key)
    # `effscale status` takes a point's lock for an instant to see whether it is held: wait a
    # little so that such a look never makes a worker skip a point.
    with file_lock(out / ".lock", blocking=False, wait=2.0) as mine:
        if not mine:
            return {"status": "running", "note": "another process is training this point"}
        (out / "error.json").unlink(missing_ok=True)
        init_from = None
        if task.point.init_from:
            init_from = store.point_dir(task.point.init_from) / "checkpoint.pt"
        return train(
            task.point.variant,
            dataset(task.point.data, task.point.variant.resolution),
            task.point.recipe,
            out,
            seed=task.point.seed,
            device=task.device,
            resume=True,
            init_from=init_from,
            new_head=True,
            compile=task.compile,
            on_event=(lambda kind, payload: emit(kind, task.point.key, payload)) if emit else None,
        )


def run_study(
    study: Study,
    run_dir: str | Path,
    *,
    executor=None,
    device: str = "auto",
    force: bool = False,
    show_progress: bool = True,
    compile: bool | None = None,
    estimates=None,
) -> pd.DataFrame:
    """Run every unfinished point of a study and return the results table.

    ``estimates``: an effscale.study.estimate.Estimate of this study, kept in the run
    directory (estimates.json) for the report and used for the study bar's ETA.
    """
    from effscale.study.estimate import StudyClock, executor_shape, load_estimates, save_estimates
    from effscale.study.executors import InProcess

    store = RunDir(run_dir)
    study = store.save_study(study, force=force)
    if estimates is not None:
        save_estimates(store.path, estimates)
    executor = executor or InProcess()
    finished = {p.key for p in study.points if store.state(p.key) in FINISHED}
    # Seed by seed, cheapest first: a partial study already has whole curves to report.
    todo = sorted(
        (p for p in study.points if p.key not in finished),
        key=lambda p: (p.seed, count_cost(p.variant).flops),
    )
    failures: dict[str, str] = {}
    by_key = {p.key: p for p in study.points}
    seconds = {k: e["seconds"] for k, e in load_estimates(store.path).items() if "seconds" in e}
    clock = StudyClock(seconds, [p.key for p in todo], executor_shape(executor)[1])

    with output.progress() if show_progress else _NoProgress() as bar:
        study_task = bar.add_task(
            f"{study.name}", total=len(study.points), completed=len(finished), info=""
        )
        runs: dict[str, int] = {}
        totals: dict[str, float] = {}
        started, done_here = time.perf_counter(), 0

        def show_study():
            left = clock.seconds_left()
            hours = (time.perf_counter() - started) / 3600
            bar.update(
                study_task,
                completed=len(finished),
                eta_at=time.monotonic() + left if left is not None else None,
                rate=f"{done_here / hours:.3g} pt/h" if done_here and hours > 0 else "",
                info=f"{len(failures)} failed" if failures else "",
            )

        def events(kind, key, payload):
            nonlocal done_here
            if kind == "start":
                clock.start(key)
            elif kind == "progress":
                if key not in runs:
                    point = by_key.get(key)
                    label = point.variant.short_label if point else payload.get("description")
                    runs[key] = bar.add_task(
                        label or key,
                        total=payload.get("total"),
                        info="",
                        unit="img",
                    )
                totals[key] = payload.get("total") or totals.get(key)
                clock.progress(key, payload.get("completed", 0), totals.get(key))
                fields = {k: v for k, v in payload.items() if k != "description"}
                bar.update(runs[key], **fields)
            elif kind == "message":
                bar.console.print(payload, markup=False)
            elif kind == "epoch":
                bar.mark()
            elif kind in ("done", "failed"):
                clock.done(key)
                if key in runs:
                    bar.remove_task(runs.pop(key))
                if kind == "failed":
                    failures[key] = payload
                    store.record_failure(key, payload)
                    first_line = escape(payload.splitlines()[0])
                    bar.console.print(f"[red]point {key} failed:[/] {first_line}")
                elif payload.get("status") in FINISHED:
                    finished.add(key)
                    done_here += 1
                    store.write_results(study)
            show_study()

        show_study()
        # Points that fine-tune another point's checkpoint wait for it: run in waves.
        while todo:
            for p in [p for p in todo if p.init_from and store.state(p.init_from) == "diverged"]:
                failures[p.key] = f"the point it fine-tunes ({p.init_from}) diverged"
                store.record_failure(p.key, failures[p.key])
                todo.remove(p)
            wave = [p for p in todo if not p.init_from or p.init_from in finished]
            if not wave:
                break  # their sources failed; they stay pending and status shows why
            executor.run([Task(p, str(store.path), device, compile) for p in wave], events)
            todo = [
                p for p in todo if p.key not in finished and p.key not in failures and p not in wave
            ]
    return store.write_results(study)


class _NoProgress:
    """Stands in for the rich display when progress is off (tests, scripts)."""

    console = output.err_console

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def remove_task(self, *a, **k):
        pass

    def mark(self):
        pass
