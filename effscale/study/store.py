"""The run directory: a study's plan, its points' runs, and the results table.

    runs/<name>/
      study.json          the plan: identity and every point (key, variant, seed, recipe, roles)
      points/<key>/       one training run each (config.json, metrics.jsonl, checkpoint.pt,
                          result.json when finished, error.json when it failed)
      results.csv         one row per point, rebuilt from the points' result files
      report.md, figures/ written by `effscale report` / `effscale plot`

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

from effscale import io
from effscale.cost import describe
from effscale.errors import EffscaleError
from effscale.study.plan import Point, Study

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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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

    def point_dir(self, key: str) -> Path:
        return self.path / "points" / key

    # -- the plan ---------------------------------------------------------------------

    def load_study(self) -> Study:
        f = self.path / "study.json"
        if not f.exists():
            raise EffscaleError(
                f"{self.path} is not a study run directory (no study.json)",
                "give the --out directory of a sweep, compound, search or run",
            )
        d = json.loads(f.read_text())
        return Study(d["name"], d["identity"], [Point.from_dict(p) for p in d["points"]])

    def save_study(self, study: Study, force: bool = False) -> Study:
        """Write the plan; a directory of the same study is extended, another is refused."""
        with file_lock(self.path / ".lock"):
            if (self.path / "study.json").exists():
                old = self.load_study()
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
        f = self.point_dir(key) / "result.json"
        return json.loads(f.read_text()) if f.exists() else None

    def state(self, key: str) -> str:
        """done, diverged, failed, running, interrupted or pending."""
        d = self.point_dir(key)
        result = self.result(key)
        if result:
            return result["status"]
        if (d / ".lock").exists():
            with file_lock(d / ".lock", blocking=False) as free:
                if not free:
                    return "running"
        if (d / "error.json").exists():
            return "failed"
        if (d / "checkpoint.pt").exists():
            return "interrupted"
        return "pending"

    def record_failure(self, key: str, message: str) -> None:
        io.write_json(self.point_dir(key) / "error.json", {"error": message})

    # -- the results table ------------------------------------------------------------

    def results(self, study: Study | None = None) -> pd.DataFrame:
        """One row per planned point that has a result (finished or diverged)."""
        study = study or self.load_study()
        rows, ratio_cache = [], {}
        for p in study.points:
            result = self.result(p.key)
            if result is None:
                continue
            cfg = json.loads((self.point_dir(p.key) / "config.json").read_text())
            n_classes = cfg.get("num_classes", 10)
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
        study = self.load_study()
        states = {p.key: self.state(p.key) for p in study.points}
        counts = {s: 0 for s in ("done", "running", "interrupted", "failed", "diverged", "pending")}
        for s in states.values():
            counts[s] = counts.get(s, 0) + 1
        return {"study": study.name, "points": len(states), **counts, "states": states}


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} here, {new.get(k)!r} asked" for k in keys[:3])
