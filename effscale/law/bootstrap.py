"""Cluster bootstrap over configurations: honest intervals for a fitted law.

Configurations are resampled with replacement, each with all its seeds (a row bootstrap
would treat seeds as independent shapes and understate the uncertainty), and the law is
refitted from the full data's estimate (Besiroglu et al. 2024 warm-start their refits; a
cold grid per draw would cost 50x and find the same optimum). Draws are seeded, so a
bootstrap is reproducible; refits that do not converge are counted and left out.

A prediction interval for a new run combines the law's bootstrap spread with the seed
noise (the pooled SD of top-1 between seeds): a law can be exact and a run still 1 point off.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from effscale.errors import EffscaleError
from effscale.law.fit import Fit, fit_form
from effscale.law.points import Points

LEVEL = 0.8  # intervals are central 80 %: what the extrapolation check's coverage targets
MIN_DRAWS = 20  # fewer converged refits than this give no interval worth printing


@dataclass
class Bootstrap:
    fit: Fit
    thetas: np.ndarray  # converged refits' parameters, one row per draw
    draws: int  # refits tried
    seed: int
    level: float = LEVEL

    @property
    def failures(self) -> int:
        return self.draws - len(self.thetas)

    def interval(self, values) -> tuple[float, float]:
        q = (1 - self.level) / 2
        lo, hi = np.nanquantile(np.asarray(values, float), [q, 1 - q], axis=0)
        return float(lo), float(hi)

    def parameters(self) -> list[dict]:
        """Each parameter: estimate and interval."""
        out = []
        for i, name in enumerate(self.fit.form.names):
            lo, hi = self.interval(self.thetas[:, i])
            value = float(self.fit.theta[i])
            out.append({"parameter": name, "value": value, "lo": lo, "hi": hi,
                        "at_bound": name in self.fit.at_bound})  # fmt: skip
        return out

    def errors(self, X: np.ndarray) -> np.ndarray:
        """Predicted top-1 error at X under every draw: (draws, len(X))."""
        X = np.atleast_2d(X)
        return np.stack([self.fit.form.predict(t, X) for t in self.thetas])

    def predict(self, X: np.ndarray, n_seeds: int = 1) -> pd.DataFrame:
        """Predicted top-1 (points) at X: the fit's value, and an interval for the mean of
        ``n_seeds`` new runs (bootstrap spread plus seed noise / sqrt(n_seeds))."""
        X = np.atleast_2d(X)
        top1 = 100.0 * (1.0 - self.errors(X))
        rng = np.random.default_rng(self.seed + 1)
        noise = rng.normal(0.0, self.fit.seed_sd / np.sqrt(n_seeds), top1.shape)
        q = (1 - self.level) / 2
        lo, hi = np.quantile(top1 + noise, [q, 1 - q], axis=0)
        return pd.DataFrame({"top1": self.fit.top1(X), "lo": lo, "hi": hi,
                             "law_lo": np.quantile(top1, q, axis=0),
                             "law_hi": np.quantile(top1, 1 - q, axis=0)})  # fmt: skip


def bootstrap(points: Points, fit: Fit, draws: int = 200, seed: int = 0) -> Bootstrap:
    """Refit ``fit``'s form on ``draws`` resamples of the configurations (seeded)."""
    if draws < MIN_DRAWS:
        raise EffscaleError(f"`bootstrap`={draws} is too few draws for an interval",
                            f"use at least {MIN_DRAWS} (200 is the default)")  # fmt: skip
    rng = np.random.default_rng(seed)
    configs = points.rows["config"].unique()
    by_config = {c: np.flatnonzero(points.rows["config"].to_numpy() == c) for c in configs}
    thetas = []
    for _ in range(draws):
        chosen = rng.choice(configs, size=len(configs), replace=True)
        rows = np.concatenate([by_config[c] for c in chosen])
        sample = Points(points.rows.iloc[rows].reset_index(drop=True), points.identity)
        try:  # the size rule was checked on the data; a resample repeats configurations
            refit = fit_form(sample, fit.form, per_param=0, delta=fit.delta,
                             start=fit.theta, seed_sd=fit.seed_sd)  # fmt: skip
        except EffscaleError:
            continue
        thetas.append(refit.theta)
    if len(thetas) < max(MIN_DRAWS // 2, draws // 2):  # a few failures are reported, not fatal
        raise EffscaleError(
            f"only {len(thetas)} of {draws} bootstrap refits of {fit.form.name} converged",
            "the law is not identified by these points: add configurations or use a simpler form",
        )
    return Bootstrap(fit, np.array(thetas), draws, seed)
