"""Run a study's points on Slurm through submitit: one job array per study, submitted and left.

``run(tasks, events)`` submits every point as one element of a job array and returns at once;
the job ids go to RUN_DIR/slurm/jobs.json (submitit's pickles and logs beside them). Then
``effscale status RUN_DIR`` shows each point's state, read from the run directory, beside its
Slurm job's state, and ``effscale report RUN_DIR`` works on whatever has finished. Running the
same command again submits only the points neither finished nor still queued or running.

Each array element calls ``effscale.study.worker.run_point``, as every executor does: it takes
the point's file lock and writes through the same atomic store. So the run directory must be
on a filesystem the compute nodes share with the machine that submits (it nearly always is on
a Slurm cluster: home or project space), at the same path, and effscale must be installed in
the Python the jobs run (the submitting one, ``sys.executable``).

Preemption and time limits: Slurm signals a job (USR2) before it stops it; submitit then calls
the job's ``checkpoint()``, which resubmits the same point, and requeues the job. The point
resumes from its own checkpoint.pt, so at most the current epoch is trained twice.
"""

import datetime
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

from effscale import io
from effscale.errors import EffscaleError
from effscale.rundir import SLURM_JOBS

ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING"}


def import_submitit():
    """submitit, or one clear line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise EffscaleError(
            "`executor`=slurm needs submitit, which is not installed",
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

        from effscale.rundir import StudyDir
        from effscale.study.executors.events import failure
        from effscale.study.worker import run_point

        torch.set_num_threads(int(os.environ.get("SLURM_CPUS_PER_TASK", self.threads)))
        store = StudyDir(self.task.run_dir)
        try:
            result = run_point(self.task)
        except Exception as e:  # status reads error.json; Slurm marks the job FAILED
            store.record_failure(self.task.point.key, failure(e))
            raise
        store.write_results()  # no driver waits for the jobs: each keeps results.csv current
        return result

    def checkpoint(self, *args, **kwargs):
        if not self.requeue:
            return None  # submitit then lets the job end instead of requeueing it
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def sbatch_parameters(
    account: str | None = None,
    qos: str | None = None,
    mem: str | None = None,
    constraint: str | None = None,
    setup: list[str] | tuple[str, ...] | None = None,
    sbatch: dict | None = None,
) -> dict:
    """submitit's parameters for the #SBATCH lines beyond partition, time, CPUs and GPUs."""
    if mem is not None and not re.fullmatch(r"[0-9]+[KMGT]?", str(mem)):
        raise EffscaleError(f"`mem`={mem!r}: not a Slurm memory size", "write e.g. 16G or 4000M")
    extra = dict(sbatch or {})
    for name in extra:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise EffscaleError(f"sbatch option {name!r} is not an option name", "e.g. reservation")
    given = dict(account=account, qos=qos, mem=mem, constraint=constraint)
    out = {f"slurm_{k}": v for k, v in given.items() if v is not None}
    if setup:
        out["slurm_setup"] = list(setup)
    if extra:
        out["slurm_additional_parameters"] = {k.replace("-", "_"): v for k, v in extra.items()}
    return out


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

    local = False  # the cluster's nodes train: the device is checked on them
    same_process = False  # jobs are other processes (submitit's "debug" aside)

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
        plan_only: bool = False,
        **sbatch,
    ):
        """``sbatch``: account, qos, mem ("16G"), constraint, setup (shell lines run before
        each point: module load, conda activate) and sbatch (more #SBATCH options, as a
        {name: value} dict); ``plan_only``: only asked for its shape (a dry run), so
        neither submitit's job folder nor sbatch is needed here."""
        gpus_per_point = 0 if gpus_per_point is None else gpus_per_point
        if gpus_per_point < 0 or gpus_per_point != int(gpus_per_point):
            raise EffscaleError(
                f"`gpus_per_point`={gpus_per_point:g}: Slurm grants whole GPUs",
                "give 0, 1, 2 ...; fractions of a GPU are for `executor`=ray",
            )
        if time_min < 1:
            raise EffscaleError(f"`time_min` must be at least 1 minute, got {time_min}")
        if max_parallel is not None and max_parallel < 1:
            raise EffscaleError(f"`max_parallel` must be at least 1, got {max_parallel}")
        if cpus_per_point is not None and cpus_per_point < 1:
            raise EffscaleError(f"`cpus_per_point` must be at least 1, got {cpus_per_point}")
        self.folder = Path(folder)
        self.gpus = int(gpus_per_point)
        self.cpus = cpus_per_point or (4 if self.gpus else 1)
        self.threads, self.max_parallel = self.cpus, max_parallel  # its shape, for estimates
        self.requeue = requeue
        self.parameters = dict(
            name="effscale",
            timeout_min=int(time_min),
            cpus_per_task=self.cpus,
            gpus_per_node=self.gpus,
            nodes=1,
            tasks_per_node=1,
            slurm_partition=partition,
            slurm_array_parallelism=max_parallel,
            **sbatch_parameters(**sbatch),
        )
        self.cluster = cluster or "slurm"  # not submitit's guess, which falls back to local
        if plan_only:
            return
        submitit = import_submitit()
        if cluster is None and shutil.which("sbatch") is None:
            raise EffscaleError(
                "no Slurm on this machine (sbatch not found)",
                "submit from a Slurm login node, use `dry_run` to plan here, or use "
                "`executor`=local or ray",
            )
        try:
            self.executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        except RuntimeError as e:  # e.g. no srun beside sbatch
            raise EffscaleError(f"cannot submit to Slurm here: {e}") from None
        self.executor.update_parameters(**self.parameters)
        self.jobs: dict = {}  # point key -> submitit Job, of the last run()

    def shape(self) -> tuple[int, int | None]:
        return self.threads, self.max_parallel

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
                f"`device`={todo[0].device} with no GPU asked of Slurm",
                "add `gpus_per_point`=1, or use `device`=auto or cpu",
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
            f"{run_dir / SLURM_JOBS}); watch them with: effscale status {run_dir}; when they are "
            f"done: effscale report {run_dir}",
        )


def _record(run_dir: Path, cluster: str, folder: Path, tasks, jobs) -> None:
    """Add the submitted jobs to RUN_DIR/slurm/jobs.json (a later submission wins per point).

    ``folder`` is kept for people reading the file; job_states never uses it."""
    from effscale.rundir import file_lock

    path = run_dir / SLURM_JOBS
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with file_lock(path.parent / ".lock"):
        book, _ = io.read_json(path)
        book = book if isinstance(book.get("points") if book else None, dict) else {"points": {}}
        book.update(cluster=cluster, folder=str(folder.resolve()))
        for task, job in zip(tasks, jobs):
            book["points"][task.point.key] = {"job_id": job.job_id, "submitted": now}
        io.write_json(path, book)


# A Slurm job id as submitit gives them: "4242", or "4242_3" for an array element; a local
# job's id is its controller's process id.
_JOB_ID = re.compile(r"^[0-9]{1,12}(_[0-9]{1,9})?$")


def job_states(run_dir) -> dict | None:
    """Each point's Slurm job and its state, for `effscale status`; None when the run
    directory has no Slurm jobs (RUN_DIR/slurm/jobs.json).

    Returns ``{key: {"job_id": ..., "slurm_state": ...}}``; the state is Slurm's (PENDING,
    RUNNING, COMPLETED, FAILED, PREEMPTED ...), or UNKNOWN when it cannot be asked.

    A run directory is untrusted input (copied between machines, shared on a cluster): only
    the job ids are taken from jobs.json, and only when they look like job ids; the folder it
    names is never used, and submitit's result pickles are never read (unpickling runs code).
    """
    path = Path(run_dir) / SLURM_JOBS
    book, problem = io.read_json(path)
    if book is None and problem is None:
        return None
    points = book.get("points") if book else None
    if not isinstance(points, dict):
        raise EffscaleError(
            f"{path} {problem or 'has no points table'}",
            "it lists the Slurm jobs of the points; delete it to show the points alone",
        )
    ids = {
        k: e["job_id"]
        for k, e in points.items()
        if isinstance(e, dict) and isinstance(e.get("job_id"), str) and _JOB_ID.match(e["job_id"])
    }
    states = {k: "UNKNOWN" for k in points}
    try:
        import submitit
    except ImportError:  # status still works, without Slurm's side
        submitit = None
    if book.get("cluster") == "local":
        states.update({k: _local_state(Path(run_dir), k, job_id) for k, job_id in ids.items()})
    elif submitit is not None and ids:  # jobs made first, asked after: one sacct call
        folder = Path(run_dir) / "slurm"  # ours, never the folder jobs.json names
        jobs = {k: submitit.SlurmJob(folder=folder, job_id=job_id) for k, job_id in ids.items()}
        states.update({k: job.state.split(" ")[0] for k, job in jobs.items()})
    return {k: {"job_id": ids.get(k, "?"), "slurm_state": states[k]} for k in points}


def _local_state(run_dir: Path, key: str, job_id: str) -> str:
    """A job of submitit's local executor: RUNNING while its controller process lives, then
    what the point's own files say (effscale's JSON, not submitit's result pickle)."""
    try:
        if b"submitit" in Path(f"/proc/{int(job_id.split('_')[0])}/cmdline").read_bytes():
            return "RUNNING"
    except (OSError, ValueError):
        pass
    from effscale.rundir import StudyDir

    state = StudyDir(run_dir).state(key)
    return {"done": "COMPLETED", "diverged": "COMPLETED", "failed": "FAILED"}.get(state, "UNKNOWN")
