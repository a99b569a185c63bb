"""What a fitted law says about shape: the optimal FLOP shares, the equivalent EfficientNet
alpha, beta, gamma, and each dimension's saturation, each with a bootstrap interval.

Optimal shares at a fixed budget: the law's best (d, w, r) among those multiplying the
nominal FLOPs d w^2 r^2 by a target T, searched on the simplex of log-FLOP shares (share_d
+ share_w + share_r = 1, d = T^share_d, w = T^(share_w / 2), r = T^(share_r / 2)). At T = 2
this is the paper's Step 1 (alpha beta^2 gamma^2 = 2), answered from every point of the
study instead of a grid around phi = 1: alpha = 2^share_d, beta = 2^(share_w / 2),
gamma = 2^(share_r / 2). A numeric search rather than F1's closed form (scaling_laws.md
10.3), so that it holds for every form and for growth from the base (multipliers >= 1).

Saturation: scaling one dimension alone, the error falls as x^-exponent to a floor, the top-1
the law says that dimension can never pass on its own (EfficientNet's Observation 1).
"""

import numpy as np

from effscale.law.bootstrap import Bootstrap
from effscale.law.forms import DIMS
from effscale.law.points import SAMPLES_REF

NOMINAL = np.array([1.0, 2.0, 2.0])  # FLOPs elasticities of d, w, r (F ~ d w^2 r^2)
FAR = 1e4  # "alone, to infinity", as a multiplier


def simplex(step: float = 0.01) -> np.ndarray:
    """Every (share_d, share_w, share_r) >= 0 summing to 1, on a grid of ``step``."""
    n = round(1 / step)
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    i, j = i[keep], j[keep]
    return np.column_stack([i, j, n - i - j]) / n


def shapes_at(target: float, shares: np.ndarray, samples: int) -> np.ndarray:
    """X rows (d, w, r, s) of the shapes that spend ``shares`` of log FLOPs at ``target``."""
    x = target ** (shares / NOMINAL)
    s = np.full((len(shares), 1), samples / SAMPLES_REF)
    return np.column_stack([x, s])


def optimal_shares(boot: Bootstrap, samples: int, target: float = 2.0) -> dict:
    """The law's optimal shares at ``target`` x the base's nominal FLOPs, the equivalent
    alpha, beta, gamma, and P(that shape beats each dimension alone at equal FLOPs), with
    intervals across the bootstrap."""
    grid = simplex()
    X = shapes_at(target, grid, samples)
    fit_best = grid[np.argmin(boot.fit.error(X))]
    draws = boot.errors(X)  # (draws, grid)
    best = grid[np.argmin(draws, axis=1)]
    corners = [np.flatnonzero(grid[:, k] == 1.0)[0] for k in range(3)]
    best_err = draws.min(axis=1)
    out = {"target": target, "samples": samples}
    for k, dim in enumerate(DIMS):
        out[f"share_{dim}"] = (float(fit_best[k]), *boot.interval(best[:, k]))
        out[f"p_beats_{dim}"] = float(np.mean(best_err < draws[:, corners[k]] - 1e-12))
    for name, k, power in (("alpha", 0, 1.0), ("beta", 1, 0.5), ("gamma", 2, 0.5)):
        values = 2.0 ** (best[:, k] * power)
        out[name] = (float(2.0 ** (fit_best[k] * power)), *boot.interval(values))
    return out


def saturation(boot: Bootstrap, samples: int) -> list[dict]:
    """Per dimension: its exponent alone, and the top-1 it saturates at alone (the floor),
    with intervals."""
    s = samples / SAMPLES_REF
    names = boot.fit.form.names
    out = []
    for k, dim in enumerate(DIMS):
        far = np.ones((1, 4))
        far[0, 3] = s
        far[0, k] = FAR
        floors = 100.0 * (1.0 - boot.errors(far)[:, 0])
        exps = [boot.fit.form.exponent_of(dict(zip(names, t)), dim) for t in boot.thetas]
        out.append({
            "dimension": dim,
            "exponent": float(boot.fit.form.exponent_of(boot.fit.params, dim)),
            "exponent_lo": boot.interval(exps)[0], "exponent_hi": boot.interval(exps)[1],
            "floor_top1": float(boot.fit.top1(far)[0]),
            "floor_lo": boot.interval(floors)[0], "floor_hi": boot.interval(floors)[1],
        })  # fmt: skip
    return out
