"""Summaries over seeds and the two verdicts of the paper, with their numbers.

1. Diminishing returns (Figure 3): along each dimension alone, the accuracy gained per
   doubling of FLOPs, on the first step and on the last, each with its spread over seeds.
2. Balanced scaling wins (Figure 8): compound minus each single dimension at matched FLOPs,
   per phi, as the mean and spread of the per-seed differences.

Every verdict stands on Student's paired t-test at n - 1 degrees of freedom
(effscale.report.stats): "supported" or "contradicted" only where the two-sided p-value is
below alpha (0.05 unless set), else "not resolved" with the seeds a difference of the
observed size would need. Compound is tested against every matched dimension, not only the
one best on the means (picking the best after looking at the same seeds tilts the test
against compound): it is "behind" where some dimension is ahead of it after Holm's
correction, and "supported" only where it is ahead of every dimension, each at alpha (an
intersection-union test needs no correction). Verdicts are given per training budget, and
each names the points it stands on that were still improving when their training ended
(late_gain above IMPROVING): such a verdict may move with a longer budget.
"""

import math

import numpy as np
import pandas as pd

from effscale.report.stats import ALPHA, Paired, holm, paired_t, seeds_needed, seeds_phrase
from effscale.rundir import VARIANT_COLUMNS
from effscale.scaling import DIMENSIONS

# What tells variants of one study apart (its base resolution and stem are shared).
VARIANT = VARIANT_COLUMNS[:7]
# Top-1 points gained over the last quarter (or so) of a run's samples above which the run
# counts as still improving when it ended.
IMPROVING = 1.0


def finished(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "done"].copy()


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of accuracy over seeds, one row per variant (and role)."""
    df = finished(df)
    if df.empty:
        return pd.DataFrame(
            columns=VARIANT
            + ["data", "roles", "phi", "flops", "params", "seeds", "top1_mean", "top1_std"]
        )
    # by data too, when known: a transfer study trains one variant on two datasets; and by
    # budget: a budget study trains one variant at several
    by = VARIANT + [c for c in ("data", "budget") if c in df]
    g = df.groupby(by, dropna=False, sort=False)
    out = g.agg(
        roles=("roles", "first"),
        phi=("phi", "first"),
        flops=("flops", "first"),
        params=("params", "first"),
        realised_flops_ratio=("realised_flops_ratio", "first"),
        target_flops_ratio=("target_flops_ratio", "first"),
        seeds=("seed", "nunique"),
        top1_mean=("top1", "mean"),
        top1_std=("top1", "std"),
        top5_mean=("top5", "mean"),
        train_seconds=("train_seconds", "sum"),
        **({"late_gain": ("late_gain", "mean")} if "late_gain" in df else {}),
    ).reset_index()
    out["top1_std"] = out["top1_std"].fillna(0.0)
    return out.sort_values("flops").reset_index(drop=True)


def has_role(df: pd.DataFrame, role: str) -> pd.Series:
    return df["roles"].fillna("").str.split(";").apply(lambda rs: role in rs)


def dimension_curve(df: pd.DataFrame, dim: str) -> pd.DataFrame:
    """Per-seed rows of the base and every point that scales this dimension alone (a sweep's,
    or a Figure-8 match's), ordered by FLOPs."""
    df = finished(df)
    alone = has_role(df, dim) | has_role(df, f"match-{dim}") | has_role(df, "base")
    return df[alone].sort_values("flops")


def _gains_per_doubling(curve: pd.DataFrame) -> pd.DataFrame:
    """Per seed and per step between consecutive FLOPs: accuracy gain / log2(FLOPs ratio)."""
    flops = sorted(curve["flops"].unique())
    rows = []
    for lo, hi in zip(flops, flops[1:]):
        a = curve[curve["flops"] == lo].set_index("seed")["top1"]
        b = curve[curve["flops"] == hi].set_index("seed")["top1"]
        doublings = math.log2(hi / lo)
        for seed in a.index.intersection(b.index):
            rows.append(
                {
                    "from_flops": lo,
                    "to_flops": hi,
                    "seed": seed,
                    "gain_per_doubling": (b[seed] - a[seed]) / doublings,
                }
            )
    return pd.DataFrame(rows, columns=["from_flops", "to_flops", "seed", "gain_per_doubling"])


def mean_std(x, missing=float("nan")) -> tuple[float, float, int]:
    """Mean, sample standard deviation and count of some values (one per seed); ``missing``
    stands for a mean of no values and a spread of fewer than two."""
    x = np.asarray(list(x), dtype=float)
    return (
        float(x.mean()) if len(x) else missing,
        float(x.std(ddof=1)) if len(x) > 1 else missing,
        len(x),
    )


# How compound_vs_single begins the verdict of a rule that scales one dimension alone (its
# difference is zero by construction); trend_by_budget leaves such rules out by it.
NOT_A_TEST = "not a test"


def verdict_of(test: Paired, alpha: float, contrary: str, needed_at: float | None = None) -> str:
    """A paired difference's verdict: supported (mean above zero) or contradicted (below)
    where its p-value is under alpha, else not resolved, with the seeds that a difference
    of the observed size at the observed spread would need (80 % power at ``needed_at``,
    alpha unless a correction asks for less); ``contrary`` says what a contradiction means."""
    if test.n < 2 or not math.isfinite(test.std):
        return "not resolved: one seed"
    if test.p < alpha:
        return "supported" if test.mean > 0 else f"contradicted: {contrary}"
    needed = seeds_needed(test.mean, test.std, needed_at or alpha)
    return f"not resolved: {seeds_phrase(needed)} seeds would resolve it"


def still_improving(rows: pd.DataFrame) -> bool:
    """Whether one variant's per-seed rows gained more than IMPROVING top-1 points, on
    average, over the last part of their training."""
    if "late_gain" not in rows:
        return False
    gains = pd.to_numeric(rows["late_gain"], errors="coerce").dropna()
    return bool(len(gains)) and float(gains.mean()) > IMPROVING


def per_model(verdict):
    """Run a verdict on each model and training budget of a study separately (Table 3 mixes
    three families; a budget study holds the same variants at several budgets)."""

    def run(df: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
        keys = ["model"] + ["budget"] * ("budget" in df)
        df = df.sort_values(keys[1:], kind="stable")
        return [
            {**dict(zip(keys, group if isinstance(group, tuple) else (group,))), **row}
            for group, sub in df.groupby(keys, sort=False)
            for row in verdict(sub, alpha)
        ]

    run.__doc__ = verdict.__doc__
    return run


@per_model
def diminishing_returns(df: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
    """For each swept dimension: gain per doubling of FLOPs, first step vs last step, with
    the paired t-test of their per-seed difference."""
    out = []
    for dim in DIMENSIONS:
        curve = dimension_curve(df, dim)
        if curve["flops"].nunique() < 3:
            continue
        gains = _gains_per_doubling(curve)
        steps = sorted(set(zip(gains["from_flops"], gains["to_flops"])))
        first = gains[(gains["from_flops"] == steps[0][0]) & (gains["to_flops"] == steps[0][1])]
        last = gains[(gains["from_flops"] == steps[-1][0]) & (gains["to_flops"] == steps[-1][1])]
        f_mean, f_std, n = mean_std(first["gain_per_doubling"])
        l_mean, l_std, _ = mean_std(last["gain_per_doubling"])
        paired = (
            first.set_index("seed")["gain_per_doubling"]
            - last.set_index("seed")["gain_per_doubling"]
        )
        test = paired_t(paired.dropna(), alpha)
        improving = [f for f, rows in curve.groupby("flops") if still_improving(rows)]
        verdict = verdict_of(test, alpha, "later doublings gain more")
        out.append(
            {
                "dimension": dim,
                "points": int(curve["flops"].nunique()),
                "seeds": n,
                "flops_min": float(curve["flops"].min()),
                "flops_max": float(curve["flops"].max()),
                "first_gain_per_doubling": f_mean,
                "first_std": f_std,
                "last_gain_per_doubling": l_mean,
                "last_std": l_std,
                "first_minus_last": test.mean,
                "first_minus_last_std": test.std,
                **test.record(),
                "verdict": verdict,
                "still_improving": f"{len(improving)} of {curve['flops'].nunique()} points",
            }
        )
    return out


def figure8_cells(df: pd.DataFrame):
    """Per scaling rule (coefficients; a study may hold two) and phi: the rule, phi, the
    compound rows, each matched dimension's rows, and the dimension best on the mean."""
    df = finished(df)
    rules = df["scaling"].fillna("") if "scaling" in df else pd.Series("", index=df.index)
    cells = {(p, r) for r, p in zip(rules, df["phi"]) if pd.notna(p) and p}
    for phi, rule in sorted(cells):  # rows by phi, then rule: the order a reader looks for
        at_phi = df[(df["phi"] == phi) & (rules == rule)]
        comp = at_phi[has_role(at_phi, "compound")]
        singles = {dim: at_phi[has_role(at_phi, f"match-{dim}")] for dim in DIMENSIONS}
        singles = {d: s for d, s in singles.items() if not s.empty}
        if comp.empty or not singles:
            continue
        best = max(singles, key=lambda d: singles[d]["top1"].mean())
        yield rule, phi, comp, singles, best


@per_model
def figure8_per_seed(df: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
    """The numbers under compound_vs_single, seed by seed: each dimension's top-1, the
    compound's, and compound minus the dimension best on the mean (None where one is
    missing), so a reader can see which seeds a mean stands on."""
    out = []
    for rule, phi, comp, singles, best in figure8_cells(df):
        by_seed = {d: s.set_index("seed")["top1"] for d, s in singles.items()}
        compound = comp.set_index("seed")["top1"]
        for seed in sorted(set(compound.index).union(*(s.index for s in by_seed.values()))):
            top1 = {d: float(s[seed]) if seed in s else None for d, s in by_seed.items()}
            c = float(compound[seed]) if seed in compound else None
            out.append(
                {
                    "phi": phi,
                    **({"scaling": rule} if rule else {}),
                    "seed": int(seed),
                    **{f"{d}_top1": v for d, v in top1.items()},
                    "compound_top1": c,
                    "best_single": best,
                    "compound_minus_best": None if None in (c, top1[best]) else c - top1[best],
                }
            )
    return out


def against_each(comp: pd.DataFrame, singles: dict, alpha: float) -> dict[str, Paired]:
    """Compound minus each matched dimension, paired by seed, tested; a dimension whose
    network the compound rule is (a rule that scales it alone) is no comparison."""
    c = comp.set_index("seed")["top1"]
    return {
        d: paired_t((c - s.set_index("seed")["top1"]).dropna(), alpha)
        for d, s in singles.items()
        if not has_role(comp, f"match-{d}").all()
    }


def _balance_verdict(tests: dict, adjusted: dict, best: str, alone: str | None, alpha) -> str:
    """Figure 8's verdict from the tests against each dimension: contradicted where some
    dimension is ahead after Holm's correction, supported where compound is ahead of every
    one at alpha, else not resolved (with the seeds the deciding comparison would need)."""
    if not tests or max(t.n for t in tests.values()) < 2:
        return "not resolved: one seed"
    ahead = [d for d, t in tests.items() if t.mean < 0 and adjusted[d] < alpha]
    if ahead:
        return f"contradicted: {min(ahead, key=lambda d: tests[d].mean)} alone is better"
    if alone and alone == best:  # a rule that scales one dimension alone
        return f"{NOT_A_TEST}: the compound network is {best} alone"
    if not alone and all(t.mean > 0 and t.p < alpha for t in tests.values()):
        return "supported"
    if best in tests and tests[best].mean < 0:  # Holm's step for it: alpha / (tests left)
        deciding = tests[best]
        level = alpha / max(1, sum(t.p >= deciding.p for t in tests.values()))
    else:  # every comparison must pass at alpha: the weakest decides
        deciding, level = max(tests.values(), key=lambda t: t.p), alpha
    needed = seeds_needed(deciding.mean, deciding.std, level)
    return f"not resolved: {seeds_phrase(needed)} seeds would resolve it"


@per_model
def compound_vs_single(df: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
    """Per phi: compound top-1 minus each single dimension at matched FLOPs, tested by seed
    (Holm-adjusted p per dimension); the dimension best on the mean is named, with the
    mean, spread and interval of compound minus it."""
    out = []
    for rule, phi, comp, singles, best in figure8_cells(df):
        tests = against_each(comp, singles, alpha)
        adjusted = holm({d: t.p for d, t in tests.items()})
        alone = next((d for d in singles if has_role(comp, f"match-{d}").all()), None)
        diff = comp.set_index("seed")["top1"] - singles[best].set_index("seed")["top1"]
        to_best = tests.get(best) or paired_t(diff.dropna(), alpha)
        improving = [
            name
            for name, rows in (("compound", comp), (best, singles[best]))
            if still_improving(rows)
        ]
        c_mean, c_std, _ = mean_std(comp["top1"])
        s_mean, s_std, _ = mean_std(singles[best]["top1"])
        out.append(
            {
                "phi": phi,
                **({"scaling": rule} if rule else {}),
                "compound_top1": c_mean,
                "compound_std": c_std,
                "compound_flops_ratio": float(comp["realised_flops_ratio"].iloc[0]),
                "best_single": best,
                "best_single_top1": s_mean,
                "best_single_std": s_std,
                "best_single_flops_ratio": float(singles[best]["realised_flops_ratio"].iloc[0]),
                **{f"{d}_top1": float(s["top1"].mean()) for d, s in singles.items()},
                "compound_minus_best": to_best.mean,
                "difference_std": to_best.std,
                "ci_low": to_best.low,
                "ci_high": to_best.high,
                "p": adjusted.get(best, to_best.p),
                **{f"p_{d}": adjusted.get(d, math.nan) for d in singles},  # one set of columns
                "seeds": to_best.n,
                "level": alpha,
                "verdict": _balance_verdict(tests, adjusted, best, alone, alpha),
                "still_improving": ", ".join(improving) or "none",
            }
        )
    return out


def trend_group(r: dict) -> tuple:
    """What one line of the budget trend follows: a model's phi under one coefficient choice."""
    return r.get("model", ""), r.get("scaling", ""), r["phi"]


def trend_by_budget(compound: list[dict]) -> list[dict]:
    """The Figure-8 comparison per model, coefficient choice, phi and budget, for the phis
    measured at two budgets or more (``compound``: compound_vs_single's rows). A rule that
    scales one dimension alone has no trend: its difference is zero by construction."""
    rows = [r for r in compound if "budget" in r and not r["verdict"].startswith(NOT_A_TEST)]
    budgets: dict[tuple, set] = {}
    for r in rows:
        budgets.setdefault(trend_group(r), set()).add(r["budget"])
    columns = ("model", "phi", "scaling", "budget", "best_single", "compound_minus_best",
               "difference_std", "ci_low", "ci_high", "p", "seeds", "verdict",
               "still_improving")  # fmt: skip
    return [
        {k: r[k] for k in columns if k in r}
        for r in sorted(rows, key=lambda r: (*trend_group(r), r["budget"]))
        if len(budgets[trend_group(r)]) > 1
    ]


def mixed_environments(df: pd.DataFrame) -> list[str]:
    """One warning per verdict whose points were trained in different environments.

    ``df`` needs a ``trained_on`` column (device type and thread count, from each point's
    config.json; report.trained_on). Neither is in a point's key, yet a point trained with 1
    thread differed from the same point with 2 by 1 to 3.4 top-1 points here, so a verdict
    standing on both kinds compares unlike runs.
    """
    df = finished(df)
    if "trained_on" not in df or df["trained_on"].nunique() < 2:
        return []
    out = []
    keys = ["model"] + ["budget"] * ("budget" in df)
    for group, sub in df.groupby(keys, sort=False):
        name = " at ".join(
            [str(group[0]), *[f"{b:,} samples" for b in group[1:]]]
            if isinstance(group, tuple)
            else [str(group)]
        )
        comparisons = [(f"{dim} alone", dimension_curve(sub, dim)) for dim in DIMENSIONS]
        comparisons = [(what, c) for what, c in comparisons if c["flops"].nunique() >= 3]
        for phi in sorted(p for p in sub["phi"].dropna().unique() if p != 0):
            at_phi = sub[sub["phi"] == phi]
            comp = at_phi[has_role(at_phi, "compound")]
            singles = [at_phi[has_role(at_phi, f"match-{d}")] for d in DIMENSIONS]
            if not comp.empty and any(not s.empty for s in singles):
                comparisons.append(
                    (f"compound vs single at phi={phi:g}", pd.concat([comp, *singles]))
                )
        for what, rows in comparisons:
            counts = rows["trained_on"].value_counts()
            if len(counts) > 1:
                mix = "; ".join(f"{env} ({_runs(n)})" for env, n in sorted(counts.items()))
                out.append(f"{name}, {what}: mixes points trained on {mix}")
    return out


def _runs(n: int) -> str:
    return f"{n} run{'s' * (n != 1)}"
