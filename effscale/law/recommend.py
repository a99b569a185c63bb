"""The best realisable network at a FLOPs target, beside the alternatives, from a fitted law.

Realisable: built by effscale's own scaling rules (repeats rounded up, channels to multiples
of 8, resolution to multiples of 4) and within a tolerance of the target in *counted* FLOPs.
Counting a network traces it (about a second), so the search is in two steps: the law ranks
every network of a lattice of realisable depths, widths and resolutions whose FLOPs, by a
power-law estimate fitted to the study's own counted points, lie near the target; then the
best-ranked are counted exactly (cached) until enough fall within the tolerance.

Beside the recommendation: each dimension alone and the paper's compound rule at the same
counted FLOPs (scaling.match_flops; phi for compound), each with its predicted top-1 and
interval, and the probability across the bootstrap that the recommendation beats it.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from effscale.errors import EffscaleError
from effscale.law.bootstrap import Bootstrap
from effscale.law.points import SAMPLES_REF, Points, realised
from effscale.law.shape import NOMINAL
from effscale.scaling import DIMENSIONS, Variant, compound, make_variant, match_flops

TOLERANCE = 0.02  # counted FLOPs within 2 % of the target
NEAR = 0.15  # the estimate's window before counting (it is off by a few percent)
COUNTED = 16  # networks counted per round, best-ranked first
FAR_TARGET = 3.0  # beyond this x the largest fitted FLOPs, a warning
STEP = 0.02  # lattice step of the nominal depth and width multipliers


@dataclass
class Candidate:
    role: str  # recommended, depth, width, resolution, compound
    variant: Variant
    flops_ratio: float  # counted, over the base's
    x: tuple[float, float, float]  # realised (d, w, r)
    top1: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p_recommended_beats: float = math.nan  # across the bootstrap

    def to_dict(self) -> dict:
        v = self.variant
        return {
            "role": self.role, "d": round(v.d, 4), "w": round(v.w, 4), "r": round(v.r, 4),
            "resolution": v.resolution, "realised_d": round(self.x[0], 4),
            "realised_w": round(self.x[1], 4), "flops_ratio": round(self.flops_ratio, 4),
            "top1": self.top1, "lo": self.lo, "hi": self.hi,
            "p_recommended_beats": self.p_recommended_beats,
        }  # fmt: skip


@dataclass
class Recommendation:
    target: float
    samples: int
    seeds: int  # the intervals are for a mean of this many seeds
    candidates: list[Candidate]  # the recommendation first
    equivalent: dict  # its alpha, beta, gamma (log-FLOP shares at nominal elasticities)
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


def base_variant(points: Points) -> Variant:
    i = points.identity
    return make_variant(i["model"], base_resolution=int(i["base_resolution"]),
                        small_input=bool(i["small_input"]), base_width=float(i["base_width"]),
                        base_depth=float(i["base_depth"]))  # fmt: skip


def counter(num_classes: int):
    """Counted FLOPs of a variant (effscale.cost, cached on disk and in this process)."""
    from effscale.cost import count_cost

    cache: dict = {}

    def flops_of(v: Variant) -> int:
        if v not in cache:
            cache[v] = count_cost(v, num_classes).flops
        return cache[v]

    return flops_of


def _lattice(base: Variant, target: float) -> list[np.ndarray]:
    """Distinct realisable depths, widths and resolutions up to the target alone:
    (nominal, realised) per dimension, one nominal value per realised network."""
    out = []
    for k, top in ((0, target), (1, math.sqrt(target))):
        seen = {}
        for m in np.arange(1.0, top * (1 + NEAR) + STEP, STEP):
            m = round(float(m), 4)
            kw = {"d": m} if k == 0 else {"w": m}
            x = realised(replace(base, **kw))[k]
            seen.setdefault(round(x, 6), m)
        out.append(np.array([(m, x) for x, m in seen.items()]))
    top_px = base.base_resolution * math.sqrt(target * (1 + NEAR))
    px = np.arange(base.base_resolution, top_px + 4, 4)
    out.append(np.column_stack([px, px / base.base_resolution]))
    return out


def _estimate(points: Points) -> np.ndarray:
    """Elasticities e with log(FLOPs ratio) ~ e . log(realised d, w, r), from the points."""
    c = points.configs()
    A = np.log(c[["d", "w", "r"]].to_numpy(float))
    e, *_ = np.linalg.lstsq(A, np.log(c["flops_ratio"].to_numpy(float)), rcond=None)
    return np.where(np.abs(A).sum(axis=0) > 0, e, NOMINAL)  # an unsampled dim: nominal


def search(boot: Bootstrap, points: Points, target: float, samples: int, flops_of,
           tolerance: float = TOLERANCE) -> Candidate:  # fmt: skip
    """The realisable network the law predicts best within ``tolerance`` of the target.

    Per (width, resolution) pair of the lattice, the estimate gives the depth that reaches
    the target; the law ranks the pairs at that depth; the best-ranked pairs are counted,
    their depth set exactly on counted FLOPs (cheap: depth repeats pieces already traced)."""
    base = base_variant(points)
    base_flops = flops_of(base)
    (dn, dx), (wn, wx), (px, rx) = (a.T for a in _lattice(base, target))
    e = _estimate(points)
    W, R = (g.ravel() for g in np.meshgrid(np.arange(len(wx)), np.arange(len(rx)),
                                            indexing="ij"))  # fmt: skip
    d_need = np.exp((math.log(target) - e[1] * np.log(wx[W]) - e[2] * np.log(rx[R])) / e[0])
    ok = d_need >= 1 / (1 + tolerance)
    d_at = dx[np.clip(np.searchsorted(dx, d_need) - 1, 0, len(dx) - 1)]
    s = samples / SAMPLES_REF
    X = np.column_stack([np.maximum(d_at, 1.0), wx[W], rx[R], np.full(len(W), s)])
    order = np.flatnonzero(ok)[np.argsort(boot.fit.error(X[ok]))]
    found = []
    for i in order[: 4 * COUNTED]:
        at = replace(base, w=float(wn[W[i]]), r=float(rx[R[i]]), resolution=int(px[R[i]]))
        for j in _depths(at, dn, target * base_flops, flops_of):
            v = replace(at, d=float(dn[j]))
            ratio = flops_of(v) / base_flops
            if abs(ratio / target - 1) <= tolerance:
                x = (float(dx[j]), float(wx[W[i]]), float(rx[R[i]]))
                found.append(Candidate("recommended", v, ratio, x))
        if len(found) >= COUNTED // 2:
            break
    if not found:
        raise EffscaleError(
            f"no network within {tolerance:.0%} of {target:g}x the base's FLOPs was found",
            "widen `tolerance`, or choose another `flops`",
        )
    err = boot.fit.error(np.array([[*c.x, s] for c in found]))
    return found[int(np.argmin(err))]


def _depths(at: Variant, dn: np.ndarray, goal: float, flops_of) -> list[int]:
    """The lattice depths on either side of ``goal`` FLOPs at this width and resolution
    (counted FLOPs grow with depth: a bisection)."""
    lo, hi = 0, len(dn) - 1
    if flops_of(replace(at, d=float(dn[hi]))) < goal:
        return [hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if flops_of(replace(at, d=float(dn[mid]))) < goal else (lo, mid)
    return [lo, hi]


def alternatives(base: Variant, target: float, flops_of) -> list[Candidate]:
    """Each dimension alone and the paper's compound rule at the target's counted FLOPs."""
    base_flops = flops_of(base)
    goal = int(round(target * base_flops))
    out = []
    for dim in DIMENSIONS:
        v = match_flops(base, dim, goal, flops_of, multiple=4, hi=max(16.0, 2 * target))
        out.append(Candidate(dim, v, flops_of(v) / base_flops, realised(v)))
    lo, hi = 0.0, 1.0
    while flops_of(_phi(base, hi)) < goal:  # bracket, then bisect phi on counted FLOPs
        lo, hi = hi, 2 * hi
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if flops_of(_phi(base, mid)) < goal else (lo, mid)
    # the tidiest phi within tolerance (phi = 2 rather than 2.0137: stored points match it)
    phis = (round(lo), round(hi), round(lo, 1), round(hi, 1), round(lo, 2), round(hi, 2), lo, hi)
    tidy = [_phi(base, p) for p in phis if p > 0]
    close = [v for v in tidy if abs(flops_of(v) / goal - 1) <= TOLERANCE]
    v = close[0] if close else min(tidy, key=lambda v: abs(flops_of(v) - goal))
    out.append(Candidate("compound", v, flops_of(v) / base_flops, realised(v)))
    return out


def _phi(base: Variant, phi: float) -> Variant:
    d, w, r = compound(phi)
    return make_variant(base.backbone, d, w, r, base_resolution=base.base_resolution,
                        small_input=base.small_input, base_width=base.base_width,
                        base_depth=base.base_depth)  # fmt: skip


def recommend(boot: Bootstrap, points: Points, target: float, samples: int, seeds: int = 3,
              tolerance: float = TOLERANCE, flops_of=None) -> Recommendation:  # fmt: skip
    """The recommendation at ``target`` x the base's counted FLOPs and ``samples``."""
    if not (math.isfinite(target) and 1.0 < target <= 1000):
        raise EffscaleError(f"`flops`={target:g}x is not a target to grow to",
                            "give a ratio above 1 (the base), e.g. 6.4x")  # fmt: skip
    flops_of = flops_of or counter(int(points.identity.get("num_classes", 1000)))
    best = search(boot, points, target, samples, flops_of, tolerance)
    cands = [best] + alternatives(base_variant(points), target, flops_of)
    s = samples / SAMPLES_REF
    X = np.array([[*c.x, s] for c in cands])
    pred = boot.predict(X, n_seeds=seeds)
    draws = boot.errors(X)
    for i, c in enumerate(cands):
        c.top1, c.lo, c.hi = (float(pred[k].iloc[i]) for k in ("top1", "lo", "hi"))
        if i:
            c.p_recommended_beats = float(np.mean(draws[:, 0] < draws[:, i]))
    logs = NOMINAL * np.log(best.x)
    shares = logs / logs.sum() if logs.sum() > 0 else np.zeros(3)
    equivalent = {"alpha": 2 ** shares[0], "beta": 2 ** (shares[1] / 2),
                  "gamma": 2 ** (shares[2] / 2)}  # fmt: skip
    rec = Recommendation(target, samples, seeds, cands, equivalent)
    rec.warnings = _warnings(rec, points)
    return rec


def _warnings(rec: Recommendation, points: Points) -> list[str]:
    out = []
    top = points.rows["flops_ratio"].max()
    if rec.target > FAR_TARGET * top:
        out.append(f"the target is {rec.target / top:.1f}x the largest fitted point ({top:.2f}x): "
                   f"an extrapolation; add points near {rec.target:g}x")  # fmt: skip
    for k, dim in enumerate(DIMENSIONS):
        x, sampled = rec.best.x[k], points.rows["dwr"[k]].max()
        if x > sampled * 1.02:
            out.append(f"the optimum's {dim} ({x:.2f}x) is beyond the sampled range (up to "
                       f"{sampled:.2f}x): add points with {dim} near {x:.2f}x")  # fmt: skip
    if points.budgets and rec.samples not in points.budgets:
        out.append(f"{rec.samples:,} samples is not a fitted budget "
                   f"({', '.join(f'{b:,}' for b in points.budgets)})")  # fmt: skip
    return out
