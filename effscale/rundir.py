"""The run directory: where a training run and a study keep their files, and the only module
that names them.

    runs/<name>/              a study (StudyDir)
      study.json              the plan: identity and every point (key, variant, seed, recipe, roles)
      points/<key>/           one training run each (PointDir): config.json, metrics.jsonl,
                              checkpoint.pt, result.json when finished, error.json when it failed
      results.csv             one row per point, rebuilt from the points' result files
      summary.csv, report.md, figures/   written by `effscale report` / `effscale plot`

A `effscale train --out` directory is one PointDir.

Everything in a run directory is read as untrusted input (it is copied between machines and
shared on clusters): JSON only, and checkpoints loaded ``weights_only``, never an arbitrary
pickle; a damaged file is named with what is wrong with it. A point whose config.json or
result.json is damaged is "corrupt": not finished, so the next run trains it again.

Several processes may work in one run directory at once. A point being trained holds an
exclusive lock on points/<key>/.lock, so no two processes train it together. results.csv is
derived from the per-point files and rebuilt under a directory lock, atomically: the last
rebuild sees every result written before it, so no row is ever lost.
"""

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from effscale import io
from effscale.cost import describe
from effscale.errors import EffscaleError
from effscale.runfiles import read_config, read_result
from effscale.study.plan import Point, Study, extends

# A point's files (PointDir).
CONFIG = "config.json"  # what the run is (its identity), written first
METRICS = "metrics.jsonl"  # one line per epoch
CHECKPOINT = "checkpoint.pt"  # where the run stood (each epoch's end, every few minutes)
RESULT = "result.json"  # how the run ended, written last
PROGRESS = "progress.json"  # how far a running point is: samples, of how many (every 10 s)
ERROR = "error.json"  # why a study's point failed
LOCK = ".lock"  # held while the point trains
# A study's files (StudyDir).
PLAN = "study.json"
RESULTS = "results.csv"
SUMMARY = "summary.csv"
LATENCY_FILE = "latency.csv"  # effscale.latency: one row per variant and setting
ESTIMATES_FILE = "estimates.json"  # effscale.study.estimate: each point's estimated time
SEARCH_FILE = "search.json"  # effscale.study.search: the grid and its ranking
SLURM_JOBS = Path("slurm") / "jobs.json"  # the job ids of a Slurm submission

FINISHED = ("done", "diverged")  # a point with a result: never trained again
STATES = ("done", "running", "interrupted", "failed", "diverged", "corrupt", "pending")

# The columns of a results table that name a variant (Variant.to_dict's fields).
VARIANT_COLUMNS = [
    "model", "base_width", "base_depth", "d", "w", "r", "resolution", "base_resolution",
    "small_input",
]  # fmt: skip
# What a point's result.json contributes to its row.
TRAINED_COLUMNS = [
    "top1", "top5", "loss", "samples", "epochs", "train_seconds", "images_per_s", "late_gain",
    "status",
]  # fmt: skip
RESULT_COLUMNS = [
    "key",
    *VARIANT_COLUMNS,
    "roles",
    "phi",
    "scaling",
    "seed",
    "budget",
    "protocol",
    "data",
    "flops",
    "params",
    "activations",
    "target_flops_ratio",
    "realised_flops_ratio",
    *TRAINED_COLUMNS,
]


@contextmanager
def file_lock(path: Path, blocking: bool = True, wait: float = 0.0):
    """An exclusive flock on ``path``. Non-blocking, it tries for ``wait`` seconds and yields
    False if the lock stayed held (by a process training the point, not a passing reader)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a lock planted as a symlink must not make us create its target
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # less the umask
    except OSError as e:
        if not path.is_symlink():
            raise
        raise EffscaleError(
            f"{path} is a symbolic link, not a lock file: refused ({e.strerror})",
            "remove it (a run directory's .lock files are plain files effscale creates)",
        ) from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class PointDir:
    """One training run's directory: its files, its identity check and its state."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / CONFIG
        self.metrics_file = self.path / METRICS
        self.checkpoint = self.path / CHECKPOINT
        self.result_file = self.path / RESULT
        self.progress_file = self.path / PROGRESS
        self.error_file = self.path / ERROR
        self.lock_file = self.path / LOCK

    def lock(self, wait: float = 2.0):
        """The point's lock, tried for ``wait`` seconds (file_lock, non-blocking)."""
        return file_lock(self.lock_file, blocking=False, wait=wait)

    # -- what the run is, and how it ended ---------------------------------------------

    def config(self) -> tuple[dict | None, str | None]:
        return read_config(self.config_file)

    def result(self) -> tuple[dict | None, str | None]:
        return read_result(self.result_file)

    def write_config(self, config: dict) -> None:
        io.write_json(self.config_file, config)

    def write_result(self, result: dict) -> None:
        io.write_json(self.result_file, result)

    def write_progress(self, samples: int, total: int) -> None:
        io.write_json(self.progress_file, {"samples": samples, "total": total})

    def progress(self) -> dict:
        """progress.json's samples and total where both are counts, else nothing."""
        obj, _ = io.read_json(self.progress_file)  # damaged: fall back on metrics.jsonl
        ok = obj and all(isinstance(obj.get(k), int) and obj[k] >= 0 for k in ("samples", "total"))
        return {"samples": obj["samples"], "total": obj["total"]} if ok else {}

    def write_metrics(self, metrics: list[dict]) -> None:
        io.write_text(self.metrics_file, "".join(json.dumps(m) + "\n" for m in metrics))

    def metrics_lines(self) -> list[str]:
        """metrics.jsonl's lines, unparsed (a reader decides what a damaged line means);
        raises OSError when it cannot be read."""
        return self.metrics_file.read_text(errors="replace").splitlines()  # garbage: damaged lines

    def epochs(self) -> list[dict]:
        """metrics.jsonl's epochs as far as they can be read: damaged lines are skipped, an
        unreadable file gives none."""
        try:
            lines = self.metrics_lines()
        except OSError:
            return []
        epochs = []
        for line in lines:
            try:
                epoch = json.loads(line)
            except ValueError:
                continue
            if isinstance(epoch, dict):
                epochs.append(epoch)
        return epochs

    def open(self, identity: dict, resume: bool, emit=None) -> dict | None:
        """The result of a finished run here; None when the run is to be trained (new, or
        interrupted and resumed). A directory of another run, or one whose config.json is
        damaged (so whose run it holds is unknown), is refused. A damaged result.json means
        finishing the run again from its checkpoint (``emit`` hears it)."""
        saved, problem = self.config()
        if problem:
            raise EffscaleError(
                f"{self.config_file} {problem}, so the run it holds is unknown",
                "delete that directory to train the run again, or choose another `out`",
            )
        if saved is None:
            return None
        if saved.get("identity") != identity:
            raise EffscaleError(
                f"{self.path} holds a different run (other variant, recipe, data or seed)",
                "choose another `out`",
            )
        result, problem = self.result()
        if result is not None:
            return result  # finished: never retrained
        if problem and emit:
            emit("message", f"{self.result_file} {problem}: finishing the run again")
        if not resume and self.checkpoint.exists():
            raise EffscaleError(
                f"{self.path} holds an interrupted run",
                "pass `resume` to continue it, or choose another `out`",
            )
        return None

    def forget_unverifiable(self, emit=None) -> None:
        """A point directory whose config.json is damaged holds a run nobody can verify: its
        files go, so that the point trains from the start (the directory is effscale's own,
        named by the point's key; train itself refuses such a directory)."""
        _, problem = self.config()
        if problem:
            if emit:
                emit("message", f"{self.config_file} {problem}: training the point from the start")
            for f in (self.config_file, self.checkpoint, self.metrics_file, self.result_file):
                f.unlink(missing_ok=True)

    def state(self, result: dict | None, config: dict | None) -> str:
        """done, diverged, failed, running, interrupted, corrupt or pending, given what its
        result and config files hold (None: absent or damaged), and read from the files
        train writes (config first, a checkpoint per epoch, the result last)."""
        if result is not None and config is not None:
            return result["status"]
        if self.lock_file.exists():
            with file_lock(self.lock_file, blocking=False) as free:
                if not free:
                    return "running"
        if (
            result is not None  # finished, but what it is cannot be read
            or (config is None and self.config_file.exists())
            or self.result_file.exists()
        ):
            return "corrupt"
        if self.error_file.exists():
            return "failed"
        if self.checkpoint.exists():
            return "interrupted"
        return "pending"

    # -- failures ----------------------------------------------------------------------

    def error(self) -> str | None:
        """The first line of a failed point's error.json."""
        f = self.error_file
        d, problem = io.read_json(f)
        if problem or (d is not None and not isinstance(d.get("error"), str)):
            return f"{f} {problem or 'has no error message'}"
        return d["error"].strip().splitlines()[0] if d and d["error"].strip() else None

    def record_failure(self, message: str) -> None:
        io.write_json(self.error_file, {"error": message})

    def clear_failure(self) -> None:
        self.error_file.unlink(missing_ok=True)

    # -- checkpoints -------------------------------------------------------------------

    def save_checkpoint(self, state: dict) -> None:
        with io.atomic_path(self.checkpoint) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self, device="cpu") -> dict:
        """The checkpoint's contents; raises what torch.load raises. Only tensors and plain
        data are read (``weights_only``): a checkpoint replaced by a crafted pickle cannot
        run code."""
        return load_file(self.checkpoint, device)


def read_search(run_dir: str | Path) -> dict:
    """A grid search's record (SEARCH_FILE), as effscale.study.search.plan_search wrote it
    and effscale.report.search ranked it; one line when it is missing or damaged."""
    path = Path(run_dir) / SEARCH_FILE
    if not path.is_file():
        raise EffscaleError(
            f"{run_dir} holds no grid search (no {SEARCH_FILE})",
            "give the `out` directory of `effscale search`",
        )
    record, problem = io.read_json(path)
    if problem:
        raise EffscaleError(f"{path} {problem}", "rerun `effscale search` to write it again")
    return record


def load_file(path: str | Path, device="cpu"):
    """torch.load of a checkpoint or weights file, tensors and plain data only."""
    return torch.load(path, map_location=device, weights_only=True)


def weights(blob):
    """The weights a loaded file holds: a checkpoint's EMA weights when it kept some (they are
    what was evaluated), else its model's; a plain state dict is itself."""
    if isinstance(blob, dict) and "model" in blob:
        return blob.get("ema") or blob["model"]
    return blob


class StudyDir:
    """A study's run directory: its plan, its points (PointDir) and the results table."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.plan = self.path / PLAN
        self.problems: list[str] = []  # damaged files met, "<path> <what is wrong>"

    def lock(self):
        """The directory's lock (file_lock, blocking): held while a shared file is rebuilt."""
        return file_lock(self.path / LOCK)

    def point(self, key: str) -> PointDir:
        return PointDir(self.point_dir(key))

    def point_dir(self, key: str) -> Path:
        return self.path / "points" / key

    def remove_orphans(self) -> list[Path]:
        """Remove the temporary files killed writers left here (io.remove_orphans): in the
        run directory, figures/, slurm/ and every point's directory."""
        folders = [self.path, self.path / "figures", self.path / "slurm"]
        try:
            folders += [Path(e.path) for e in os.scandir(self.path / "points") if e.is_dir()]
        except OSError:
            pass
        return [p for folder in folders for p in io.remove_orphans(folder)]

    def _problem(self, path: Path, problem: str) -> None:
        line = f"{path} {problem}"
        if line not in self.problems:
            self.problems.append(line)

    # -- the plan ---------------------------------------------------------------------

    def load_study(self) -> Study:
        f = self.plan
        d, problem = io.read_json(f)
        if d is None and problem is None:
            raise EffscaleError(
                f"{self.path} is not a study run directory (no {PLAN})",
                "give the `out` directory of a sweep, compound, search or run",
            )
        hint = "it is the plan: rerun the study's command to write it again"
        if problem:
            raise EffscaleError(f"{f} {problem}", hint)
        try:
            study = Study(d["name"], d["identity"], [Point.from_dict(p) for p in d["points"]])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            what = f"lacks {e}" if isinstance(e, KeyError) else f"is not a plan ({e})"
            raise EffscaleError(f"{f} {what}"[:300], hint) from None
        if not isinstance(study.identity, dict) or not isinstance(study.name, str):
            raise EffscaleError(f"{f} is not a plan (a name and an identity object)", hint)
        return study

    def save_study(self, study: Study, force: bool = False) -> Study:
        """Write the plan; a directory of the same study, or one it extends (plan.extends),
        takes its points; another is refused. A damaged study.json is replaced by this plan
        (its points are found again by key)."""
        with self.lock():
            old = None
            if self.plan.exists():
                try:
                    old = self.load_study()
                except EffscaleError as e:
                    self.problems.append(f"{e.message}: replaced by this plan")
            if old is not None:
                same = old.identity == study.identity or extends(old.identity, study.identity)
                if not same and not force:
                    raise EffscaleError(
                        f"{self.path} holds a different study "
                        f"({identity_difference(old.identity, study.identity)})",
                        "use another `out`, or `force` to replace its plan (finished points "
                        "are kept and reused)",
                    )
                if same:  # extend: old points stay in the plan, under its name
                    study = Study(old.name, old.identity, old.add_all(study.points).points)
            io.write_json(self.plan, study.to_dict())
        return study

    # -- point states -----------------------------------------------------------------

    def result(self, key: str) -> dict | None:
        """A finished point's result.json; None when absent or damaged (the point then
        trains again), the damage noted in ``problems``."""
        point = self.point(key)
        return self._noted(point.result_file, *point.result())

    def config(self, key: str) -> dict | None:
        point = self.point(key)
        return self._noted(point.config_file, *point.config())

    def _noted(self, path: Path, obj: dict | None, problem: str | None) -> dict | None:
        if problem:
            self._problem(path, problem)
        return obj

    def finished_result(self, key: str) -> dict | None:
        """The result of a point that finished with readable files, else None."""
        result = self.result(key)
        return result if result is not None and self.config(key) is not None else None

    def state(self, key: str) -> str:
        """done, diverged, failed, running, interrupted, corrupt or pending (PointDir.state)."""
        return self.point(key).state(self.result(key), self.config(key))

    def error(self, key: str) -> str | None:
        """The first line of a failed point's error.json."""
        return self.point(key).error()

    def record_failure(self, key: str, message: str) -> None:
        self.point(key).record_failure(message)

    # -- the results table ------------------------------------------------------------

    def results(self, study: Study | None = None) -> pd.DataFrame:
        """One row per planned point that has a result (finished or diverged)."""
        study = study or self.load_study()
        rows, ratio_cache = [], {}
        for p in study.points:
            result = self.finished_result(p.key)
            if result is None:
                continue
            n_classes = self.config(p.key).get("num_classes", 10)
            cache_key = (p.variant, n_classes)
            if cache_key not in ratio_cache:
                ratio_cache[cache_key] = describe(p.variant, n_classes)
            cost = ratio_cache[cache_key]
            row = {
                **cost,
                "key": p.key,
                "roles": ";".join(p.roles),
                "phi": p.phi,
                "scaling": p.scaling,
                "seed": p.seed,
                "budget": p.recipe.samples,
                "protocol": p.recipe.protocol,
                "data": p.data,
                **{k: result.get(k) for k in TRAINED_COLUMNS},
            }
            rows.append(row)
        return pd.DataFrame(rows, columns=RESULT_COLUMNS)

    def write_results(self, study: Study | None = None) -> pd.DataFrame:
        with self.lock():
            df = self.results(study)
            io.write_csv(self.path / RESULTS, df)
        return df

    def status(self) -> dict:
        """Counts of points per state, each point's state, the first line of each failed
        point's error, and the damaged files met (``problems``)."""
        study = self.load_study()
        states = {p.key: self.state(p.key) for p in study.points}
        counts = {s: 0 for s in STATES}
        for s in states.values():
            counts[s] = counts.get(s, 0) + 1
        errors = {k: self.error(k) for k, s in states.items() if s == "failed"}
        progress = {
            p.key: self._progress(p)
            for p in study.points
            if states[p.key] in ("running", "interrupted")
        }
        return {
            "study": study.name,
            "points": len(states),
            **counts,
            "states": states,
            "errors": errors,
            "progress": progress,
            "problems": list(self.problems),
        }

    def _progress(self, p) -> dict:
        """How far a running or interrupted point is: its progress.json (written every few
        seconds while it trains), else its metrics.jsonl (one line an epoch)."""
        point = self.point(p.key)
        epochs = point.epochs()
        last = epochs[-1] if epochs else {}
        now = point.progress()
        return {
            "variant": p.variant.short_label,
            "seed": p.seed,
            "samples_done": max(now.get("samples", 0), last.get("samples", 0)),
            "samples": now.get("total", p.recipe.samples),
            "epochs_done": len(epochs),
            "top1_last": last.get("top1"),
        }


def identity_difference(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} here, {new.get(k)!r} asked" for k in keys[:3])
