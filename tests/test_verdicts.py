"""The paper's two verdicts, on results tables whose answer is known."""

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
