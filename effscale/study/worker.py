"""One point of a study, trained where an executor runs it: the leaf every executor calls.

A Task is what crosses to a worker (a process, a Ray task, a Slurm job); run_point takes the
point's lock and trains it into its directory with effscale.training.loop.
"""

from dataclasses import dataclass

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


def run_point(task: Task, emit=None) -> dict:
    """Train one point into its directory, unless another process is already on it.

    ``emit(kind, key, payload)`` receives the run's events (effscale.training.loop) under its key.
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
        return train(
            task.point.variant,
            dataset(task.point.data, task.point.variant.resolution),
            task.point.recipe,
            point.path,
            seed=task.point.seed,
            device=task.device,
            resume=True,
            init_from=init_from,
            new_head=True,
            compile=task.compile,
            on_event=(lambda kind, payload: emit(kind, task.point.key, payload)) if emit else None,
        )
