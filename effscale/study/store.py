"""The run directory: a study's plan, its points' runs, and the results table.

    runs/<name>/
      study.json          the plan: identity and every point (key, variant, seed, recipe, roles)
      points/<key>/       one training run each (config.json, metrics.jsonl, checkpoint.pt,
                          result.json when finished, error.json when it failed)
      results.csv         one row per point, rebuilt from the points' result files
      report.md, figures/ written by `effscale report` / `effscale plot`

Everything in a run directory is read as untrusted input (it is copied between machines and
shared on clusters): JSON only, never a pickle, and a damaged file is named with what is
wrong with it. A point whose config.json or result.json is damaged is "corrupt": not
finished, so the next run trains it again (effscale.train.open_run_dir).

Several processes may work in one run directory at once. A point being trained holds an
exclusive lock on points/<key>/.lock, so no two processes train it together. results.csv is
derived from the per-point files and rebuilt under a directory lock, atomically: the last
rebuild sees every result written before it, so no row is ever lost.
"""

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from effscale import io
from effscale.cost import describe
from effscale.errors import EffscaleError
from effscale.runfiles import read_config, read_result
from effscale.study.plan import Point, Study

STATES = ("done", "running", "interrupted", "failed", "diverged", "corrupt", "pending")

# The columns of a results table that name a variant (Variant.to_dict's fields).
VARIANT_COLUMNS = [
    "model",
    "base_width",
    "base_depth",
    "d",
    "w",
    "r",
    "resolution",
    "base_resolution",
    "small_input",
]
# What a point's result.json contributes to its row.
TRAINED_COLUMNS = [
    "top1",
    "top5",
    "loss",
    "samples",
    "epochs",
    "train_seconds",
    "images_per_s",
    "late_gain",
    "status",
]
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # less the umask, as any file
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


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.problems: list[str] = []  # damaged files met, "<path> <what is wrong>"

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
        f = self.path / "study.json"
        d, problem = io.read_json(f)
        if d is None and problem is None:
            raise EffscaleError(
                f"{self.path} is not a study run directory (no study.json)",
                "give the --out directory of a sweep, compound, search or run",
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
        """Write the plan; a directory of the same study is extended, another is refused.
        A damaged study.json is replaced by this plan (its points are found again by key)."""
        with file_lock(self.path / ".lock"):
            old = None
            if (self.path / "study.json").exists():
                try:
                    old = self.load_study()
                except EffscaleError as e:
                    self.problems.append(f"{e.message}: replaced by this plan")
            if old is not None:
                if old.identity != study.identity and not force:
                    raise EffscaleError(
                        f"{self.path} holds a different study "
                        f"({_diff(old.identity, study.identity)})",
                        "use another --out, or --force to replace its plan (finished points "
                        "are kept and reused)",
                    )
                if old.identity == study.identity:
                    for p in study.points:  # extend: old points stay in the plan
                        old.add(p)
                    study = Study(study.name, study.identity, old.points)
            io.write_json(self.path / "study.json", study.to_dict())
        return study

    # -- point states -----------------------------------------------------------------

    def result(self, key: str) -> dict | None:
        """A finished point's result.json; None when absent or damaged (the point then
        trains again), the damage noted in ``problems``."""
        f = self.point_dir(key) / "result.json"
        result, problem = read_result(f)
        if problem:
            self._problem(f, problem)
        return result

    def config(self, key: str) -> dict | None:
        f = self.point_dir(key) / "config.json"
        config, problem = read_config(f)
        if problem:
            self._problem(f, problem)
        return config

    def finished_result(self, key: str) -> dict | None:
        """The result of a point that finished with readable files, else None."""
        result = self.result(key)
        return result if result is not None and self.config(key) is not None else None

    def state(self, key: str) -> str:
        """done, diverged, failed, running, interrupted, corrupt or pending."""
        d = self.point_dir(key)
        result, config = self.result(key), self.config(key)
        if result is not None and config is not None:
            return result["status"]
        if (d / ".lock").exists():
            with file_lock(d / ".lock", blocking=False) as free:
                if not free:
                    return "running"
        if (
            result is not None  # finished, but what it is cannot be read
            or (config is None and (d / "config.json").exists())
            or (d / "result.json").exists()
        ):
            return "corrupt"
        if (d / "error.json").exists():
            return "failed"
        if (d / "checkpoint.pt").exists():
            return "interrupted"
        return "pending"

    def error(self, key: str) -> str | None:
        """The first line of a failed point's error.json."""
        f = self.point_dir(key) / "error.json"
        d, problem = io.read_json(f)
        if problem or (d is not None and not isinstance(d.get("error"), str)):
            return f"{f} {problem or 'has no error message'}"
        return d["error"].strip().splitlines()[0] if d and d["error"].strip() else None

    def record_failure(self, key: str, message: str) -> None:
        io.write_json(self.point_dir(key) / "error.json", {"error": message})

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
        with file_lock(self.path / ".lock"):
            df = self.results(study)
            io.write_text(self.path / "results.csv", df.to_csv(index=False))
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
        return {
            "study": study.name,
            "points": len(states),
            **counts,
            "states": states,
            "errors": errors,
            "problems": list(self.problems),
        }


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} here, {new.get(k)!r} asked" for k in keys[:3])
