"""Extrapolation: fit on the small networks, predict the large ones, and choose a form by it.

A law is for predicting networks not yet trained, so a form is judged by how it predicts
points beyond those it was fitted on, never by its fit to them (Alabdulmohsin et al. 2022;
scaling_laws.md 10.7: 99 % in fit against 68 % held out). Two uses:

* ``select``: the form ``effscale fit --form auto`` uses, chosen inside the fitting points
  alone (fit below their top FLOPs, score on their top), so the held-out points of a check
  never choose the form that is then scored on them.
* ``extrapolate``: every candidate fitted on the points up to a FLOPs ratio and scored on
  the rest per configuration: mean absolute error in top-1 points (seed means against the
  prediction), the largest error, coverage of the 80 % intervals for a mean of that many
  seeds, and Kendall's tau between predicted and measured order.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effscale.errors import EffscaleError
from effscale.law.bootstrap import Bootstrap, bootstrap
from effscale.law.fit import fit_form
from effscale.law.forms import FORMS, MIN_BUDGETS, design, make_form
from effscale.law.points import Points

INNER_HOLDOUT = 0.3  # share of the fitting configurations, by FLOPs, that select() holds out


def kendall_tau(a, b) -> float:
    """Kendall's tau-a between two orderings (NaN with fewer than two items)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    if n < 2:
        return float("nan")
    i, j = np.triu_indices(n, 1)
    return float(np.sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])) / len(i))


def split(points: Points, above: float) -> tuple[Points, Points]:
    """(points at FLOPs ratios up to ``above``, the points above it)."""
    low = points.rows["flops_ratio"] <= above + 1e-9
    train, held = points.subset(low), points.subset(~low)
    if train.n_configs == 0 or held.n_configs == 0:
        top = points.rows["flops_ratio"].max()
        raise EffscaleError(
            f"`holdout_above`={above:g}x leaves nothing to "
            f"{'fit' if train.n_configs == 0 else 'predict'}",
            f"choose a ratio between 1 and the largest point's {top:.2f}x",
        )
    return train, held


def score(boot: Bootstrap, held: Points) -> tuple[pd.DataFrame, dict]:
    """Per held-out configuration, measured against predicted; and the summary scores."""
    cfg = held.configs()
    X = design(cfg)
    rows = []
    for i, c in cfg.iterrows():
        pred = boot.predict(X[i : i + 1], n_seeds=int(c["seeds"])).iloc[0]
        rows.append({
            "config": c["config"], "flops_ratio": c["flops_ratio"], "seeds": int(c["seeds"]),
            "measured": c["top1_mean"], "measured_std": c["top1_std"],
            "predicted": pred["top1"], "lo": pred["lo"], "hi": pred["hi"],
            "error": pred["top1"] - c["top1_mean"],
            "covered": bool(pred["lo"] <= c["top1_mean"] <= pred["hi"]),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    err = table["error"].abs()
    summary = {
        "form": boot.fit.form.name,
        "held_configs": len(table),
        "mae": float(err.mean()),
        "max_error": float(err.max()),
        "coverage": float(table["covered"].mean()),
        "kendall_tau": kendall_tau(table["predicted"], table["measured"]),
    }
    return table, summary


def candidates(points: Points) -> list[str]:
    """The forms these points' budgets allow (F2 needs three budgets or more)."""
    n = len(points.budgets)
    return [name for name in FORMS if n >= MIN_BUDGETS[name]]


@dataclass
class Selection:
    chosen: str
    reason: str
    scores: list[dict] = field(default_factory=list)  # per form: inner MAE, or why none


def select(points: Points, per_param: float) -> Selection:
    """The form with the smallest extrapolation error inside ``points``: each candidate fit
    below the top INNER_HOLDOUT of their configurations by FLOPs, scored on that top."""
    cfg = points.configs()
    n_top = max(1, round(INNER_HOLDOUT * len(cfg)))
    cut = float(np.sort(cfg["flops_ratio"].to_numpy())[-n_top - 1]) if len(cfg) > n_top else 0
    scores = []
    for name in candidates(points):
        try:
            fit_form(points, name, per_param)  # the form must fit all the points too
            train, held = split(points, cut)
            fit = fit_form(train, name, per_param)
        except EffscaleError as e:
            scores.append({"form": name, "inner_mae": None, "note": e.message})
            continue
        hc = held.configs()
        mae = float(np.mean(np.abs(fit.top1(design(hc)) - hc["top1_mean"])))
        scores.append({"form": name, "inner_mae": mae, "note": f"fit up to {cut:.2f}x"})
    scored = [s for s in scores if s["inner_mae"] is not None]
    if scored:
        best = min(scored, key=lambda s: s["inner_mae"])
        return Selection(best["form"], "smallest extrapolation error within the fitted points",
                         scores)  # fmt: skip
    n_budgets = len(points.budgets)
    for name in sorted(candidates(points), key=lambda n: make_form(n, n_budgets).n_params):
        try:
            fit_form(points, name, per_param)
        except EffscaleError:
            continue
        return Selection(name, "the only form these points determine (too few configurations "
                         "to score extrapolation within them)", scores)  # fmt: skip
    raise EffscaleError(
        f"no form can be fitted to {points.n_configs} configurations",
        "; ".join(f"{s['form']}: {s['note']}" for s in scores)[:300],
    )


def extrapolate(points: Points, above: float, per_param: float, draws: int, seed: int) -> dict:
    """Every candidate form fitted on the points up to ``above`` and scored on the rest;
    the form ``select`` chooses on the fitting points alone is marked."""
    train, held = split(points, above)
    selection = select(train, per_param)
    forms, tables, boots = [], {}, {}
    for name in candidates(points):
        try:
            fit = fit_form(train, name, per_param)
            boots[name] = boot = bootstrap(train, fit, draws, seed)
        except EffscaleError as e:
            forms.append({"form": name, "note": e.message})
            continue
        tables[name], summary = score(boot, held)
        forms.append({**summary, "chosen": name == selection.chosen})
    # boots and train: for a parity plot of the fitted points beside the held-out ones
    return {"above": above, "selection": selection, "forms": forms, "tables": tables,
            "boots": boots, "train": train, "fit_configs": train.n_configs,
            "held_configs": held.n_configs}  # fmt: skip
