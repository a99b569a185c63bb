"""Local executors: a study's points in this process, or in local worker processes.

Worker processes ignore SIGINT (a terminal sends it to them too) and stop when the driver
tells them to (effscale.study.executors.events).
"""

import ctypes
import os
import queue as queue_mod
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from effscale.errors import EffscaleError, Interrupted
from effscale.study.executors.events import failure, stop_requested
from effscale.study.worker import run_point


def default_threads(workers: int = 1) -> int:
    """Torch threads per point on a CPU: the cores split between the points that run at once,
    so that workers never oversubscribe the machine (at least one each)."""
    return max(1, (os.cpu_count() or 1) // workers)


class InProcess:
    """One point after another in this process (the default on a CPU), with ``threads``
    torch threads (None: torch's own default, every core)."""

    local = True  # trains on this machine: the device is checked here (engine.check_plan)
    same_process = True  # knows every backbone this process registered (worker_imports)

    def __init__(self, threads: int | None = None):
        if threads is not None and threads < 1:
            raise EffscaleError(f"threads must be at least 1, got {threads}")
        self.threads = threads

    def shape(self) -> tuple[int, int | None]:
        return self.threads or torch.get_num_threads(), 1

    def run(self, tasks, events) -> None:
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            self._run(tasks, events)
        finally:
            torch.set_num_threads(before)

    def _run(self, tasks, events) -> None:
        for task in tasks:
            if stop_requested():
                return  # Ctrl-C: no new point
            events("start", task.point.key, task.point.variant.label)
            try:
                result = run_point(task, events, should_stop=stop_requested)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # one failing point must not stop the study
                events("failed", task.point.key, failure(e))
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

    def emit(kind, key, payload):
        _queue.put((kind, key, payload))

    if _stop.is_set():
        raise Interrupted(f"{task.point.key} not started")
    device = os.environ.get("EFFSCALE_WORKER_DEVICE", task.device)
    task = replace(task, device=device if task.device in ("auto", "cuda") else task.device)
    emit("start", task.point.key, task.point.variant.label)
    return run_point(task, emit, should_stop=_stop.is_set)  # checked after every step


class LocalWorkers:
    """N worker processes: one per GPU (or several small runs per GPU), or CPU processes
    with the machine's threads split between them (``threads`` each, when given)."""

    local = True
    same_process = False

    def __init__(self, workers: int, device: str = "auto", threads: int | None = None):
        if workers < 1:
            raise EffscaleError(f"workers must be at least 1, got {workers}")
        if threads is not None and threads < 1:
            raise EffscaleError(f"threads must be at least 1, got {threads}")
        self.workers = workers
        cuda = device != "cpu" and torch.cuda.is_available()
        self.devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if cuda else ["cpu"]
        self.threads = threads or (1 if cuda else default_threads(workers))

    def shape(self) -> tuple[int, int | None]:
        return self.threads, self.workers

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
            events("failed", key, failure(e))
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
