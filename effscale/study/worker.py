"""One point of a study, trained where an executor runs it: the leaf every executor calls.

A Task is what crosses to a worker (a process, a Ray task, a Slurm job); run_point takes the
point's lock and trains it into its directory with effscale.training.loop.
"""

import re
from dataclasses import dataclass, replace

from effscale.data.cache import dataset
from effscale.rundir import StudyDir
from effscale.study.plan import Point


@dataclass(frozen=True)
class Task:
    """What an executor needs to train one point; picklable, so it can cross processes."""

    point: Point
    run_dir: str
    device: str = "auto"
    compile: bool | None = None  # torch.compile: forced on or off, or decided (None)
    imports: tuple[str, ...] = ()  # modules that register the plan's backbones (a lab's own)
    log: tuple[str, ...] = ()  # trackers the point also logs to (effscale.tracking)
    study: str = "effscale"  # the study's name: the trackers group its points by it
    # WSD: (samples, key) of the shorter budgets this run seeds (effscale.study.branches)
    branches: tuple[tuple[int, str], ...] = ()


def run_point(task: Task, emit=None, should_stop=None) -> dict:
    """Train one point into its directory, unless another process is already on it.

    ``emit(kind, key, payload)`` receives the run's events (effscale.training.loop) under its key;
    ``should_stop()``, asked after every step, stops the run there with a checkpoint
    (effscale.errors.Interrupted).
    """
    import importlib

    from effscale.training.loop import train

    for module in task.imports:  # a backbone registered outside effscale: known here too
        importlib.import_module(module)
    store = StudyDir(task.run_dir)
    point = store.point(task.point.key)
    # `effscale status` takes a point's lock for an instant to see whether it is held: wait a
    # little so that such a look never makes a worker skip a point.
    with point.lock(wait=2.0) as mine:
        if not mine:
            return {"status": "running", "note": "another process is training this point"}
        point.clear_failure()
        point.forget_unverifiable(emit and (lambda kind, p: emit(kind, task.point.key, p)))
        init_from = None
        if task.point.init_from:
            init_from = store.point(task.point.init_from).checkpoint
        data = dataset(task.point.data, task.point.variant.resolution)
        on_event = (lambda kind, payload: emit(kind, task.point.key, payload)) if emit else None
        on_event, finish = _tracked(task, data, store, on_event)
        result = train(
            task.point.variant,
            data,
            task.point.recipe,
            point.path,
            seed=task.point.seed,
            device=task.device,
            resume=True,
            init_from=init_from,
            new_head=True,
            compile=task.compile,
            on_event=on_event,
            should_stop=should_stop,
            branches=[
                (replace(task.point.recipe, samples=samples), store.point(key).path)
                for samples, key in task.branches
            ],
        )
        finish(result)
        return result


def _tracked(task: Task, data, store: StudyDir, on_event):
    """The point's events, also logged to its trackers (effscale.tracking), and the call
    that ends their runs; without trackers, the events as they are."""
    if not task.log:
        return on_event, lambda result: None
    from effscale.cost import count_cost
    from effscale.tracking import point_params, tracked

    p = task.point
    cost = count_cost(p.variant, data.num_classes)
    params = {"key": p.key, "roles": ",".join(p.roles),
              **point_params(p.variant, p.recipe, p.seed, p.data, cost)}  # fmt: skip
    name = re.sub(r"[^A-Za-z0-9.=-]+", "_", f"{p.variant.label}-seed{p.seed}-{p.recipe.samples}")
    return tracked(task.log, store.path, task.study, f"{name}-{p.key}", params, on_event)
