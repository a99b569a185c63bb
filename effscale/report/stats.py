"""Tests for a handful of seeds: paired t, Holm's correction, pooling cells, and power.

A study has 2 to 5 seeds per point, so every test here is Student's t at n - 1 degrees of
freedom on per-seed paired differences: with 3 seeds the 95 % critical value is 4.30, not
the 2 of a normal approximation. Resampling tests are no help at this size: a sign-flip test
on 3 differences cannot go below p = 0.25, and a bootstrap of 3 seeds has 10 distinct
resamples. The t-test assumes the per-seed differences are roughly normal; with seeds as the
only replicates nothing can check that, which is one more reason to read the intervals, not
only the verdict word.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# The level a verdict needs (two-sided), unless the user sets another (--alpha).
ALPHA = 0.05
# The power a seed count is sized for ("how many seeds would resolve this").
POWER = 0.8
# Seed counts searched for that; beyond it the answer is "more than MAX_SEEDS".
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Paired:
    """A mean of per-seed differences with its test: n, mean, sample std, the (1 - alpha)
    confidence interval of the mean, the two-sided p-value and the degrees of freedom."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    p: float
    df: int

    def record(self, prefix: str = "") -> dict:
        return {
            f"{prefix}ci_low": self.low,
            f"{prefix}ci_high": self.high,
            f"{prefix}p": self.p,
        }


NAN = float("nan")


def _t_test(mean: float, se: float, n: int, df: int, alpha: float) -> Paired:
    """Student's t with ``df`` degrees of freedom for a mean and its standard error."""
    std = se * math.sqrt(n) if n else NAN
    if n < 2 or df < 1 or not math.isfinite(se):
        return Paired(n, mean, NAN, NAN, NAN, NAN, max(df, 0))
    if se == 0:  # identical differences: no noise to test against
        return Paired(n, mean, 0.0, mean, mean, 1.0 if mean == 0 else 0.0, df)
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return Paired(n, mean, std, mean - half, mean + half, p, df)


def paired_t(diffs, alpha: float = ALPHA) -> Paired:
    """Student's paired t-test of per-seed differences (two-sided), with the (1 - alpha)
    interval of their mean; n < 2 gives no spread, interval or p-value (NaN)."""
    x = np.asarray([d for d in diffs if d is not None and math.isfinite(d)], dtype=float)
    n = len(x)
    if n == 0:
        return Paired(0, NAN, NAN, NAN, NAN, NAN, 0)
    mean = float(x.mean())
    if n < 2:
        return Paired(1, mean, NAN, NAN, NAN, NAN, 0)
    std = float(x.std(ddof=1))
    paired = _t_test(mean, std / math.sqrt(n), n, n - 1, alpha)
    return Paired(n, mean, std, paired.low, paired.high, paired.p, n - 1)


def pooled(cells: list, alpha: float = ALPHA) -> Paired:
    """One estimate from several independent cells of per-seed differences (a fixed-effect
    combination): the seed-weighted mean of the cells' means, tested against the seed
    variance pooled over the cells, at sum(n_i - 1) degrees of freedom. It assumes cells
    share no training run and the seed noise is alike across them; it tests the average
    difference over these cells, not that every cell has it."""
    cells = [np.asarray(c, dtype=float) for c in cells]
    cells = [c[np.isfinite(c)] for c in cells]
    cells = [c for c in cells if len(c)]
    n = sum(len(c) for c in cells)
    if not n:
        return Paired(0, NAN, NAN, NAN, NAN, NAN, 0)
    mean = float(sum(c.sum() for c in cells) / n)
    df = sum(len(c) - 1 for c in cells)
    if df < 1:
        return Paired(n, mean, NAN, NAN, NAN, NAN, 0)
    variance = sum(((c - c.mean()) ** 2).sum() for c in cells) / df
    return _t_test(mean, math.sqrt(variance / n), n, df, alpha)


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjustment of a family of p-values (keys kept): reject where the
    adjusted value is below alpha, and the family-wise error stays at alpha. NaN stays NaN
    and does not count in the family."""
    known = sorted((p, k) for k, p in pvalues.items() if p is not None and math.isfinite(p))
    m, running, out = len(known), 0.0, {k: NAN for k in pvalues}
    for i, (p, k) in enumerate(known):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def power(effect: float, n, alpha: float = ALPHA):
    """Power of the two-sided one-sample (paired) t-test at ``n`` seeds for a true mean
    difference of ``effect`` standard deviations of the per-seed differences."""
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(effect) * np.sqrt(n)
    return stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift)


def seeds_needed(difference: float, std: float, alpha: float = ALPHA, power_: float = POWER):
    """The smallest seed count at which the paired t-test resolves a true difference of
    ``difference`` points at a per-seed spread of ``std`` with probability ``power_``: an
    int, MAX_SEEDS + 1 for "more than MAX_SEEDS", or None when it cannot be said (no
    spread yet, or no difference)."""
    if not (math.isfinite(difference) and math.isfinite(std)) or difference == 0:
        return None
    if std == 0:
        return 2
    n = np.arange(2, MAX_SEEDS + 1)
    ok = np.nonzero(power(difference / std, n, alpha) >= power_)[0]
    return int(n[ok[0]]) if len(ok) else MAX_SEEDS + 1


def seeds_phrase(n) -> str:
    """seeds_needed's answer as words."""
    if n is None:
        return "unknown without a spread"
    return f"more than {MAX_SEEDS}" if n > MAX_SEEDS else str(n)
