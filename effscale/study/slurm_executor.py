"""Run a study's points on Slurm through submitit: one job array per study, submitted and left.

``run(tasks, events)`` submits every point as one element of a job array and returns at once;
the job ids go to RUN_DIR/slurm/jobs.json (submitit's pickles and logs beside them). Then
``effscale status RUN_DIR`` shows each point's state, read from the run directory, beside its
Slurm job's state, and ``effscale report RUN_DIR`` works on whatever has finished. Running the
same command again submits only the points neither finished nor still queued or running.

Each array element calls ``effscale.study.engine.run_point``, as every executor does: it takes
the point's file lock and writes through the same atomic store. So the run directory must be
on a filesystem the compute nodes share with the machine that submits (it nearly always is on
a Slurm cluster: home or project space), at the same path, and effscale must be installed in
the Python the jobs run (the submitting one, ``sys.executable``).

Preemption and time limits: Slurm signals a job (USR2) before it stops it; submitit then calls
the job's ``checkpoint()``, which resubmits the same point, and requeues the job. The point
resumes from its own checkpoint.pt, so at most the current epoch is trained twice.
"""

import datetime
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

from effscale import io
from effscale.errors import EffscaleError

JOBS = Path("slurm") / "jobs.json"  # in the run directory
ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING"}


def import_submitit():
    """submitit, or one clear line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise EffscaleError(
            "--executor slurm needs submitit, which is not installed",
            'pip install "effscale[slurm]"',
        ) from None
    return submitit


class PointJob:
    """One point as a submitit job. Its ``checkpoint()`` makes submitit requeue it when Slurm
    preempts it or its time runs out (submitit's Checkpointable protocol)."""

    def __init__(self, task, threads: int, requeue: bool = True):
        self.task, self.threads, self.requeue = task, threads, requeue

    def __call__(self) -> dict:
        import torch

        from effscale.study.engine import run_point
        from effscale.study.executors import _failure
        from effscale.study.store import RunDir

        torch.set_num_threads(int(os.environ.get("SLURM_CPUS_PER_TASK", self.threads)))
        store = RunDir(self.task.run_dir)
        try:
            result = run_point(self.task)
        except Exception as e:  # status reads error.json; Slurm marks the job FAILED
            store.record_failure(self.task.point.key, _failure(e))
            raise
        store.write_results()  # no driver waits for the jobs: each keeps results.csv current
        return result

    def checkpoint(self, *args, **kwargs):
        if not self.requeue:
            return None  # submitit then lets the job end instead of requeueing it
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


class SlurmExecutor:
    """Points as one Slurm job array per study, through submitit.

    Args:
        folder: where submitit keeps its pickles and logs (make_executor: RUN_DIR/slurm).
        partition: the Slurm partition; None for the cluster's default.
        gpus_per_point: whole GPUs per point (Slurm does not split one between jobs).
        cpus_per_point: CPUs per point, and torch threads; default 4 with a GPU, else 1.
        time_min: time limit per point in minutes; a point stopped by it is requeued.
        max_parallel: at most this many points of the array run at once.
        requeue: requeue points on preemption or time-out (they resume from checkpoints).
        cluster: None for Slurm (sbatch must be there); submitit's "local" runs the jobs as
            local processes (for tests), "debug" in this process.
        **parameters: more submitit parameters, e.g. mem_gb=16, slurm_account="proj".
    """

    def __init__(
        self,
        folder,
        partition: str | None = None,
        gpus_per_point: float = 0,
        cpus_per_point: int | None = None,
        time_min: int = 60,
        max_parallel: int | None = None,
        requeue: bool = True,
        cluster: str | None = None,
        **parameters,
    ):
        submitit = import_submitit()
        if gpus_per_point < 0 or gpus_per_point != int(gpus_per_point):
            raise EffscaleError(
                f"--gpus-per-point {gpus_per_point:g}: Slurm grants whole GPUs",
                "give 0, 1, 2 ...; fractions of a GPU are for --executor ray",
            )
        if time_min < 1:
            raise EffscaleError(f"--time must be at least 1 minute, got {time_min}")
        if max_parallel is not None and max_parallel < 1:
            raise EffscaleError(f"--max-parallel must be at least 1, got {max_parallel}")
        self.folder = Path(folder)
        self.gpus = int(gpus_per_point)
        self.cpus = cpus_per_point or (4 if self.gpus else 1)
        self.requeue = requeue
        if cluster is None and shutil.which("sbatch") is None:
            raise EffscaleError(
                "no Slurm on this machine (sbatch not found)",
                "submit from a Slurm login node, or use --executor local or ray",
            )
        self.cluster = cluster or "slurm"  # not submitit's guess, which falls back to local
        try:
            self.executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        except RuntimeError as e:  # e.g. no srun beside sbatch
            raise EffscaleError(f"cannot submit to Slurm here: {e}") from None
        self.executor.update_parameters(
            name="effscale",
            timeout_min=int(time_min),
            cpus_per_task=self.cpus,
            gpus_per_node=self.gpus,
            nodes=1,
            tasks_per_node=1,
            slurm_partition=partition,
            slurm_array_parallelism=max_parallel,
            **parameters,
        )
        self.jobs: dict = {}  # point key -> submitit Job, of the last run()

    def run(self, tasks, events) -> None:
        if not tasks:
            return
        run_dir = Path(tasks[0].run_dir)
        states = job_states(run_dir) or {}
        queued = [t for t in tasks if states.get(t.point.key, {}).get("slurm_state") in ACTIVE]
        todo = [t for t in tasks if t not in queued]
        if queued:
            events(
                "message",
                None,
                f"{len(queued)} points already queued or running as Slurm jobs: not submitted "
                "again",
            )
        if not todo:
            return
        if todo[0].device.startswith("cuda") and not self.gpus:
            raise EffscaleError(
                f"--device {todo[0].device} with no GPU asked of Slurm",
                "add --gpus-per-point 1, or use --device auto or cpu",
            )
        device = "cuda" if self.gpus else "cpu"  # Slurm shows a job only the GPUs it granted
        where = str(run_dir.resolve())
        jobs = self.executor.submit_array(
            [
                PointJob(replace(t, device=device, run_dir=where), self.cpus, self.requeue)
                for t in todo
            ]
        )
        self.jobs = {t.point.key: job for t, job in zip(todo, jobs)}
        _record(run_dir, self.cluster, self.folder, todo, jobs)
        array = jobs[0].job_id.split("_")[0] if self.cluster == "slurm" else "local"
        events(
            "message",
            None,
            f"submitted {len(todo)} points as Slurm job array {array} (job ids in "
            f"{run_dir / JOBS}); watch them with: effscale status {run_dir}; when they are "
            f"done: effscale report {run_dir}",
        )


def _record(run_dir: Path, cluster: str, folder: Path, tasks, jobs) -> None:
    """Add the submitted jobs to RUN_DIR/slurm/jobs.json (a later submission wins per point)."""
    from effscale.study.store import file_lock

    path = run_dir / JOBS
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with file_lock(path.parent / ".lock"):
        book = json.loads(path.read_text()) if path.exists() else {"points": {}}
        book.update(cluster=cluster, folder=str(folder.resolve()))
        for task, job in zip(tasks, jobs):
            book["points"][task.point.key] = {"job_id": job.job_id, "submitted": now}
        io.write_json(path, book)


def job_states(run_dir) -> dict | None:
    """Each point's Slurm job and its state, for `effscale status`; None when the run
    directory has no Slurm jobs (RUN_DIR/slurm/jobs.json).

    Returns ``{key: {"job_id": ..., "slurm_state": ...}}``; the state is Slurm's (PENDING,
    RUNNING, COMPLETED, FAILED, PREEMPTED ...), or UNKNOWN when it cannot be asked.
    """
    path = Path(run_dir) / JOBS
    if not path.exists():
        return None
    book = json.loads(path.read_text())
    points = book.get("points", {})
    try:
        import submitit
    except ImportError:  # status still works, without Slurm's side
        submitit = None
    if submitit is None:
        return {k: {"job_id": e["job_id"], "slurm_state": "UNKNOWN"} for k, e in points.items()}
    if book.get("cluster") == "local":
        states = {k: _local_state(submitit, book["folder"], e["job_id"]) for k, e in points.items()}
    else:  # jobs made first, asked after: one sacct call answers for all of them
        jobs = {
            k: submitit.SlurmJob(folder=book["folder"], job_id=e["job_id"])
            for k, e in points.items()
        }
        states = {k: job.state for k, job in jobs.items()}
    return {
        k: {"job_id": e["job_id"], "slurm_state": states[k].split(" ")[0]}
        for k, e in points.items()
    }


def _local_state(submitit, folder: str, job_id: str) -> str:
    """A job of submitit's local executor: its controller process, or its result file."""
    try:
        if b"submitit" in Path(f"/proc/{job_id}/cmdline").read_bytes():
            return "RUNNING"
    except OSError:
        pass
    result = submitit.local.local.LocalJob(folder=folder, job_id=job_id).paths.result_pickle
    if not result.exists():
        return "UNKNOWN"
    outcome = submitit.core.utils.pickle_load(result)[0]
    return "COMPLETED" if outcome == "success" else "FAILED"
