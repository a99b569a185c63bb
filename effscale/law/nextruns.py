"""What to train next: the points (shape, budget) that would shrink a recommendation's
interval most per unit of training cost, from the law's bootstrap.

Candidates (scaling_laws.md 10.8, "adaptive step"), all realisable networks (the lattice of
depths, widths and resolutions the recommendation is searched on):

* near the recommendation at the target: its log-FLOP shares, and shares moved by 0.15
  from one dimension to another, on the target's iso-FLOP surface;
* the same at one level above (twice the target's FLOPs);
* each dimension's next step: one FLOPs doubling beyond the largest multiplier the study
  sampled along it, the others at the base (the boundary rule: extend the sampled range);
each at the recommendation's budget and at every budget the study fitted.

The score is a heuristic, not an optimal design. The bootstrap draws are read as a Gaussian
belief about two numbers, the candidate's top-1 (c) and the recommendation's (R); training
the candidate with ``seeds`` seeds observes c with the seed noise s^2 / seeds added. By
Gaussian conditioning that shrinks R's variance by

    cov(c, R)^2 / (var(c) + s^2 / seeds)  =  var(c) x [corr(c, R)^2 var(R) / (var(c) + noise)]

that is, the candidate's bootstrap variance times its influence on the recommendation. The
score divides it by the cost, FLOPs (over the base's) x samples x seeds. What it ignores:
a new point refits the whole law (it can move more than this linear relation says), the
uncertainty of the form itself (the bootstrap is of one form), and the counted FLOPs of
candidates (estimated by the study's own elasticities, to avoid tracing each network).
"""

import math
from dataclasses import replace

import numpy as np

from effscale.law.bootstrap import Bootstrap
from effscale.law.points import SAMPLES_REF, Points
from effscale.law.recommend import Recommendation, _estimate, _lattice, base_variant

SHIFT = 0.15  # log-FLOP share moved between dimensions around the recommendation
LEVEL_UP = 2.0  # "one level above": a FLOPs doubling


def _snap(values: np.ndarray, want: float) -> int:
    """Index of the realisable value nearest ``want`` in log space."""
    return int(np.argmin(np.abs(np.log(values) - math.log(max(want, 1.0)))))


def _share_moves(shares: np.ndarray) -> list[np.ndarray]:
    """The shares, and each move of SHIFT from one dimension to another that stays >= 0."""
    out = [shares]
    for i in range(3):
        for j in range(3):
            if i != j and shares[i] >= SHIFT - 1e-9:
                moved = shares.copy()
                moved[i] -= SHIFT
                moved[j] += SHIFT
                out.append(moved)
    return out


def _shapes(rec: Recommendation, points: Points, e: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(role, wanted realised multipliers) of every candidate shape, before snapping."""
    logs = e * np.log(rec.best.x)
    shares = logs / logs.sum() if logs.sum() > 0 else np.full(3, 1 / 3)
    out = []
    for role, level in (("at target", rec.target), ("2x target", LEVEL_UP * rec.target)):
        for s in _share_moves(shares):
            out.append((role, np.exp(s * math.log(level) / e)))
    sampled = points.rows[["d", "w", "r"]].max().to_numpy(float)
    for k, dim in enumerate(("depth", "width", "resolution")):
        x = np.ones(3)
        x[k] = sampled[k] * 2.0 ** (1 / e[k])
        out.append((f"next {dim}", x))
    return out


def candidates(rec: Recommendation, points: Points) -> list[dict]:
    """The realisable candidates: role, variant, realised x, budget, estimated FLOPs ratio."""
    e = _estimate(points)
    e = np.where(e > 0.05, e, 1.0)
    wanted = _shapes(rec, points, e)
    top = max(float(np.exp(e @ np.log(x))) for _, x in wanted)
    base = base_variant(points)
    (dn, dx), (wn, wx), (px, rx) = (a.T for a in _lattice(base, top))
    budgets = sorted(set(points.budgets) | {rec.samples})
    out, seen = [], set()
    for role, x in wanted:
        i, j, k = _snap(dx, x[0]), _snap(wx, x[1]), _snap(rx, x[2])
        real = np.array([dx[i], wx[j], rx[k]])
        variant = replace(base, d=float(dn[i]), w=float(wn[j]), r=float(rx[k]),
                          resolution=int(px[k]))  # fmt: skip
        for samples in budgets:
            key = (variant.d, variant.w, variant.resolution, samples)
            if key in seen:
                continue
            seen.add(key)
            out.append({"role": role, "variant": variant, "x": real, "samples": samples,
                        "flops_ratio": float(np.exp(e @ np.log(real)))})  # fmt: skip
    return out


def next_points(boot: Bootstrap, points: Points, rec: Recommendation, n: int,
                seeds: int = 3) -> list[dict]:  # fmt: skip
    """The ``n`` best candidates by expected shrinkage of the recommendation's variance per
    unit of cost, best first (fewer when there are fewer candidates)."""
    if n < 1:
        from effscale.errors import EffscaleError

        raise EffscaleError(f"`next`={n}: ask for one point or more")
    cands = candidates(rec, points)
    X = np.array([[*c["x"], c["samples"] / SAMPLES_REF] for c in cands])
    R = np.array([[*rec.best.x, rec.samples / SAMPLES_REF]])
    top1 = 100.0 * (1.0 - boot.errors(np.vstack([R, X])))  # (draws, 1 + candidates)
    r, c = top1[:, 0], top1[:, 1:]
    var_r, var_c = float(np.var(r)), np.var(c, axis=0)
    cov = np.mean((c - c.mean(axis=0)) * (r - r.mean())[:, None], axis=0)
    noise = boot.fit.seed_sd**2 / seeds
    shrink = np.where(var_c + noise > 0, cov**2 / np.maximum(var_c + noise, 1e-12), 0.0)
    shrink = np.minimum(shrink, var_r)
    fitted = set(zip(points.rows["d"].round(4), points.rows["w"].round(4),
                     points.rows["resolution"], points.rows["samples"]))  # fmt: skip
    rows = []
    for i, cand in enumerate(cands):
        v = cand["variant"]
        cost = cand["flops_ratio"] * cand["samples"] * seeds / 1e6
        rows.append({
            "role": cand["role"], "d": round(v.d, 4), "w": round(v.w, 4),
            "resolution": v.resolution, "samples": cand["samples"],
            "flops_ratio_est": round(cand["flops_ratio"], 3),
            "in_study": (round(cand["x"][0], 4), round(cand["x"][1], 4), v.resolution,
                         cand["samples"]) in fitted,
            "top1": float(boot.fit.top1(X[i : i + 1])[0]), "sd": float(math.sqrt(var_c[i])),
            "corr": float(cov[i] / math.sqrt(var_c[i] * var_r)) if var_c[i] * var_r > 0 else 0.0,
            "sd_after": float(math.sqrt(max(var_r - shrink[i], 0.0))),
            "cost": cost, "score": float(shrink[i] / cost),
        })  # fmt: skip
    rows.sort(key=lambda row: -row["score"])
    for row in rows:
        row["sd_now"] = math.sqrt(var_r)
    return rows[:n]
