"""What a study says as a whole: the Figure-8 comparison pooled over its cells (phi, budget,
coefficient choice), and the seed spread of its paired differences, to size the next study.
"""

import math

import pandas as pd

from effscale.report.stats import ALPHA, Paired, holm, paired_t, pooled
from effscale.report.verdicts import against_each, figure8_cells, finished, has_role, verdict_of
from effscale.scaling import DIMENSIONS


def pooled_compound_vs_single(df: pd.DataFrame, alpha: float = ALPHA) -> list[dict]:
    """The study as a whole, per model: compound minus each single dimension pooled over
    every cell (phi, budget, coefficient choice) whose rule scales more than one dimension,
    Holm-adjusted over the dimensions. Cells that share no run are combined as independent
    (stats.pooled); cells that share runs are pooled by seed instead (each seed's mean
    difference over the cells, then a paired t-test over seeds), which their dependence
    does not bias. Nothing with fewer than two cells."""
    out = []
    df = finished(df)
    for model, sub in df.groupby("model", sort=False) if "model" in df else [("", df)]:
        groups = sub.groupby("budget", sort=True) if "budget" in sub else [(None, sub)]
        cells = []  # (the cell's rows, compound minus each dimension by seed)
        for _, at_budget in groups:
            for _, _, comp, singles, _ in figure8_cells(at_budget):
                if any(has_role(comp, f"match-{d}").all() for d in singles):
                    continue  # one dimension alone: no test of balance
                c = comp.set_index("seed")["top1"]
                rows = set(comp.index).union(*(s.index for s in singles.values()))
                diffs = {d: (c - s.set_index("seed")["top1"]).dropna() for d, s in singles.items()}
                cells.append((rows, diffs))
        if len(cells) < 2:
            continue
        shared = any(a & b for i, (a, _) in enumerate(cells) for b, _ in cells[i + 1 :])
        tests = {}
        for d in DIMENSIONS:
            per_cell = [diffs[d] for _, diffs in cells if d in diffs]
            if len(per_cell) > 1:
                tests[d] = (_by_seed if shared else _independent)(per_cell, alpha)
        adjusted = holm({d: t.p for d, t in tests.items()})
        for d, t in tests.items():
            contrary = f"{d} alone is better"
            test = Paired(t.n, t.mean, t.std, t.low, t.high, adjusted[d], t.df)
            out.append(
                {
                    **({"model": model} if model else {}),
                    "dimension": d,
                    "cells": sum(d in diffs for _, diffs in cells),
                    "runs_paired": t.n,
                    "compound_minus": t.mean,
                    "ci_low": t.low,
                    "ci_high": t.high,
                    "df": t.df,
                    "p": adjusted[d],
                    "pooled": "by seed (cells share runs)" if shared else "independent cells",
                    "level": alpha,
                    "verdict": _pooled_verdict(test, alpha, contrary),
                }
            )
    return out


def difference_spread(df: pd.DataFrame) -> tuple[float, int] | None:
    """The seed spread of compound minus a single dimension, pooled over every Figure-8
    cell and dimension of a study's results (the standard deviation and its degrees of
    freedom), to size another study by; None before any cell has two seeds."""
    df = finished(df)
    keys = [k for k in ("model", "budget") if k in df]
    squares, dof = 0.0, 0
    for _, sub in df.groupby(keys, sort=False) if keys else [(None, df)]:
        for _, _, comp, singles, _ in figure8_cells(sub):
            for test in against_each(comp, singles, ALPHA).values():
                if test.n > 1 and math.isfinite(test.std):
                    squares += test.std**2 * (test.n - 1)
                    dof += test.n - 1
    return (math.sqrt(squares / dof), dof) if dof else None


def _pooled_verdict(test: Paired, alpha: float, contrary: str) -> str:
    """_verdict's word, without a seed count: pooled cells have no one seed count to add."""
    verdict = verdict_of(test, alpha, contrary)
    return "not resolved" if verdict.startswith("not resolved") else verdict


def _independent(per_cell: list[pd.Series], alpha: float) -> Paired:
    return pooled([s.to_numpy() for s in per_cell], alpha)


def _by_seed(per_cell: list[pd.Series], alpha: float) -> Paired:
    seeds = set.intersection(*(set(s.index) for s in per_cell))
    return paired_t([sum(s[k] for s in per_cell) / len(per_cell) for k in sorted(seeds)], alpha)
