"""Executors run a study's points: in this process, in local worker processes (local), on Ray
(ray) or on Slurm (slurm).

Both take the same tasks and report through the same events, ``events(kind, key, payload)``
with kind one of start, progress, done, failed; a distributed engine (Ray, Slurm) implements
the same ``run(tasks, events)``. The function that trains one point, ``run_point``, lives in
effscale.study.worker and is what every executor calls.

Ctrl-C: while a study runs (stop_on_sigint), the first SIGINT asks for a clean stop. No new
point starts, and each running point stops at the end of its current training step, which
leaves its checkpoint (the last one written) as it was: files are only ever replaced
whole (effscale.io). A second SIGINT stops at once. Worker processes ignore SIGINT (a
terminal sends it to them too) and stop when the driver tells them to.
"""

from typing import Protocol

from effscale.errors import EffscaleError
from effscale.study.executors.events import request_stop, stop_on_sigint, stop_requested
from effscale.study.executors.local import InProcess, LocalWorkers


class Executor(Protocol):
    """What the engine and the estimate ask of an executor, and all they ask: no type is
    named anywhere else. An executor of your own may subclass it for the defaults (trains
    elsewhere, one thread a point, as many at once as it likes) and write ``run``."""

    local: bool = False  # trains on this machine: the device is checked here first
    same_process: bool = False  # trains in this process: it knows what was registered here

    def shape(self) -> tuple[int, int | None]:
        """Torch threads per point, and points run at once (None: a cluster decides)."""
        return 1, None

    def run(self, tasks, events) -> None:
        """Train the tasks (effscale.study.worker.run_point each), reporting ``events(kind,
        key, payload)``; stop starting points, and stop running ones at the end of their
        step, once ``stop_requested()``."""


# Slurm's settings beyond those other executors share (SlurmExecutor's arguments).
SLURM_ONLY = ("account", "qos", "mem", "cpus_per_point", "constraint", "setup", "sbatch")

__all__ = [
    "Executor",
    "InProcess",
    "LocalWorkers",
    "make_executor",
    "misplaced",
    "request_stop",
    "stop_on_sigint",
    "stop_requested",
]


OPTIONS = {  # the options each executor takes (beside the device), and their defaults
    "local": ("workers", "threads"),
    "ray": ("address", "gpus_per_point"),
    "slurm": ("partition", "gpus_per_point", "time_min", "max_parallel", *SLURM_ONLY),
}
DEFAULTS = dict(workers=1, address=None, partition=None, gpus_per_point=None, time_min=60)
DEFAULTS |= dict(max_parallel=None, threads=None) | {k: None for k in SLURM_ONLY}


def misplaced(name: str, **options) -> list[tuple[str, list[str]]]:
    """The options given (not at their defaults) that executor ``name`` does not take, each
    with the executors that take it."""
    wrong = [k for k, v in options.items() if v != DEFAULTS[k] and k not in OPTIONS[name]]
    return [(k, [n for n in OPTIONS if k in OPTIONS[n]]) for k in wrong]


def make_executor(
    name: str = "local", device: str = "auto", run_dir=None, plan_only: bool = False, **options
):
    """The executor a study command asks for: local (this process, or ``workers`` worker
    processes), ray (effscale.study.executors.ray) or slurm (effscale.study.executors.slurm).
    ``options``: OPTIONS' (absent ones at DEFAULTS). ``threads``: torch threads per point,
    local only (default: the cores split between the workers; in this process, torch's
    default). Ray and Slurm give a point its CPUs' threads. ``plan_only``: the executor is
    asked for its shape (a dry run), never to run: Slurm then needs no sbatch here.

    Options of another executor are refused, so that none is silently ignored.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"make_executor got unknown options {unknown}")
    options = DEFAULTS | options
    if options["workers"] < 1:
        raise EffscaleError(f"workers must be at least 1, got {options['workers']}")
    if name not in OPTIONS:
        raise EffscaleError(f"unknown executor {name!r}", "use local, ray or slurm")
    wrong = misplaced(name, **options)
    if wrong:
        option, owners = wrong[0]
        raise EffscaleError(
            f"{option} does not apply to the {name} executor",
            f"it is for the {' or '.join(owners)} executor",
        )
    if name == "ray":
        from effscale.study.executors.ray import RayExecutor

        return RayExecutor(address=options["address"], gpus_per_point=options["gpus_per_point"])
    if name == "slurm":
        from pathlib import Path

        from effscale.study.executors.slurm import SlurmExecutor

        taken = {k: options[k] for k in OPTIONS["slurm"] if options[k] is not None}
        return SlurmExecutor(Path(run_dir) / "slurm", plan_only=plan_only, **taken)
    workers, threads = options["workers"], options["threads"]
    return LocalWorkers(workers, device, threads) if workers > 1 else InProcess(threads)
