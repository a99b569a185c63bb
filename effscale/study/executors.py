"""Executors run a study's points: in this process, or in local worker processes.

Both take the same tasks and report through the same events, ``events(kind, key, payload)``
with kind one of start, progress, done, failed; a distributed engine (Ray, Slurm) implements
the same ``run(tasks, events)``. The function that trains one point, ``run_point``, lives in
effscale.study.engine and is what every executor calls.
"""

import ctypes
import os
import queue as queue_mod
import signal
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from effscale.errors import EffscaleError


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

    def run(self, tasks, events) -> None:
        from effscale.study.engine import run_point

        for task in tasks:
            events("start", task.point.key, task.point.variant.label)
            try:
                result = run_point(task, events)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # one failing point must not stop the study
                events("failed", task.point.key, _failure(e))
            else:
                events("done", task.point.key, result)


# -- local worker processes -------------------------------------------------------------

_queue = None


def _init_worker(q, threads: int, devices: list[str], counter) -> None:
    global _queue
    _queue = q
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

    device = os.environ.get("EFFSCALE_WORKER_DEVICE", task.device)
    task = replace(task, device=device if task.device in ("auto", "cuda") else task.device)
    emit("start", task.point.key, task.point.variant.label)
    return run_point(task, emit)


class LocalWorkers:
    """N worker processes: one per GPU (or several small runs per GPU), or CPU processes
    with the machine's threads split between them."""

    def __init__(self, workers: int, device: str = "auto"):
        if workers < 1:
            raise EffscaleError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        cuda = device != "cpu" and torch.cuda.is_available()
        self.devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if cuda else ["cpu"]
        self.threads = 1 if cuda else max(1, (os.cpu_count() or 1) // workers)

    def run(self, tasks, events) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        q, counter = ctx.Queue(), ctx.Value("i", 0)
        with ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(q, self.threads, self.devices, counter),
        ) as pool:
            futures = {pool.submit(_worker_run, t): t for t in tasks}
            pending = set(futures)
            while pending:
                self._drain(q, events)
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                self._drain(q, events)
                for f in done:
                    key = futures[f].point.key
                    try:
                        events("done", key, f.result())
                    except BaseException as e:
                        events("failed", key, _failure(e))

    @staticmethod
    def _drain(q, events) -> None:
        while True:
            try:
                kind, key, payload = q.get_nowait()
            except queue_mod.Empty:
                return
            events(kind, key, payload)


# -- choosing one -----------------------------------------------------------------------


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
    given = {
        "--workers": workers != 1,
        "--address": address is not None,
        "--partition": partition is not None,
        "--gpus-per-point": gpus_per_point is not None,
        "--time": time_min != 60,
        "--max-parallel": max_parallel is not None,
    }
    allowed = {
        "local": {"--workers"},
        "ray": {"--address", "--gpus-per-point"},
        "slurm": {"--partition", "--gpus-per-point", "--time", "--max-parallel"},
    }
    if name not in allowed:
        raise EffscaleError(f"unknown executor {name!r}", "use local, ray or slurm")
    wrong = [opt for opt, on in given.items() if on and opt not in allowed[name]]
    if wrong:
        owners = [n for n in allowed if wrong[0] in allowed[n]]
        raise EffscaleError(
            f"{wrong[0]} does not apply to --executor {name}",
            f"it is for --executor {' or '.join(owners)}",
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
