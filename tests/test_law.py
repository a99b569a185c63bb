"""effscale.law: fitting scaling laws, their intervals, recommendations, and the commands."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from effscale.cli import app
from effscale.errors import EffscaleError
from effscale.law import Points, bootstrap, fit_form, load_points
from effscale.law.bootstrap import Bootstrap
from effscale.law.fit import Fit
from effscale.law.forms import make_form
from effscale.law.points import realised
from effscale.law.recommend import base_variant, recommend
from effscale.law.shape import NOMINAL, optimal_shares, shapes_at, simplex

TRUE = {"E": 0.10, "A_d": 0.05, "A_w": 0.10, "A_r": 0.12, "a_d": 0.8, "a_w": 1.2, "a_r": 0.6}
IDENTITY = {"model": "efficientnet-b0", "base_width": 0.25, "base_depth": 1.0,
            "base_resolution": 64, "small_input": False, "data": "synthetic", "recipe": {},
            "num_classes": 10}  # fmt: skip
DOCS = "docs/results/imagenette"


def true_error(x):
    x = np.atleast_2d(x)
    t = TRUE
    return (t["E"] + t["A_d"] * x[:, 0] ** -t["a_d"] + t["A_w"] * x[:, 1] ** -t["a_w"]
            + t["A_r"] * x[:, 2] ** -t["a_r"])  # fmt: skip


def synthetic(noise=0.003, seeds=2, seed=0) -> Points:
    """A 4 x 4 x 4 grid of configurations from the F1 law above, with seed noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in (1.0, 1.5, 2.5, 4.0):
        for w in (1.0, 1.3, 1.7, 2.2):
            for r in (1.0, 1.25, 1.6, 2.0):
                err = true_error([d, w, r])[0]
                for s in range(seeds):
                    top1 = 100 * (1 - err - rng.normal(0, noise))
                    rows.append({"key": f"{d}-{w}-{r}-{s}", "seed": s, "d": d, "w": w, "r": r,
                                 "resolution": int(64 * r), "nominal_d": d, "nominal_w": w,
                                 "samples": 100_000, "flops_ratio": d * w * w * r * r,
                                 "top1": top1, "config": f"{d}-{w}-{r}"})  # fmt: skip
    df = pd.DataFrame(rows)
    df["error"] = 1 - df["top1"] / 100
    return Points(df, dict(IDENTITY))


@pytest.fixture(scope="module")
def fitted():
    points = synthetic()
    fit = fit_form(points, "F1")
    return points, fit, bootstrap(points, fit, draws=40, seed=1)


def test_a_known_law_is_fitted_back_within_its_intervals(fitted):
    points, fit, boot = fitted
    boot.level = 0.98  # seven parameters at once: each interval wide enough to hold them all
    for p in boot.parameters():
        assert p["lo"] - 1e-3 <= TRUE[p["parameter"]] <= p["hi"] + 1e-3, p
    assert fit.form.name == "F1" and fit.at_bound == ()


def test_the_bootstrap_is_seeded(fitted):
    points, fit, _ = fitted
    # Whole runs compared: a refit that does not converge is left out, so a shorter run's
    # converged draws need not be the prefix of a longer run's.
    once, again = (bootstrap(points, fit, draws=20, seed=1) for _ in range(2))
    assert once.thetas.shape == again.thetas.shape and np.allclose(once.thetas, again.thetas)
    other = bootstrap(points, fit, draws=20, seed=2)
    assert not np.allclose(other.thetas[:5], once.thetas[:5])


def test_prediction_intervals_hold_the_truth(fitted):
    _, _, boot = fitted
    x = np.array([[3.0, 2.0, 1.8, 1.0]])
    pred = boot.predict(x).iloc[0]
    truth = 100 * (1 - true_error(x[:, :3])[0])
    assert pred["lo"] <= truth <= pred["hi"]


def exact_law() -> Bootstrap:
    """The true law as a 'bootstrap' of identical draws: tests the search, not the fit."""
    form = make_form("F1", 1)
    theta = np.array([TRUE[n] for n in form.names])
    fit = Fit(form, theta, 0.0, 0.03, 64, 128, 0.1, (), math.inf)
    return Bootstrap(fit, np.tile(theta, (30, 1)), 30, 0)


def nominal_flops(v) -> int:
    d, w, r = realised(v)
    return int(1e7 * d * w * w * r * r)


def test_recommend_finds_the_known_optimum():
    points, boot = synthetic(), exact_law()
    target = 6.0
    rec = recommend(boot, points, target, 100_000, flops_of=nominal_flops)
    # the truth: the best shape on the iso-FLOP surface, from a fine grid of shares
    grid = simplex(0.005)
    err = true_error(shapes_at(target, grid, 100_000)[:, :3])
    best_true = err.min()
    got = true_error(np.array(rec.best.x))[0]
    assert got <= best_true + 0.002, (rec.best.x, grid[np.argmin(err)])
    shares = NOMINAL * np.log(rec.best.x) / np.log(target)
    assert np.allclose(shares, grid[np.argmin(err)], atol=0.12)
    assert all(c.p_recommended_beats >= 0.99 for c in rec.candidates[1:])
    assert {c.role for c in rec.candidates} == {"recommended", "depth", "width", "resolution",
                                                "compound"}  # fmt: skip


def test_optimal_shares_match_f1s_closed_form_direction():
    boot = exact_law()
    out = optimal_shares(boot, 100_000, target=2.0)
    assert abs(out["share_d"][0] + out["share_w"][0] + out["share_r"][0] - 1) < 1e-9
    assert out["alpha"][0] == pytest.approx(2 ** out["share_d"][0])


def test_the_plan_trains_the_recommendation(tmp_path):
    from effscale.law.plan import write_plan
    from effscale.study.files import load_study

    points, boot = synthetic(), exact_law()
    points.sources = ["synthetic"]
    points.identity["recipe"] = {"lr": 0.07, "protocol": 2}
    rec = recommend(boot, points, 4.0, 100_000, flops_of=nominal_flops)
    study = load_study(write_plan(tmp_path / "verify.toml", rec, points))
    planned = {(p.variant.d, p.variant.w, p.variant.resolution) for p in study.points}
    v = rec.best.variant
    assert (v.d, v.w, v.resolution) in planned
    assert len(study.points) == 3 * 6 and study.points[0].recipe.lr == 0.07


def test_too_few_configurations_are_refused():
    points = synthetic()
    few = points.subset(points.rows["config"].isin(points.rows["config"].unique()[:12]))
    with pytest.raises(EffscaleError, match="parameters and the points 12 distinct"):
        fit_form(few, "F1")


def test_f2_needs_three_budgets():
    with pytest.raises(EffscaleError, match="3 budgets"):
        fit_form(synthetic(), "F2")


def test_an_unconverged_fit_is_refused(monkeypatch):
    import effscale.law.fit as fit_module

    monkeypatch.setattr(fit_module, "_converged", lambda problem, r: False)
    with pytest.raises(EffscaleError, match="did not converge"):
        fit_form(synthetic(), "F1")


def test_mixed_studies_are_refused():
    with pytest.raises(EffscaleError, match="different studies: .* differs"):
        load_points([DOCS, "docs/results/cifar10"])


def test_stored_points_load_as_one_study():
    points = load_points([DOCS, "docs/results/imagenette-search"], samples=100_000)
    assert points.n_configs == 17 and len(points) == 51  # the shared base counts once
    assert points.identity["base_resolution"] == 64 and base_variant(points).base_width == 0.25


runner = CliRunner()


def test_fit_command_json():
    args = ["fit", DOCS, "--samples", "100k", "--configs-per-param", "1", "--bootstrap", "20",
            "--form", "F3", "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["form"] == "F3" and {p["parameter"] for p in out["parameters"]} >= {"E", "a"}
    assert set(out["step1"]) >= {"alpha", "beta", "gamma"}


def test_fit_command_refuses_too_few_configurations():
    result = runner.invoke(app, ["fit", DOCS, "--samples", "100k"])
    assert result.exit_code == 2
    assert "configurations" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["fit", DOCS, "--form", "F2"],
        ["fit", DOCS, "--holdout-above", "banana"],
        ["fit", DOCS, "--samples", "300k"],
        ["fit", DOCS, "docs/results/cifar10"],
        ["recommend", DOCS, "--flops", "0.5x", "--configs-per-param", "1", "--form", "F3",
         "--bootstrap", "20"],
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "Traceback" not in result.output


def test_predict_command_json():
    args = ["predict", DOCS, "-w", "1.4", "--samples", "100k", "--configs-per-param", "1",
            "--form", "F3", "--bootstrap", "20", "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["lo"] < out["top1"] < out["hi"] and out["flops_ratio"] > 1
