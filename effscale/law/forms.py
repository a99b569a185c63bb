"""The candidate laws: top-1 error as a function of depth, width, resolution and budget.

x = (d, w, r, s): the realised multipliers of the base design and the budget s = samples /
100k. Every form is linear in non-negative coefficients (a floor E and amplitudes) once its
exponents are fixed, which is what variable projection (fit.py) exploits.

    F1  y = E + A_d d^-a_d + A_w w^-a_w + A_r r^-a_r [+ B s^-b]
        Chinchilla's additive law extended to shape. Scaling one dimension alone saturates
        at the floor the others leave: EfficientNet's Observation 1, as parameters.
    F3  y = E + A (d w^g_w r^g_r)^-a [+ B s^-b]   (g_w = a_w / a, g_r = a_r / a)
        One effective size (EfficientNet's implicit view): no per-dimension floor, so any
        single dimension keeps paying, at its own rate. F1 against F3 held out tests the
        saturation claim.
    F2  y = E + sum_k A_k x_k^-a_k + (C + sum_k B_k x_k^b_k) s^-c
        SoViT's budget-dependent shape ("Getting ViT in Shape", Eq. 3, steps -> samples):
        the best shape may change with the budget (Bello et al. 2021). b_k takes either
        sign, since bigger models are usually more sample-efficient. Three budgets or more.

The budget term is dropped when a study has one budget: a constant there is E's.
Exponents are per unit of log multiplier; bounds keep them in ranges that mean something.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DIMS = ("d", "w", "r")
ALPHA = (0.01, 5.0)  # per-dimension exponent bounds
GRID = (0.2, 0.5, 1.0, 2.0)  # exponent starts


@dataclass(frozen=True)
class Form:
    name: str
    linear: tuple[str, ...]  # coefficients, each >= 0, fitted in log space
    nonlinear: tuple[str, ...]  # exponents, in box bounds
    bounds: tuple[tuple[float, float], ...]
    starts: tuple[tuple[float, ...], ...]  # exponent vectors the fit starts from
    basis: Callable  # (exponents, X) -> (n, len(linear)) with y = basis @ coefficients
    exponent_of: Callable  # (params dict, dim) -> the error's exponent along that dim alone

    @property
    def names(self) -> tuple[str, ...]:
        return self.linear + self.nonlinear

    @property
    def n_params(self) -> int:
        return len(self.names)

    def predict(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Top-1 error at X (n x 4: d, w, r, s) for parameters theta (linear first)."""
        k = len(self.linear)
        return self.basis(theta[k:], X) @ theta[:k]


def _grid(n: int) -> tuple[tuple[float, ...], ...]:
    return tuple(itertools.product(GRID, repeat=n))


def f1(budgeted: bool) -> Form:
    def basis(e, X):
        cols = [np.ones(len(X)), X[:, 0] ** -e[0], X[:, 1] ** -e[1], X[:, 2] ** -e[2]]
        if budgeted:
            cols.append(X[:, 3] ** -e[3])
        return np.column_stack(cols)

    extra = ("b",) if budgeted else ()
    return Form(
        "F1",
        ("E", "A_d", "A_w", "A_r") + (("B",) if budgeted else ()),
        ("a_d", "a_w", "a_r") + extra,
        (ALPHA,) * 3 + ((0.01, 3.0),) * len(extra),
        _grid(3 + len(extra)),
        basis,
        lambda p, dim: p[f"a_{dim}"],
    )


def f3(budgeted: bool) -> Form:
    # Fitted as E + A d^-a w^-a_w r^-a_r, where a_w = a g_w and a_r = a g_r: the same law,
    # but (a, g) trade off against each other when a is small, and the products do not.
    def basis(e, X):
        cols = [np.ones(len(X)), X[:, 0] ** -e[0] * X[:, 1] ** -e[1] * X[:, 2] ** -e[2]]
        if budgeted:
            cols.append(X[:, 3] ** -e[3])
        return np.column_stack(cols)

    extra = ("b",) if budgeted else ()
    return Form(
        "F3",
        ("E", "A") + (("B",) if budgeted else ()),
        ("a", "a_w", "a_r") + extra,
        (ALPHA,) * 3 + ((0.01, 3.0),) * len(extra),
        _grid(3 + len(extra)),
        basis,
        lambda p, dim: p["a" if dim == "d" else f"a_{dim}"],
    )


def f2(budgeted: bool = True) -> Form:
    def basis(e, X):
        a, b, c = e[:3], e[3:6], e[6]
        sc = X[:, 3] ** -c
        cols = [np.ones(len(X))] + [X[:, k] ** -a[k] for k in range(3)] + [sc]
        return np.column_stack(cols + [X[:, k] ** b[k] * sc for k in range(3)])

    rng = np.random.default_rng(0)  # fixed: the starts are part of the method, not luck
    starts = [(0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.5)]
    for _ in range(150):
        starts.append(tuple(rng.choice(GRID, 3)) + tuple(rng.uniform(-1, 1, 3))
                      + (float(rng.choice(GRID)),))  # fmt: skip
    return Form(
        "F2",
        ("E", "A_d", "A_w", "A_r", "C", "B_d", "B_w", "B_r"),
        ("a_d", "a_w", "a_r", "b_d", "b_w", "b_r", "c"),
        (ALPHA,) * 3 + ((-2.0, 2.0),) * 3 + ((0.01, 3.0),),
        tuple(starts),
        basis,
        lambda p, dim: p[f"a_{dim}"],
    )


FORMS = {"F1": f1, "F2": f2, "F3": f3}  # name -> form(budgeted)
MIN_BUDGETS = {"F1": 1, "F2": 3, "F3": 1}  # F2's shape-budget interaction needs >= 3


def make_form(name: str, n_budgets: int) -> Form:
    """The form for points at ``n_budgets`` budgets (the budget term only when they vary)."""
    return FORMS[name](n_budgets > 1)


def design(rows) -> np.ndarray:
    """X (n x 4) from a Points table: realised d, w, r and s = samples / 100k."""
    from effscale.law.points import SAMPLES_REF

    return np.column_stack([rows["d"], rows["w"], rows["r"], rows["samples"] / SAMPLES_REF])
