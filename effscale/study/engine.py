"""The one engine every study goes through: sweep, compound, search and study files.

run_study checks the whole plan first (check_plan), writes (or extends) it, skips finished
points, hands the rest to an executor, tells one callback what happens (``on_event(kind,
key, payload)``; it draws nothing itself, the CLI draws through effscale.display.show_study)
and rebuilds the results table after every point. Killing it loses at most the current
epoch of the running points: a rerun resumes them from their checkpoints and never retrains
a finished one; run_search does the same for a grid search, then ranks it. Ctrl-C stops it
cleanly (effscale.study.executors) and raises Interrupted saying what finished; failed
points are recorded (error.json) and raise_if_failed reports them.
"""

import hashlib
import json
import time
import warnings
from functools import partial
from pathlib import Path

import pandas as pd

from effscale import io
from effscale.cost import count_cost
from effscale.errors import EffscaleError, Interrupted
from effscale.rundir import ERROR, FINISHED, SEARCH_FILE, StudyDir
from effscale.study.branches import trunk_of, wsd_branches
from effscale.study.plan import Point, Study
from effscale.study.worker import Task


def check_plan(study: Study, device: str = "auto", here: bool = True) -> None:
    """Refuse, before any point starts, a plan that could not train: no points, a recipe
    that train would refuse (Recipe.validate), a variant too large to build, a negative
    seed, or a device this machine lacks (``here=False``: the points run elsewhere, on
    Slurm or Ray, and only the device's name is checked). The messages are train's."""
    from effscale.training.device import resolve_device
    from effscale.zoo import resolve_spec

    if not study.points:
        raise EffscaleError(f"study {study.name!r} plans no points", "give at least one seed")
    for recipe in dict.fromkeys(p.recipe for p in study.points):
        recipe.validate()
    for variant in dict.fromkeys(p.variant for p in study.points):
        resolve_spec(variant)  # refuses variants too small or too large to build
    if bad := [p.seed for p in study.points if p.seed < 0]:
        raise EffscaleError(f"seeds must be 0 or more, got {bad[0]}")
    if here:
        resolve_device(device)
    elif device not in ("auto", "cpu") and not device.startswith("cuda"):
        resolve_device(device)  # an unknown name: train's message


def worker_imports(study: Study, executor) -> tuple[str, ...]:
    """The modules a worker process imports to know the plan's backbones: those registered
    outside effscale (workers import effscale, not the driver's other modules). A backbone
    registered in __main__ (a script, a notebook) cannot be imported: refused, unless the
    points train in this process."""
    from effscale.zoo.registry import registered_in

    modules = {registered_in(p.variant.backbone) for p in study.points}
    if executor is None or executor.same_process:
        return ()
    if "__main__" in modules:
        name = next(p.variant.backbone for p in study.points
                    if registered_in(p.variant.backbone) == "__main__")  # fmt: skip
        raise EffscaleError(
            f"backbone {name!r} is registered in __main__ (a script or a notebook), which "
            "worker processes do not run, so they would not know it",
            "register it in a module they can import (or as an effscale.backbones entry "
            "point), or train in this process (one worker, the local executor)",
        )
    return tuple(sorted(m for m in modules if m != "effscale" and not m.startswith("effscale.")))


def raise_if_failed(study: Study, run_dir: str | Path) -> None:
    """Exit code 1 and one line when points of the study failed: how many, and where their
    errors are (points/<key>/error.json; `effscale status` lists them)."""
    store = StudyDir(run_dir)
    failed = [p.key for p in study.points if store.state(p.key) == "failed"]
    if failed:
        raise EffscaleError(
            f"{len(failed)} of {len(study.points)} points failed; their errors are in "
            f"{store.point_dir('<key>') / ERROR} (first: {store.point_dir(failed[0])})",
            f"effscale status {store.path} lists them; a rerun retries them",
            exit_code=1,
        )


def training_order(points: list[Point]) -> list[Point]:
    """Seed by seed, cheapest first: a partial study already has whole curves to report.

    Cheapest is FLOPs x samples, the time a point takes, so that a short-budget point of a
    larger network is not queued behind a long-budget point of a smaller one."""
    return sorted(points, key=lambda p: (p.seed, count_cost(p.variant).flops * p.recipe.samples))


def run_study(
    study: Study,
    run_dir: str | Path,
    *,
    executor=None,
    device: str = "auto",
    force: bool = False,
    on_event=None,
    compile: bool | None = None,
    estimates=None,
    log: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Run every unfinished point of a study and return the results table.

    ``log``: trackers each point also logs to (effscale.tracking: tensorboard, mlflow, wandb).

    A point that fails does not stop the others: its error goes to its error.json, to
    ``on_event`` ("failed") and into the returned table's ``attrs["failures"]`` (key ->
    error); without ``on_event``, a warning says how many failed.

    ``estimates``: an effscale.study.estimate.Estimate of this study, kept in the run
    directory (estimates.json) for the report and used for the study's ETA.
    ``on_event(kind, key, payload)`` hears what happens (ENGINE_EVENTS); nothing is drawn
    without it.

    Raises Interrupted after a Ctrl-C, once the running points have stopped.
    """
    from effscale.data.cache import fetch_missing
    from effscale.study.estimate import StudyClock, executor_shape, load_estimates, save_estimates
    from effscale.study.executors import InProcess, stop_on_sigint, stop_requested

    executor = executor or InProcess()
    check_plan(study, device, here=executor.local)
    imports = worker_imports(study, executor)
    store = StudyDir(io.writable_dir(run_dir))
    store.remove_orphans()
    study = store.save_study(study, force=force)
    if estimates is not None:
        save_estimates(store.path, estimates)
    finished = {p.key for p in study.points if store.state(p.key) in FINISHED}
    already = len(finished)
    fetch_missing(p.data for p in study.points if p.key not in finished)  # here, not per worker
    emit = on_event or _ignore
    for problem in store.problems:  # damaged files: those points are trained again
        emit("damaged", None, problem)
    todo = training_order([p for p in study.points if p.key not in finished])
    failures: dict[str, str] = {}
    seconds = {k: e["seconds"] for k, e in load_estimates(store.path).items() if "seconds" in e}
    clock = StudyClock(seconds, [p.key for p in todo], executor_shape(executor)[1])

    with stop_on_sigint():
        try:
            # each point's task: where it trains, on what, and what its worker imports
            task = partial(Task, run_dir=str(store.path), device=device, compile=compile,
                           imports=imports, log=log, study=study.name)  # fmt: skip
            task = _seeding(task, todo)
            _run(study, store, executor, todo, finished, failures, clock, emit, task)
            interrupted = stop_requested()
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread
            interrupted = True
    df = store.write_results(study)
    if failures:  # the table holds finished points only: the failures travel beside it
        df.attrs["failures"] = dict(failures)
        if on_event is None:  # nobody heard them fail: never a short table in silence
            warnings.warn(
                f"{len(failures)} of {len(study.points)} points failed (their errors: "
                f"df.attrs['failures'], {store.path}/points/<key>/error.json)", stacklevel=2
            )  # fmt: skip
    if interrupted:
        done = sum(store.state(p.key) in FINISHED for p in study.points)
        raise Interrupted(
            f"{done} of {len(study.points)} points finished ({done - already} in this run); "
            "the points that were running stopped, each keeping its last checkpoint "
            f"in {store.path}/points",
            "rerun the same command to resume: finished points are kept, interrupted ones "
            "continue from their checkpoints",
        )
    return df


# What run_study tells its on_event, besides the points' own events (effscale.study.worker:
# start, progress, message, epoch, done, failed, each with the point's key):
# Every kind ``on_event`` hears: a point's own (from its executor and effscale.training.loop, under
# its key), then the engine's (key None).
ENGINE_EVENTS = {
    "start": "a point began; payload its label",
    "progress": "the training loop's progress: description and total, then completed, info",
    "message": "the training loop's line of text (resumed, diverged, ...)",
    "epoch": "the training loop's metrics of an epoch, once its checkpoint is written",
    "done": "a point ended; payload its result (status finished, diverged, ...)",
    "failed": "a point raised; payload the error's line",
    "study": "after every event: completed, total, seconds_left, points_per_hour, failed",
    "damaged": "a damaged file in the run directory (key None); its point trains again",
    "stopping": "the first Ctrl-C was heard (key None): no new point starts",
}


def _ignore(kind, key, payload) -> None:
    pass


def _run(study, store, executor, todo, finished, failures, clock, emit, task) -> None:
    """The executor's waves of points; the bookkeeping of each event, then ``emit`` it."""
    from effscale.study.executors import stop_requested

    totals: dict[str, float] = {}
    started, done_here = time.perf_counter(), 0
    said = []

    def tell_study():
        hours = (time.perf_counter() - started) / 3600
        summary = {
            "completed": len(finished),
            "total": len(study.points),
            "seconds_left": clock.seconds_left(),
            "points_per_hour": done_here / hours if done_here and hours > 0 else None,
            "failed": len(failures),
        }
        emit("study", None, summary)

    def events(kind, key, payload):
        nonlocal done_here
        if stop_requested() and not said:
            said.append(True)
            emit("stopping", None, None)
        if kind == "start":
            clock.start(key)
        elif kind == "progress":
            totals[key] = payload.get("total") or totals.get(key)
            clock.progress(key, payload.get("completed", 0), totals.get(key))
        elif kind in ("done", "failed"):
            clock.done(key)
            if kind == "failed":
                failures[key] = payload
                store.record_failure(key, payload)
            elif payload.get("status") in FINISHED:
                finished.add(key)
                done_here += 1
                store.write_results(study)
        emit(kind, key, payload)
        tell_study()

    tell_study()
    _waves(store, executor, todo, finished, failures, task, events)


def _waves(store, executor, todo, finished, failures, task, events) -> None:
    """Points that fine-tune another point's checkpoint wait for it: run in waves."""
    from effscale.study.executors import stop_requested

    while todo and not stop_requested():
        for p in [p for p in todo if p.init_from and store.state(p.init_from) == "diverged"]:
            failures[p.key] = f"the point it fine-tunes ({p.init_from}) diverged"
            store.record_failure(p.key, failures[p.key])
            todo.remove(p)
        waits = trunk_of(todo)  # a WSD branch waits for the run that seeds it
        pending = {p.key for p in todo}
        wave = [
            p for p in todo
            if (not p.init_from or p.init_from in finished) and waits.get(p.key) not in pending
        ]  # fmt: skip
        if not wave:
            break  # their sources failed; they stay pending and status shows why
        executor.run([task(p) for p in wave], events)
        todo = [
            p for p in todo if p.key not in finished and p.key not in failures and p not in wave
        ]


def _seeding(task, todo: list[Point]):
    """``task`` whose trunks also seed their WSD branches (effscale.study.branches)."""
    seeds = {
        trunk: tuple((b.recipe.samples, b.key) for b in branches)
        for trunk, branches in wsd_branches(todo).items()
    }
    return lambda p: task(p, branches=seeds.get(p.key, ()))


def _plan_id(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def run_search(
    study: Study,
    record: dict,
    run_dir: str | Path,
    *,
    executor=None,
    device: str = "auto",
    force: bool = False,
    on_event=None,
    estimates=None,
) -> None:
    """Store the plan (study.json, search.json) and train what is unfinished; ranking (and
    so Step 1's choice) is the report's: effscale.report.search.search_report(run_dir).
    ``estimates``: the study's Estimate (effscale.study.estimate), kept for the report."""
    store = StudyDir(io.writable_dir(run_dir))
    study = store.save_study(study, force=force)  # refuses another study's directory first
    plan_id = _plan_id(record)
    path = store.path / SEARCH_FILE
    stored, _ = io.read_json(path)  # a damaged one is written again
    if stored is None or stored.get("plan_id") != plan_id:
        io.write_json(path, {**record, "plan_id": plan_id, "chosen": None})
    run_study(
        study,
        store.path,
        executor=executor,
        device=device,
        force=force,
        on_event=on_event,
        estimates=estimates,
    )
