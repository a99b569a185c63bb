"""The paper's two verdicts, on results tables whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from effscale.report.verdicts import (
    compound_vs_single,
    diminishing_returns,
    figure8_per_seed,
    summarise,
)


def rows(role, flops, accs, phi=None, w=1.0):
    return [
        {
            "model": "m",
            "base_width": 1.0,
            "base_depth": 1.0,
            "d": 1.0,
            "w": w * flops,
            "r": 1.0,
            "resolution": 32,
            "roles": role,
            "phi": phi,
            "flops": flops,
            "params": flops,
            "realised_flops_ratio": flops,
            "target_flops_ratio": flops,
            "seed": s,
            "top1": a,
            "top5": a,
            "train_seconds": 1.0,
            "status": "done",
        }
        for s, a in enumerate(accs)
    ]


def table(curve: dict[int, list[float]]) -> pd.DataFrame:
    data = rows("base", 1, curve[1])
    for f, accs in curve.items():
        if f != 1:
            data += rows("width", f, accs)
    return pd.DataFrame(data)


def test_shrinking_gains_are_diminishing_returns():
    df = table({1: [60, 61, 59], 2: [66, 67, 65], 4: [69, 70, 68], 8: [70, 71, 69.5]})
    (v,) = diminishing_returns(df)
    assert v["dimension"] == "width" and v["verdict"] == "supported"
    assert v["first_gain_per_doubling"] == pytest.approx(6)
    assert v["last_gain_per_doubling"] == pytest.approx(1 + 0.5 / 3)


def test_growing_gains_contradict_and_noise_does_not_resolve():
    (up,) = diminishing_returns(
        table({1: [60, 60.5, 59.5], 2: [61, 61.5, 60.5], 4: [66, 66.5, 65.5]})
    )
    assert up["verdict"].startswith("contradicted")
    (noisy,) = diminishing_returns(table({1: [60, 65, 55], 2: [62, 60, 64], 4: [66, 61, 63]}))
    assert noisy["verdict"].startswith("not resolved")


def test_compound_against_the_best_single_dimension():
    df = pd.DataFrame(
        rows("base", 1, [60, 60, 60])
        + rows("compound", 2, [66, 66.5, 65.5], 1)
        + rows("match-width", 2, [64, 64.2, 63.8], 1, w=1.4)
        + rows("match-depth", 2, [63, 63, 63], 1, w=1.5)
    )
    (v,) = compound_vs_single(df)
    assert v["best_single"] == "width" and v["verdict"] == "supported"
    assert v["compound_minus_best"] == pytest.approx(2.0)


def test_a_compound_rule_that_scales_one_dimension_is_no_test_of_balance():
    """Step 1 may choose width alone: its compound network is width's match, one run with both
    roles, and the difference to width is zero by construction, not a finding."""
    df = pd.DataFrame(
        rows("base", 1, [60, 60, 60])
        + rows("compound;match-width", 2, [64, 64.2, 63.8], 1, w=1.4)
        + rows("match-depth", 2, [63, 63, 63], 1, w=1.5)
    )
    (v,) = compound_vs_single(df)
    assert v["best_single"] == "width" and v["compound_minus_best"] == 0
    assert v["verdict"] == "not a test: the compound network is width alone"
    df.loc[df["roles"] == "match-depth", "top1"] = 66  # another dimension beats it: a finding
    (v,) = compound_vs_single(df)
    assert v["verdict"] == "contradicted: depth alone is better"


def test_the_comparison_shows_the_seeds_it_stands_on():
    df = pd.DataFrame(
        rows("compound", 2, [66, 62, 65], 1)
        + rows("match-width", 2, [64, 64], 1, w=1.4)  # seed 2 still training
        + rows("match-depth", 2, [63, 63, 63], 1, w=1.5)
    )
    (v,) = compound_vs_single(df)
    assert v["best_single"] == "width" and v["seeds"] == 2  # only seeds 0 and 1 pair up
    per_seed = figure8_per_seed(df)
    assert [r["seed"] for r in per_seed] == [0, 1, 2]
    assert [r["compound_minus_best"] for r in per_seed] == [2, -2, None]
    assert per_seed[2]["width_top1"] is None and per_seed[2]["depth_top1"] == 63
    assert {r["best_single"] for r in per_seed} == {"width"}  # best on the mean, as above


def test_summary_is_one_row_per_variant_with_spread():
    s = summarise(table({1: [60, 62], 2: [64, 66]}))
    assert list(s["seeds"]) == [2, 2] and list(s["top1_mean"]) == [61, 65]
    assert s["top1_std"].iloc[0] == pytest.approx(2**0.5)


def cell(compound, width, resolution, depth):
    """One Figure-8 cell: per-seed top-1 of compound and of each dimension alone."""
    return pd.DataFrame(
        rows("compound", 2, compound, 1)
        + rows("match-width", 2, width, 1, w=1.4)
        + rows("match-resolution", 2, resolution, 1, w=1.3)
        + rows("match-depth", 2, depth, 1, w=1.5)
    )


def spread(mean, std):
    """Three values with this mean and sample standard deviation."""
    return [mean - std, mean, mean + std]


def test_three_seeds_need_students_t_not_two_standard_errors():
    """-1.12 ± 0.64 over 3 seeds (Imagenette, phi = 2) is p = 0.094: not contradicted at
    0.05, though it lies 3 standard errors from zero; -2.00 ± 0.47 (CIFAR-10) is p = 0.018."""
    base = [70.0, 70.0, 70.0]
    weak = cell([70 + d for d in spread(-1.12, 0.64)], base, [60] * 3, [60] * 3)
    (v,) = compound_vs_single(weak)
    assert v["verdict"].startswith("not resolved") and v["p"] == pytest.approx(0.094, abs=1e-3)
    assert v["ci_low"] < 0 < v["ci_high"]
    assert "5 seeds would resolve it" in v["verdict"]  # 80 % power at alpha / 3, this spread
    strong = cell([70 + d for d in spread(-2.0, 0.47)], base, [60] * 3, [60] * 3)
    (v,) = compound_vs_single(strong)
    assert v["verdict"] == "contradicted: width alone is better"
    assert v["ci_high"] < 0
    (v,) = compound_vs_single(weak, alpha=0.1)  # the level is the user's
    assert v["verdict"] == "contradicted: width alone is better" and v["level"] == 0.1


def simulated_contradiction_rates(studies: int, seed: int = 0) -> tuple[float, float]:
    """How often compound is called "contradicted" when it equals every single dimension in
    expectation (seed noise 1 point, 3 seeds): by compound_vs_single, and by the former rule
    (the dimension best on the mean, then two standard errors)."""
    rng = np.random.default_rng(seed)
    ours = former = 0
    for _ in range(studies):
        top1 = 70 + rng.normal(0, 1, size=(4, 3))
        (v,) = compound_vs_single(cell(*top1))
        ours += v["verdict"].startswith("contradicted")
        best = top1[1:].mean(axis=1).argmax() + 1
        d = top1[0] - top1[best]
        former += abs(d.mean()) > 2 * d.std(ddof=1) / np.sqrt(3) and d.mean() < 0
    return ours / studies, former / studies


def test_no_difference_is_called_contradicted_at_most_about_alpha_of_the_time():
    ours, former = simulated_contradiction_rates(400)
    assert ours <= 0.06
    assert former > 3 * max(ours, 0.02)  # the former rule, best chosen after looking


def test_pooled_over_cells_and_seeds_needed():
    from effscale.report.pooling import pooled_compound_vs_single
    from effscale.report.stats import holm, paired_t, pooled, seeds_needed

    assert seeds_needed(1.0, 1.0) == 10  # a paired t-test, effect 1 sd, 80 % power at 0.05
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx(
        {"a": 0.03, "b": 0.06, "c": 0.06}
    )
    one = paired_t(spread(-1.12, 0.64))
    both = pooled([spread(-1.12, 0.64), spread(-2.0, 0.47)])
    assert both.df == 4 and both.mean == pytest.approx(-1.56) and both.p < one.p
    a = cell([70 + d for d in spread(-1.12, 0.64)], [70] * 3, [60] * 3, [60] * 3)
    b = cell([70 + d for d in spread(-2.0, 0.47)], [70] * 3, [60] * 3, [60] * 3)
    b["budget"], a["budget"] = 200_000, 100_000
    rows_ = pooled_compound_vs_single(pd.concat([a, b], ignore_index=True))
    width = next(r for r in rows_ if r["dimension"] == "width")
    assert width["cells"] == 2 and width["pooled"] == "independent cells"
    assert width["compound_minus"] == pytest.approx(-1.56)
    assert width["verdict"] == "contradicted: width alone is better"
