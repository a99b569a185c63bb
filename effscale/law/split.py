"""The compute-optimal split between model size and samples, from a fitted law.

Training compute is C ~ F S (FLOPs per image times samples; the usual factor 3 for forward
plus backward does not move an exponent). Minimising a law at fixed C gives F* ~ C^a and
S* ~ C^b with a + b = 1 (scaling_laws.md 10.3, Case 1, by Lagrange conditions):

* F1, y = E + sum_k A_k x_k^-a_k + B S^-b with F ~ prod_k x_k^e_k: every dimension grows,
  Sigma_F = sum_k e_k / a_k, Sigma = Sigma_F + 1 / b, a = Sigma_F / Sigma, b = (1/b) / Sigma,
  and the reducible error falls as C^(-1 / Sigma). Dimension k takes the share
  (e_k / a_k) / Sigma_F of the model's log FLOPs. With one model dimension this is
  Chinchilla's Eq. 4 (a = beta / (alpha + beta)), the check the notes ask for.
* F3, y = E + A d^-a w^-a_w r^-a_r + B S^-b: the model term is linear in log x, so at fixed
  FLOPs it is best to grow only the dimension with the largest exponent per log FLOP, and the
  law is Chinchilla's with alpha = max_k a_k / e_k.
* F2 has no closed form (its best shape moves with S): not given here.

A term the fit switched off (A_k = 0, or B = 0) takes no compute: with B = 0 more samples do
not help and every unit of compute goes to the model (b = 0). The FLOPs elasticities e_k are
those of the study's own counted FLOPs against realised multipliers (stem and head do not
scale, so depth's is below 1), fitted by least squares, not the nominal (1, 2, 2).

These are asymptotic exponents of the fitted law, valid as far as the law is: read them
with the law's extrapolation check (`effscale fit --holdout-above`), not as measurements.
"""

import math

import numpy as np

from effscale.law.bootstrap import Bootstrap
from effscale.law.forms import DIMS
from effscale.law.points import Points

# Three, not two: at two budgets the column S^-b takes two values, so E + B S^-b fits them
# equally well for every b (E and B absorb it) and b, hence the split, is arbitrary.
MIN_BUDGETS = 3


def exponents(form: str, params: dict, e: np.ndarray) -> dict:
    """a (FLOPs), b (samples), the error's exponent in C and the model's log-FLOP shares,
    from one parameter set; NaN where the law gives no finite split."""
    per_flop = []  # (dimension, exponent per unit of log FLOPs) of the live model terms
    for k, dim in enumerate(DIMS):
        amp = params.get("A" if form == "F3" else f"A_{dim}", 0.0)
        a_k = params["a" if (form == "F3" and dim == "d") else f"a_{dim}"]
        if amp > 0 and a_k > 0:
            per_flop.append((k, a_k / e[k]))
    shares = np.zeros(3)
    if form == "F3" and per_flop:
        k, best = max(per_flop, key=lambda t: t[1])
        sigma_f, shares[k] = 1.0 / best, 1.0
    else:
        sigma_f = sum(1.0 / p for _, p in per_flop)
        for k, p in per_flop:
            shares[k] = (1.0 / p) / sigma_f
    inv_b = 1.0 / params["b"] if params.get("B", 0.0) > 0 and params.get("b", 0.0) > 0 else 0.0
    sigma = sigma_f + inv_b
    if sigma <= 0:
        return {"flops": math.nan, "samples": math.nan, "error": math.nan,
                "shares": np.full(3, math.nan)}  # fmt: skip
    return {"flops": sigma_f / sigma, "samples": inv_b / sigma, "error": 1.0 / sigma,
            "shares": shares}  # fmt: skip


def compute_split(boot: Bootstrap, points: Points) -> dict | None:
    """F* ~ C^flops_exponent, S* ~ C^samples_exponent and the optimal reducible error
    ~ C^-error_exponent, each (value, lo, hi), with the model's log-FLOP shares; None when
    the points span fewer than MIN_BUDGETS budgets or the form has no budget term."""
    from effscale.law.recommend import _estimate  # counted-FLOPs elasticities of the points

    form = boot.fit.form
    if len(points.budgets) < MIN_BUDGETS or "b" not in form.names or form.name == "F2":
        return None
    e = _estimate(points)
    e = np.where(e > 0.05, e, 1.0)  # a degenerate estimate (one level) would divide by ~0
    names = form.names
    values = exponents(form.name, boot.fit.params, e)
    draws = [exponents(form.name, dict(zip(names, t)), e) for t in boot.thetas]
    out = {"form": form.name, "elasticities": [float(x) for x in e],
           "budgets": points.budgets}  # fmt: skip
    for key in ("flops", "samples", "error"):
        out[f"{key}_exponent"] = (values[key], *boot.interval([d[key] for d in draws]))
    for k, dim in enumerate(DIMS):
        share = [d["shares"][k] for d in draws]
        out[f"share_{dim}"] = (float(values["shares"][k]), *boot.interval(share))
    return out


def split_line(points: Points, split: dict | None, form: str) -> str:
    """One sentence: the split with intervals, or why there is none."""
    if split is None:
        n = len(points.budgets)
        if n < MIN_BUDGETS:
            at = " and ".join(f"{b:,}" for b in points.budgets)
            why = "two fit any samples exponent equally well" if n == 2 else "it needs three"
            return (f"no compute-optimal split between model size and samples: the fitted "
                    f"points are at {('one', 'two')[n - 1]} budget{'s' * (n > 1)} ({at} "
                    f"samples); the samples exponent needs three or more ({why})")  # fmt: skip
        return f"no compute-optimal split between model size and samples from {form}: no formula"
    a, b, err = split["flops_exponent"], split["samples_exponent"], split["error_exponent"]
    return (f"compute-optimal split (training compute C ~ FLOPs x samples): FLOPs ~ "
            f"C^{a[0]:.2f} ({a[1]:.2f}-{a[2]:.2f}), samples ~ C^{b[0]:.2f} "
            f"({b[1]:.2f}-{b[2]:.2f}), reducible error ~ C^-{err[0]:.3f} "
            f"({err[1]:.3f}-{err[2]:.3f})")  # fmt: skip
