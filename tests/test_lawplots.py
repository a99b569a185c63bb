"""The fitted law's plots, its report section, `recommend --next`, and the compute split."""

import json

import numpy as np
import pandas as pd
import pytest
from test_law import IDENTITY, exact_law, nominal_flops, synthetic
from typer.testing import CliRunner

from effscale.cli import app
from effscale.law import Points, bootstrap, fit_form
from effscale.law.nextruns import next_points
from effscale.law.recommend import recommend
from effscale.law.split import compute_split, exponents, split_line
from effscale.law.validate import score
from effscale.report import lawplots

runner = CliRunner()
TWO = {"E": 0.08, "A_d": 0.05, "A_w": 0.10, "A_r": 0.12, "a_d": 0.8, "a_w": 1.2, "a_r": 0.6,
       "B": 0.10, "b": 0.5}  # fmt: skip


def _known_split(e=(1.0, 2.0, 2.0)) -> tuple[float, float]:
    """scaling_laws.md 10.3 Case 1 by hand: FLOPs ~ C^a, samples ~ C^b."""
    sigma_f = sum(e[k] / TWO[f"a_{d}"] for k, d in enumerate("dwr"))
    sigma = sigma_f + 1 / TWO["b"]
    return sigma_f / sigma, (1 / TWO["b"]) / sigma


def at_budgets(budgets=(100_000, 300_000, 900_000), noise=0.002, seed=0) -> Points:
    """A 3 x 3 x 3 grid at each budget from the budgeted F1 law TWO, two seeds each."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in (1.0, 2.0, 4.0):
        for w in (1.0, 1.4, 2.0):
            for r in (1.0, 1.4, 2.0):
                for samples in budgets:
                    s = samples / 100_000
                    err = (TWO["E"] + TWO["A_d"] * d ** -TWO["a_d"] + TWO["A_w"] * w ** -TWO["a_w"]
                           + TWO["A_r"] * r ** -TWO["a_r"] + TWO["B"] * s ** -TWO["b"])  # fmt: skip
                    for k in range(2):
                        rows.append({"key": f"{d}-{w}-{r}-{samples}-{k}", "seed": k, "d": d,
                                     "w": w, "r": r, "resolution": int(64 * r), "nominal_d": d,
                                     "nominal_w": w, "samples": samples,
                                     "flops_ratio": d * w * w * r * r,
                                     "top1": 100 * (1 - err - rng.normal(0, noise)),
                                     "config": f"{d}-{w}-{r}-{samples}"})  # fmt: skip
    df = pd.DataFrame(rows)
    df["error"] = 1 - df["top1"] / 100
    return Points(df, dict(IDENTITY))


def test_the_compute_split_recovers_known_exponents():
    points = at_budgets()
    fit = fit_form(points, "F1")
    boot = bootstrap(points, fit, draws=20, seed=0)
    split = compute_split(boot, points)
    a, b = _known_split()
    assert split["flops_exponent"][0] == pytest.approx(a, abs=0.03)
    assert split["samples_exponent"][0] == pytest.approx(b, abs=0.03)
    assert split["flops_exponent"][1] - 0.02 <= a <= split["flops_exponent"][2] + 0.02
    assert split["flops_exponent"][0] + split["samples_exponent"][0] == pytest.approx(1.0)
    assert split["elasticities"] == pytest.approx([1, 2, 2], abs=1e-6)
    assert "C^0.7" in split_line(points, split, "F1")


def test_the_split_formula_is_chinchillas_with_one_dimension():
    # one live model term (A_w, A_r = 0): share of FLOPs beta / (alpha + beta), Hoffmann Eq. 4
    p = {"A_d": 1.0, "A_w": 0.0, "A_r": 0.0, "a_d": 0.34, "a_w": 1, "a_r": 1, "B": 1, "b": 0.28}
    out = exponents("F1", p, np.array([1.0, 2.0, 2.0]))
    assert out["flops"] == pytest.approx(0.28 / (0.34 + 0.28))
    assert out["error"] == pytest.approx(0.34 * 0.28 / (0.34 + 0.28))
    assert list(out["shares"]) == [1.0, 0.0, 0.0]


def test_one_or_two_budgets_have_no_split_and_say_so():
    points, boot = synthetic(), exact_law()
    assert compute_split(boot, points) is None
    assert "one budget (100,000 samples)" in split_line(points, None, "F1")
    two = at_budgets((100_000, 400_000))
    assert compute_split(boot, two) is None  # b is not identified by two budgets:
    assert "two budgets (100,000 and 400,000" in split_line(two, None, "F1")
    from effscale.law.fit import _Problem
    from effscale.law.forms import design, make_form

    problem = _Problem(make_form("F1", 2), design(two.rows), two.rows["error"].to_numpy(), 0.03)
    losses = [problem.projected(np.array([0.8, 1.2, 0.6, b])) for b in (0.3, 0.5, 2.0)]
    assert max(losses) - min(losses) < 1e-6 * max(losses)  # ... any b fits them equally well


def test_the_plots_are_written_and_not_empty(tmp_path):
    points, boot = synthetic(), exact_law()
    table = score(boot, points)[0]
    table["held"] = table["flops_ratio"] > 10  # some marked as held out
    paths = lawplots.law_figures(boot, points, tmp_path, table)
    assert sorted(p.name for p in paths) == ["law_curves.png", "law_curves.svg",
                                             "law_parity.png", "law_parity.svg"]  # fmt: skip
    assert all(p.stat().st_size > 5000 for p in paths)
    fig = lawplots.draw_curves(boot, points)
    assert [ax.get_title() for ax in fig.axes] == ["Depth alone", "Width alone",
                                                   "Resolution alone", "Compound"]  # fmt: skip
    star = points.subset((points.rows[["d", "w", "r"]] > 1).sum(axis=1) <= 1)
    assert [ax.get_title() for ax in lawplots.draw_curves(boot, star).axes][-1] != "Compound"
    labels = lawplots.draw_parity(table).axes[0].get_legend_handles_labels()[1]
    assert any("held out" in t for t in labels) and any(t.startswith("fitted") for t in labels)


def test_recommend_next_ranks_candidates_by_score():
    points, boot = synthetic(), exact_law()
    boot.thetas = boot.thetas + np.random.default_rng(0).normal(0, 0.01, boot.thetas.shape)
    rec = recommend(boot, points, 4.0, 100_000, flops_of=nominal_flops)
    rows = next_points(boot, points, rec, 4)
    assert len(rows) == 4
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert all(r["sd_after"] <= r["sd_now"] + 1e-12 and r["cost"] > 0 for r in rows)


@pytest.mark.parametrize("n", ["0", "-2"])
def test_recommend_next_below_one_is_one_line_and_exit_2(n):
    args = ["recommend", "docs/results/imagenette", "--flops", "6.4x", "--next", n]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--next" in result.output and len(result.output.strip().splitlines()) == 1


def test_the_report_section_fits_or_says_how_many_configurations_it_lacks(tmp_path,
                                                                          monkeypatch):  # fmt: skip
    from effscale.recipe import budget
    from effscale.report import write_report
    from effscale.study.engine import run_study
    from effscale.study.plan import Base, Study, plan_sweep

    study = Study("tiny", {"kind": "test"})
    study.add_all(plan_sweep(Base("resnet18", 32, base_width=0.25, base_depth=0.5), "width",
                             [1.5], [0], budget("smoke", samples=256, batch_size=64),
                             "synthetic"))  # fmt: skip
    run_study(study, tmp_path, device="cpu")
    law = write_report(tmp_path)["fitted_law"]
    text = (tmp_path / "report.md").read_text()
    assert law["status"] == "too few configurations" and law["configs"] == 2
    assert "## Fitted law" in text and "the study has 2 distinct configurations" in text
    assert f"needs {law['needs']}" in text

    import effscale.law
    from effscale.report import lawsection

    monkeypatch.setattr(lawsection, "DRAWS", 20)  # the section's code, not its intervals
    monkeypatch.setattr(effscale.law, "load_points", lambda paths, samples=None: synthetic())
    lines = []
    law = lawsection.law_section(tmp_path, lines)
    text = "\n".join(lines)
    assert law["status"] == "fitted" and law["configs"] == 64, law
    assert text.startswith("## Fitted law") and "Each dimension alone" in text
    assert "![law_parity](figures/law_parity.png)" in text
    assert (tmp_path / "figures" / "law_parity.png").stat().st_size > 0
    json.dumps(law, default=float)  # the report's JSON carries it

    def broken(paths, samples=None):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(effscale.law, "load_points", broken)
    lines = []
    assert lawsection.law_section(tmp_path, lines)["status"] == "failed"
    assert lines[2] == "The law could not be fitted: RuntimeError: the disk is on fire"


def test_law_plots_have_no_label_under_the_legend_and_say_how_many_seeds():
    from test_plots import label_collisions

    points, boot = synthetic(), exact_law()
    table = score(boot, points)[0]
    for fig in (lawplots.draw_parity(table), lawplots.draw_curves(boot, points)):
        assert label_collisions(fig) == []
        lawplots.plt.close(fig)
    assert "mean ± std over 2 seeds" in lawplots.draw_parity(table).axes[0].get_ylabel()
    one = points.subset(points.rows["seed"] == 0)
    table = score(boot, one)[0]
    assert "1 seed (no spread)" in lawplots.draw_parity(table).axes[0].get_ylabel()
    lawplots.plt.close("all")


def test_law_captions_say_one_seed_has_no_spread(tmp_path):
    points, boot = synthetic(), exact_law()
    one = points.subset(points.rows["seed"] == 0)
    lawplots.law_figures(boot, one, tmp_path, score(boot, one)[0])
    svg = (tmp_path / "law_curves.svg").read_text()
    assert "1 seed (no spread)" in svg and "over 1 seed" not in svg
