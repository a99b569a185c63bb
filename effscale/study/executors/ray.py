"""Run a study's points as Ray tasks: on a local Ray, or on a cluster the user already runs.

Each point is one Ray task that calls ``effscale.study.worker.run_point``, exactly as the local
executors do: the task takes the point's file lock and writes its files through the same
atomic store. So the run directory must be on a filesystem every Ray node sees (NFS, Lustre,
a shared disk) at the same path, and effscale must be installed on every node. Tasks run in
the driver's working directory, so a relative --data path means the same everywhere. With no
address, the driver starts a local Ray bound to 127.0.0.1, which ends with the driver.

Resources per task: ``cpus_per_point`` CPUs (torch uses that many threads) and, when the
cluster has GPUs and the device is not cpu, ``gpus_per_point`` GPUs; by default a quarter of
a GPU for a point under 1 GFLOP (four such small runs share one GPU, which one alone would
leave mostly idle) and a whole GPU otherwise.

Failures: a worker that dies (killed, out of memory, node lost) has its task retried by Ray,
at most ``max_retries`` times; the point resumes from its last epoch checkpoint. An error
raised by training itself is not retried (it would fail again) and is reported as failed
with its message, as is a point whose worker died on every try. Stopping the driver is safe:
a rerun skips finished points and resumes interrupted ones.
"""

import logging
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

from effscale.errors import EffscaleError
from effscale.study.executors.events import failure, stop_requested

SMALL_FLOPS = 1e9  # multiply-adds at batch 1: below this a point gets a share of a GPU
SMALL_GPU_SHARE = 0.25
PROGRESS_EVERY = 0.5  # seconds between forwarded progress updates of one point


def import_ray():
    """Ray, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EffscaleError(
            "`executor`=ray needs Ray, which is not installed", 'pip install "effscale[ray]"'
        ) from None
    return ray


class _Events:
    """A small actor holding the events that tasks send until the driver collects them."""

    def __init__(self):
        self.items = []

    def push(self, *items):
        self.items.extend(items)

    def drain(self):
        items, self.items = self.items, []
        return items


def _train_point(task, sink, threads: int, cwd: str):
    """The Ray task: one point through run_point, its events sent to the driver's sink."""
    import ray
    import torch

    from effscale.study.worker import run_point

    if os.path.isdir(cwd):  # the driver's: relative data paths mean the same on every node
        os.chdir(cwd)
    torch.set_num_threads(threads)
    last = [0.0]

    def emit(kind, key, payload):
        now = time.monotonic()
        if kind == "progress" and "description" not in payload:
            if now - last[0] < PROGRESS_EVERY:
                return  # a bar per point needs no update per batch across the network
            last[0] = now
        sink.push.remote((kind, key, payload))

    key = task.point.key
    emit("start", key, task.point.variant.label)
    try:
        outcome = ("done", run_point(task, emit))
    except Exception as e:  # reported as the point's failure, not retried by Ray
        outcome = ("failed", failure(e))
    ray.get(sink.push.remote())  # calls from one caller run in order: all events are in
    return outcome


@contextmanager
def _loopback(ray):
    """Make a local Ray bind to 127.0.0.1, not to the machine's network address.

    Ray resolves its node address through ``services.get_node_ip_address``, which answers
    loopback only when its cluster mode is off (as on macOS and Windows); a node started in
    this process keeps the address it was given.
    """
    from ray._private import ray_constants

    before = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


class RayExecutor:
    """Points as Ray tasks. ``address`` None starts a local Ray on loopback with ``num_cpus``
    CPUs (default: all); "auto" or "HOST:PORT" joins a running cluster."""

    local = False  # Ray places the points: the device is checked where each runs
    same_process = False

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        gpus_per_point: float | None = None,
        cpus_per_point: float = 1,
        max_retries: int = 2,
    ):
        import_ray()  # fail now, before any work, when Ray is missing
        if cpus_per_point <= 0:
            raise EffscaleError(f"cpus per point must be positive, got {cpus_per_point}")
        if gpus_per_point is not None and gpus_per_point < 0:
            raise EffscaleError(f"`gpus_per_point` must be 0 or more, got {gpus_per_point}")
        if address is not None and num_cpus is not None:
            raise EffscaleError("num_cpus is for a local Ray; a cluster has its own CPUs")
        self.address, self.num_cpus = address, num_cpus
        self.gpus_per_point, self.cpus_per_point = gpus_per_point, cpus_per_point
        self.max_retries = max_retries
        self.started = False  # whether this executor started the Ray it uses

    def shape(self) -> tuple[int, int | None]:
        """A thread per CPU of a point; a local Ray runs as many points as it has CPUs."""
        parallel = (self.num_cpus or os.cpu_count() or 1) if self.address is None else None
        return max(1, int(self.cpus_per_point)), parallel

    def connect(self):
        """Join Ray: the connection this process already has, the cluster, or a new local one."""
        ray = import_ray()
        if ray.is_initialized():
            return ray
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.address is None:
            with _loopback(ray):
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **quiet)
            self.started = True
            return ray
        on_loopback = self.address.split(":")[0] in ("127.0.0.1", "localhost")
        try:
            with _loopback(ray) if on_loopback else nullcontext():
                ray.init(address=self.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as e:
            while e.__cause__ is not None:  # Ray wraps the reason (refused, bad token ...)
                e = e.__cause__
            raise EffscaleError(
                f"cannot join the Ray cluster at {self.address}: {str(e).strip().splitlines()[0]}",
                "start one with `ray start --head`, or leave out `address` for a local Ray",
            ) from None
        return ray

    def close(self) -> None:
        """Stop the local Ray this executor started (a joined cluster is left running)."""
        if self.started:
            import_ray().shutdown()
            self.started = False

    def gpus_for(self, task, cluster_gpus: float) -> float:
        """GPUs one point asks for (see the module docstring for the rule)."""
        if task.device == "cpu" or not cluster_gpus:
            return 0
        if self.gpus_per_point is not None:
            return self.gpus_per_point
        from effscale.cost import count_cost

        return SMALL_GPU_SHARE if count_cost(task.point.variant).flops < SMALL_FLOPS else 1

    def run(self, tasks, events) -> None:
        if not tasks:
            return
        ray = self.connect()
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if tasks[0].device.startswith("cuda") and not cluster_gpus:
            raise EffscaleError(
                f"`device`={tasks[0].device}: the Ray cluster has no GPUs",
                "use `device`=auto or cpu, or join a cluster with GPU nodes",
            )
        sink = ray.remote(num_cpus=0)(_Events).remote()
        train = ray.remote(_train_point)
        threads = max(1, int(self.cpus_per_point))
        run_dir = str(Path(tasks[0].run_dir).resolve())  # one study, one run directory
        keys = {}
        for task in tasks:
            gpus = self.gpus_for(task, cluster_gpus)
            # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it grants: "cuda" is the first of them
            ref = train.options(
                num_cpus=self.cpus_per_point,
                num_gpus=gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,
            ).remote(
                replace(task, device="cuda" if gpus else "cpu", run_dir=run_dir),
                sink,
                threads,
                os.getcwd(),
            )
            keys[ref] = task.point.key
        pending = list(keys)
        try:
            while pending and not stop_requested():  # Ctrl-C: cancelled below
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.25)
                for event in ray.get(sink.drain.remote()):
                    events(*event)
                for ref in done:
                    try:
                        kind, payload = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # raised outside training
                        kind, payload = "failed", str(e)
                    except ray.exceptions.RayError as e:
                        kind = "failed"
                        payload = (
                            f"its Ray worker was lost on each of {self.max_retries + 1} tries "
                            f"({str(e).strip().splitlines()[0]}); a rerun resumes it from its "
                            "checkpoint"
                        )
                    events(kind, keys[ref], payload)
        finally:
            for ref in pending:  # a stopped driver stops its points; a rerun resumes them
                ray.cancel(ref, force=True)
            ray.kill(sink)
