"""A study's finished points as the rows a law is fitted to.

Each row is one training run (one seed): seeds are replicates, never averaged away, and a
configuration (shape and budget) groups them for the bootstrap and for the seed noise. The
response is top-1 error (1 - top-1), so that every term of a law is a power law falling to
a floor. Depth, width and resolution are the *realised* multipliers of the network that was
trained: blocks over the base's blocks, channels over the base's channels, pixels over the
base's pixels, after every rounding (d = 2.33 builds 2.5x the blocks of B0).
"""

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from effscale.errors import EffscaleError
from effscale.scaling import Variant

# What every point of one fit must share: one backbone, one base design, one data set and
# one training procedure. Budgets (samples) are an axis, not an identity.
IDENTITY = ("model", "base_width", "base_depth", "base_resolution", "small_input", "data",
            "recipe", "num_classes")  # fmt: skip
SAMPLES_REF = 100_000  # budgets enter the laws as S / 100k, to keep exponents' scale sane


@functools.lru_cache(maxsize=4096)
def realised(variant: Variant) -> tuple[float, float, float]:
    """(d, w, r) as built: blocks, channels and pixels over the base design's."""
    from dataclasses import replace

    from effscale.zoo import resolve_spec

    spec = resolve_spec(variant)
    base = resolve_spec(replace(variant, d=1.0, w=1.0, r=1.0, resolution=variant.base_resolution))

    def channels(s) -> int:
        return s.stem_channels + s.head_channels + sum(st.channels for st in s.stages)

    d = sum(st.repeats for st in spec.stages) / sum(st.repeats for st in base.stages)
    return d, channels(spec) / channels(base), variant.resolution / variant.base_resolution


@dataclass
class Points:
    """The rows of a fit, what they share, and what was left out and why."""

    rows: pd.DataFrame  # one per run: config, key, seed, d, w, r, samples, flops_ratio, top1, error
    identity: dict  # the shared IDENTITY values (recipe as a dict)
    excluded: list[str] = field(default_factory=list)  # "key: why", points not fitted
    sources: list[str] = field(default_factory=list)  # the run directories read

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_configs(self) -> int:
        return self.rows["config"].nunique()

    @property
    def budgets(self) -> list[int]:
        return sorted(int(s) for s in self.rows["samples"].unique())

    def configs(self) -> pd.DataFrame:
        """One row per configuration: its shape, budget, FLOPs ratio and top-1 over seeds."""
        g = self.rows.groupby("config", sort=False)
        out = g.agg(
            d=("d", "first"), w=("w", "first"), r=("r", "first"),
            resolution=("resolution", "first"), samples=("samples", "first"),
            flops_ratio=("flops_ratio", "first"), seeds=("seed", "count"),
            top1_mean=("top1", "mean"), top1_std=("top1", "std"),
            nominal_d=("nominal_d", "first"), nominal_w=("nominal_w", "first"),
        )  # fmt: skip
        return out.reset_index().sort_values(["samples", "flops_ratio"], ignore_index=True)

    def subset(self, mask) -> "Points":
        return Points(self.rows[np.asarray(mask)].reset_index(drop=True), self.identity,
                      self.excluded, self.sources)  # fmt: skip

    def seed_sd(self) -> float:
        """The pooled standard deviation of top-1 (points) between seeds of one config."""
        g = self.rows.groupby("config")["top1"]
        dof = (g.count() - 1).clip(lower=0)
        if dof.sum() == 0:
            return 0.0
        return float(math.sqrt((g.var(ddof=1).fillna(0) * dof).sum() / dof.sum()))

    def log_spread(self) -> float | None:
        """A robust SD of log error between seeds of one config (median absolute deviation
        from each config's median, corrected for the median being estimated from the same
        few seeds); None without replicates."""
        log_e = np.log(self.rows["error"])
        dev = log_e - log_e.groupby(self.rows["config"]).transform("median")
        n = self.rows.groupby("config")["seed"].transform("count")
        dev = dev[n > 1]
        if dev.empty or not (dev != 0).any():
            return None
        k = float((n[n > 1] / (n[n > 1] - 1)).mean())
        return float(1.4826 * np.median(np.abs(dev)) * math.sqrt(k))


def load_points(paths: list[str | Path], samples: int | None = None) -> Points:
    """The finished points of one or more study run directories, checked to be one study.

    A point met twice (a base shared by two studies) counts once; points that diverged or
    did not finish are left out and named in ``excluded``; ``samples`` keeps one budget."""
    from effscale.rundir import StudyDir

    frames, excluded = [], []
    for path in paths:
        sd = StudyDir(path)
        study = sd.load_study()
        df = sd.results(study)
        recipes = {p.key: _recipe(p.recipe) for p in study.points}
        df["recipe"] = df["key"].map(recipes)
        # the classifier's size counts in FLOPs: a recommendation is counted with it
        df["num_classes"] = [(sd.config(k) or {}).get("num_classes", 1000) for k in df["key"]]
        df["source"] = str(path)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True).drop_duplicates("key")
    if df.empty:
        raise EffscaleError(f"no finished points in {', '.join(map(str, paths))}",
                            "run the study first (effscale run / effscale status)")  # fmt: skip
    bad = (df["status"] != "done") | ~np.isfinite(df["top1"].astype(float))
    excluded += [f"{r.key} ({r.d:g}, {r.w:g}, {r.resolution} px, seed {r.seed}): {r.status}"
                 for r in df[bad].itertuples()]  # fmt: skip
    df = df[~bad]
    if samples is not None:
        if not (df["budget"] == samples).any():
            have = ", ".join(f"{b:,}" for b in sorted(df["budget"].unique()))
            raise EffscaleError(f"no finished points at {samples:,} samples", f"budgets: {have}")
        df = df[df["budget"] == samples]
    identity = _one_study(df)
    return Points(_rows(df), identity, excluded, [str(p) for p in paths])


def _recipe(recipe) -> str:
    """The training procedure as one comparable string: every field but the budget."""
    from effscale.study.plan import recipe_identity

    return json.dumps(recipe_identity(recipe), sort_keys=True)


def _one_study(df: pd.DataFrame) -> dict:
    """The shared identity, or one line naming what differs between the points."""
    out = {}
    for col in IDENTITY:
        values = df[col].astype(str).unique()
        if len(values) > 1:
            where = {v: df.loc[df[col].astype(str) == v, "source"].iloc[0] for v in values[:2]}
            if col == "recipe":
                a, b = (json.loads(v) for v in values[:2])
                keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
                shown = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])
            else:
                shown = " vs ".join(f"{v} ({where[v]})" for v in values[:2])
            raise EffscaleError(
                f"the points are of different studies: {col} differs ({shown})",
                "fit points of one backbone, base, data and training protocol together",
            )
        value = df[col].iloc[0]
        value = value.item() if hasattr(value, "item") else value  # numpy scalar -> Python
        out[col] = json.loads(value) if col == "recipe" else value
    return out


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    """The fit's columns, with realised multipliers and a config id per shape and budget."""
    shapes = [realised(Variant.from_row(r)) for _, r in df.iterrows()]
    d, w, r = (np.array(x) for x in zip(*shapes))
    out = pd.DataFrame({
        "key": df["key"].values, "seed": df["seed"].astype(int).values,
        "d": d, "w": w, "r": r, "resolution": df["resolution"].astype(int).values,
        "nominal_d": df["d"].astype(float).values, "nominal_w": df["w"].astype(float).values,
        "samples": df["budget"].astype(int).values,
        "flops_ratio": df["realised_flops_ratio"].astype(float).values,
        "top1": df["top1"].astype(float).values,
    })  # fmt: skip
    out["error"] = 1.0 - out["top1"] / 100.0
    out["config"] = [
        f"d{a:.3g}-w{b:.3g}-{res}px-{s // 1000}k"
        for a, b, res, s in zip(out["d"], out["w"], out["resolution"], out["samples"])
    ]
    return out
