"""Executors run a study's points: in this process, or in local worker processes.

Both take the same tasks and report through the same events, ``events(kind, key, payload)``
with kind one of start, progress, done, failed; a distributed engine (Ray, Slurm) implements
the same ``run(tasks, events)``. The function that trains one point, ``run_point``, lives in
effscale.study.engine and is what every executor calls.

Ctrl-C: while a study runs (stop_on_sigint), the first SIGINT asks for a clean stop. No new
point starts, and each running point stops at the end of its current training step, which
leaves its checkpoint (the last finished epoch) as it was: files are only ever replaced
whole (effscale.io). A second SIGINT stops at once. Worker processes ignore SIGINT (a
terminal sends it to them too) and stop when the driver tells them to.
"""

import ctypes
import os
import queue as queue_mod
import signal
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager

import torch

from effscale.errors import EffscaleError, Interrupted

# -- Ctrl-C -----------------------------------------------------------------------------


class _Stop:
    """Whether a clean stop was asked for (process-wide, as signals are)."""

    requested = False


def stop_requested() -> bool:
    return _Stop.requested


def request_stop() -> None:
    """What the first Ctrl-C does; for callers that stop a study another way."""
    _Stop.requested = True


@contextmanager
def stop_on_sigint():
    """While the block runs, the first SIGINT calls request_stop and a second raises
    KeyboardInterrupt (outside the main thread, where signals cannot be caught, Ctrl-C stays
    a plain KeyboardInterrupt)."""
    _Stop.requested = False
    main = threading.current_thread() is threading.main_thread()

    def handle(signum, frame):
        if _Stop.requested:
            raise KeyboardInterrupt
        request_stop()

    old = signal.signal(signal.SIGINT, handle) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
        _Stop.requested = False  # read stop_requested() inside the block


def _stopping(events):
    """Events that also end a running point at the end of its step once a stop is asked
    for: train emits "progress" after every step (and once before the first)."""

    def forward(kind, key, payload):
        events(kind, key, payload)
        if kind == "progress" and stop_requested():
            raise KeyboardInterrupt

    return forward


def _failure(e: BaseException) -> str:
    if isinstance(e, EffscaleError):
        return str(e)
    return (
        "".join(traceback.format_exception_only(type(e), e)).strip()
        + "\n"
        + traceback.format_exc(limit=-3)
    )


class InProcess:
    """One point after another in this process (the default on a CPU)."""

    local = True  # trains on this machine: the device is checked here (engine.check_plan)

    def run(self, tasks, events) -> None:
        from effscale.study.engine import run_point

        for task in tasks:
            if stop_requested():
                return  # Ctrl-C: no new point
            events("start", task.point.key, task.point.variant.label)
            try:
                result = run_point(task, _stopping(events))
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # one failing point must not stop the study
                events("failed", task.point.key, _failure(e))
            else:
                events("done", task.point.key, result)


# -- local worker processes -------------------------------------------------------------

_queue = None
_stop = None  # the driver's "stop at the end of the step" event


def _init_worker(q, threads: int, devices: list[str], counter, stop) -> None:
    global _queue, _stop
    _queue, _stop = q, stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:  # die with the driver: a killed study must not leave orphans training on
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    torch.set_num_threads(threads)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    os.environ["EFFSCALE_WORKER_DEVICE"] = devices[index % len(devices)]


def _worker_run(task):
    from dataclasses import replace

    from effscale.study.engine import run_point

    def emit(kind, key, payload):
        _queue.put((kind, key, payload))
        if kind == "progress" and _stop.is_set():
            raise KeyboardInterrupt  # the end of a step: the checkpoint is intact

    if _stop.is_set():
        raise Interrupted(f"{task.point.key} not started")
    device = os.environ.get("EFFSCALE_WORKER_DEVICE", task.device)
    task = replace(task, device=device if task.device in ("auto", "cuda") else task.device)
    emit("start", task.point.key, task.point.variant.label)
    return run_point(task, emit)


class LocalWorkers:
    """N worker processes: one per GPU (or several small runs per GPU), or CPU processes
    with the machine's threads split between them."""

    local = True

    def __init__(self, workers: int, device: str = "auto"):
        if workers < 1:
            raise EffscaleError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        cuda = device != "cpu" and torch.cuda.is_available()
        self.devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if cuda else ["cpu"]
        self.threads = 1 if cuda else max(1, (os.cpu_count() or 1) // workers)

    def run(self, tasks, events) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        q, counter, stop = ctx.Queue(), ctx.Value("i", 0), ctx.Event()
        with ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(q, self.threads, self.devices, counter, stop),
        ) as pool:
            futures = {pool.submit(_worker_run, t): t for t in tasks}
            pending = set(futures)
            try:
                while pending:
                    if stop_requested() and not stop.is_set():
                        stop.set()  # running points stop at the end of their step
                        for f in pending:
                            f.cancel()  # and queued ones never start
                    self._drain(q, events)
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    self._drain(q, events)
                    for f in done:
                        if not f.cancelled():
                            self._report(futures[f].point.key, f, events)
            except KeyboardInterrupt:  # a second Ctrl-C: stop without waiting for events
                stop.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    @staticmethod
    def _report(key, future, events) -> None:
        try:
            result = future.result()
        except KeyboardInterrupt:
            return  # stopped by Ctrl-C: not a failure, a rerun resumes it
        except BaseException as e:
            events("failed", key, _failure(e))
        else:
            events("done", key, result)

    @staticmethod
    def _drain(q, events) -> None:
        while True:
            try:
                kind, key, payload = q.get_nowait()
            except queue_mod.Empty:
                return
            events(kind, key, payload)


# -- choosing one -----------------------------------------------------------------------


OPTIONS = {  # the options each executor takes (beside the device), and their defaults
    "local": ("workers",),
    "ray": ("address", "gpus_per_point"),
    "slurm": ("partition", "gpus_per_point", "time_min", "max_parallel"),
}
DEFAULTS = dict(workers=1, address=None, partition=None, gpus_per_point=None, time_min=60)
DEFAULTS |= dict(max_parallel=None)


def misplaced(name: str, **options) -> list[tuple[str, list[str]]]:
    """The options given (not at their defaults) that executor ``name`` does not take, each
    with the executors that take it."""
    wrong = [k for k, v in options.items() if v != DEFAULTS[k] and k not in OPTIONS[name]]
    return [(k, [n for n in OPTIONS if k in OPTIONS[n]]) for k in wrong]


def make_executor(
    name: str = "local",
    workers: int = 1,
    device: str = "auto",
    address: str | None = None,
    partition: str | None = None,
    gpus_per_point: float | None = None,
    time_min: int = 60,
    max_parallel: int | None = None,
    run_dir=None,
):
    """The executor a study command asks for: local (this process, or ``workers`` worker
    processes), ray (effscale.study.ray_executor) or slurm (effscale.study.slurm_executor).

    Options of another executor are refused, so that none is silently ignored.
    """
    if workers < 1:
        raise EffscaleError(f"workers must be at least 1, got {workers}")
    if name not in OPTIONS:
        raise EffscaleError(f"unknown executor {name!r}", "use local, ray or slurm")
    wrong = misplaced(
        name,
        workers=workers,
        address=address,
        partition=partition,
        gpus_per_point=gpus_per_point,
        time_min=time_min,
        max_parallel=max_parallel,
    )
    if wrong:
        option, owners = wrong[0]
        raise EffscaleError(
            f"{option} does not apply to the {name} executor",
            f"it is for the {' or '.join(owners)} executor",
        )
    if name == "ray":
        from effscale.study.ray_executor import RayExecutor

        return RayExecutor(address=address, gpus_per_point=gpus_per_point)
    if name == "slurm":
        from pathlib import Path

        from effscale.study.slurm_executor import SlurmExecutor

        return SlurmExecutor(
            Path(run_dir) / "slurm",
            partition=partition,
            gpus_per_point=gpus_per_point or 0,
            time_min=time_min,
            max_parallel=max_parallel,
        )
    return LocalWorkers(workers, device) if workers > 1 else InProcess()
