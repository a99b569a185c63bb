"""A robust fit of one form: Huber loss on log error, summed, by variable projection.

Following Hoffmann et al. 2022 (Chinchilla approach 3) and its replication (Besiroglu et al.
2024), with the changes effscale's small, noisy studies need:

* The objective is sum_i huber_delta(log y_hat_i - log y_i): scale-free, and robust to a
  seed that went wrong. delta is the seeds' robust spread of log error (Points.log_spread),
  not Chinchilla's 1e-3, which was tuned to language-model losses with tiny noise: at our
  seed noise of a few percent it would turn the fit into an L1 fit.
* Variable projection: for fixed exponents every form is linear in non-negative
  coefficients, solved exactly by NNLS (scipy.optimize.nnls) on relative error; only the
  exponents are searched, by L-BFGS-B in box bounds from a grid of starts. The best local
  optima are then polished jointly on the robust objective, coefficients in log space.
* A fit that does not converge raises EffscaleError: no numbers from it, ever. A form with
  more parameters than a third of the distinct configurations is refused before fitting.
"""

import math
import os
from dataclasses import dataclass

import numpy as np

from effscale.errors import EffscaleError
from effscale.law.forms import MIN_BUDGETS, Form, design, make_form
from effscale.law.points import Points


def _import_scipy():
    """scipy.optimize with its OpenBLAS on one thread: L-BFGS-B calls BLAS on vectors of a
    few numbers, where threads only contend (a fit ran 4x slower on a busy 2-core machine).
    OpenBLAS reads the setting when loaded; the environment is restored after."""
    old = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        from scipy.optimize import minimize, nnls
    finally:
        if old is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = old
    return minimize, nnls


minimize, nnls = _import_scipy()


CONFIGS_PER_PARAM = 3  # the rule: refuse p parameters on fewer than 3p configurations
LOG_COEF = (math.log(1e-8), math.log(10.0))  # coefficient bounds, in log space
DEFAULT_DELTA = 0.03  # log-error Huber scale without seed replicates (about 3 % relative)
SCREENED = 6  # grid starts refined by L-BFGS-B
POLISHED = 3  # local optima polished jointly


@dataclass
class Fit:
    """A converged fit: parameters (linear first, as form.names), its loss and context."""

    form: Form
    theta: np.ndarray
    loss: float  # sum of Huber(log residual / delta)
    delta: float
    n_configs: int
    n_rows: int
    seed_sd: float  # top-1 points between seeds: the noise of one new run
    at_bound: tuple[str, ...]  # exponents sitting on a bound: not identified by the data
    runner_up: float  # loss of the best other local optimum (inf if none)

    @property
    def params(self) -> dict[str, float]:
        return dict(zip(self.form.names, map(float, self.theta)))

    def error(self, X: np.ndarray) -> np.ndarray:
        return self.form.predict(self.theta, np.atleast_2d(X))

    def top1(self, X: np.ndarray) -> np.ndarray:
        return 100.0 * (1.0 - self.error(X))


def huber(u: np.ndarray) -> np.ndarray:
    """Huber's rho at threshold 1 (residuals are divided by delta first)."""
    a = np.abs(u)
    return np.where(a <= 1.0, 0.5 * u * u, a - 0.5)


def check_size(form: Form, n_configs: int, n_budgets: int, per_param: float) -> None:
    """Refuse a form the points cannot determine (before any fitting)."""
    if n_budgets < MIN_BUDGETS[form.name]:
        raise EffscaleError(
            f"{form.name} needs points at {MIN_BUDGETS[form.name]} budgets or more, "
            f"these have {n_budgets}",
            "its shape-budget interaction is not identified otherwise: use F1 or F3",
        )
    need = math.ceil(form.n_params * per_param)
    if n_configs < need:
        raise EffscaleError(
            f"{form.name} has {form.n_params} parameters and the points {n_configs} distinct "
            f"configurations: it needs at least {need} ({per_param:g} per parameter)",
            "add configurations (shapes or budgets), or choose a form with fewer parameters",
        )


class _Problem:
    """The objective of one form on one set of rows."""

    def __init__(self, form: Form, X: np.ndarray, y: np.ndarray, delta: float):
        self.form, self.X, self.y, self.delta = form, X, y, delta
        self.log_y = np.log(y)
        self.k = len(form.linear)

    def loss_of(self, pred: np.ndarray) -> float:
        if not np.all(pred > 0) or not np.all(np.isfinite(pred)):
            return 1e12
        return float(huber((np.log(pred) - self.log_y) / self.delta).sum())

    def coefficients(self, e: np.ndarray) -> np.ndarray:
        """NNLS for the coefficients at exponents e, on relative error (~ log error)."""
        phi = self.form.basis(e, self.X)
        if not np.all(np.isfinite(phi)):
            return np.zeros(self.k)
        c, _ = nnls(phi / self.y[:, None], np.ones(len(self.y)), maxiter=50 * self.k)
        return c

    def projected(self, e: np.ndarray) -> float:
        c = self.coefficients(e)
        return self.loss_of(self.form.basis(e, self.X) @ c)

    def joint(self, z: np.ndarray) -> float:
        theta = np.concatenate([np.exp(z[: self.k]), z[self.k :]])
        return self.loss_of(self.form.predict(theta, self.X))

    def bounds(self) -> list:
        return [LOG_COEF] * self.k + list(self.form.bounds)


def _local(problem: _Problem, e0) -> tuple[float, np.ndarray]:
    """Exponents refined from e0 by L-BFGS-B on the projected objective, then every
    parameter polished jointly; (loss, z) with coefficients in log space."""
    r = minimize(problem.projected, np.asarray(e0, float), method="L-BFGS-B",
                 bounds=problem.form.bounds)  # fmt: skip
    c = problem.coefficients(r.x)
    z0 = np.concatenate([np.log(np.clip(c, math.exp(LOG_COEF[0]), None)), r.x])
    return _polish(problem, z0)


def _polish(problem: _Problem, z0: np.ndarray):
    z0 = np.clip(z0, *np.array(problem.bounds()).T)
    r = minimize(problem.joint, z0, method="L-BFGS-B", bounds=problem.bounds(),
                 options={"maxiter": 2000})  # fmt: skip
    return r


def _converged(problem: _Problem, r) -> bool:
    """L-BFGS-B's own verdict, a finite loss, and a small projected gradient."""
    if not (r.success and np.isfinite(r.fun) and r.fun < 1e11):
        return False
    lo, hi = np.array(problem.bounds()).T
    g = np.asarray(r.jac, float)
    g = np.where((r.x <= lo + 1e-9) & (g > 0), 0.0, g)
    g = np.where((r.x >= hi - 1e-9) & (g < 0), 0.0, g)
    return bool(np.max(np.abs(g)) < 1e-2 * max(1.0, len(problem.y)) ** 0.5)


def fit_form(
    points: Points,
    form: str | Form,
    per_param: float = CONFIGS_PER_PARAM,
    delta: float | None = None,
    start: np.ndarray | None = None,
    seed_sd: float | None = None,
) -> Fit:
    """Fit one form to the points; raises EffscaleError when it cannot, or did not converge.

    ``start``: parameters to begin from (a bootstrap refit starts from the full data's fit,
    as Epoch's replication warm-started BFGS) instead of the grid of starts."""
    n_budgets = len(points.budgets)
    form = make_form(form, n_budgets) if isinstance(form, str) else form
    if per_param > 0:  # 0: a bootstrap refit, whose resample repeats configurations
        check_size(form, points.n_configs, n_budgets, per_param)
    delta = delta or points.log_spread() or DEFAULT_DELTA
    X, y = design(points.rows), points.rows["error"].to_numpy(float)
    if not np.all((y > 0) & (y < 1)):
        raise EffscaleError("a point has top-1 of 0 or 100 %", "its error has no logarithm")
    problem = _Problem(form, X, y, delta)
    k = len(form.linear)
    if start is not None:  # polish from the start; the exponent search only if that fails
        z = np.concatenate([np.log(np.clip(start[:k], math.exp(LOG_COEF[0]), None)), start[k:]])
        results = [_polish(problem, z)]
        if not _converged(problem, results[0]):
            results = sorted(results + [_local(problem, start[k:])], key=lambda r: r.fun)
    else:
        screened = sorted((problem.projected(np.array(e)), e) for e in form.starts)
        starts = [np.array(e) for _, e in screened[:SCREENED]]
        results = sorted((_local(problem, e) for e in starts), key=lambda r: r.fun)
    best = results[0]
    if not _converged(problem, best):
        raise EffscaleError(
            f"the {form.name} fit did not converge ({best.message}) on {len(y)} points",
            "no numbers are reported from it: add configurations or choose another form",
        )
    theta = np.concatenate([np.exp(best.x[:k]), best.x[k:]])
    theta[:k][best.x[:k] <= LOG_COEF[0] + 1e-6] = 0.0  # a term the data switched off
    others = [r.fun for r in results[1:POLISHED + 1]
              if np.max(np.abs(r.x - best.x)) > 1e-3]  # fmt: skip
    return Fit(
        form, theta, float(best.fun), float(delta), points.n_configs, len(y),
        points.seed_sd() if seed_sd is None else seed_sd,
        _at_bound(form, theta), min(others, default=math.inf),
    )  # fmt: skip


def _at_bound(form: Form, theta: np.ndarray) -> tuple[str, ...]:
    k = len(form.linear)
    return tuple(
        name
        for name, v, (lo, hi) in zip(form.nonlinear, theta[k:], form.bounds)
        if v <= lo + 1e-4 or v >= hi - 1e-4
    )
