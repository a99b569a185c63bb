import math

import pytest

from effscale.errors import EffscaleError
from effscale.scaling import (
    EFFICIENTNET_PARAMS,
    compound,
    compound_variants,
    flops_ratio,
    make_variant,
    parse_range,
    round_filters,
    round_repeats,
    round_resolution,
)


@pytest.mark.parametrize(
    "c, w, expected",
    [
        (32, 1.1, 32),  # 35.2 -> 32 (not below 90 %)
        (16, 1.2, 24),  # 19.2 -> 16 is below 90 % of 19.2, so +8: the B3 case
        (40, 1.1, 48),  # 44 -> 48 (int(44 + 4) // 8 * 8)
        (1280, 2.0, 2560),
        (24, 0.25, 8),  # never below the divisor
        (320, 1.8, 576),
    ],
)
def test_round_filters_matches_official(c, w, expected):
    assert round_filters(c, w) == expected


def test_round_filters_never_loses_more_than_ten_percent():
    for c in (8, 16, 24, 32, 40, 80, 112, 192, 320, 1280):
        for w in (0.5, 0.75, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0, 3.8, 5.0):
            out = round_filters(c, w)
            assert out % 8 == 0 and out >= 0.9 * c * w


def test_round_repeats_is_ceil():
    assert [round_repeats(n, 1.1) for n in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(3, 0.5) == 2 and round_repeats(1, 0.1) == 1


def test_round_resolution():
    assert round_resolution(224, 1.3) == 292
    assert round_resolution(224, 2.5) == 560
    assert round_resolution(32, 1.15, multiple=4) == 36
    assert round_resolution(30, 1.0) == 30  # r = 1 keeps the base exactly
    assert round_resolution(224, 1.3, multiple=32) == 288


def test_compound_equation_3():
    d, w, r = compound(1)
    assert (d, w, r) == (1.2, 1.1, 1.15)
    d, w, r = compound(-1)
    assert math.isclose(d, 1 / 1.2) and math.isclose(w * 1.1, 1.0)
    assert math.isclose(flops_ratio(d, w, r), 1 / 1.9203, rel_tol=1e-4)
    assert math.isclose(flops_ratio(*compound(1)), 1.9203, rel_tol=1e-4)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1..7", [1, 2, 3, 4, 5, 6, 7]),
        ("0..2:0.5", [0, 0.5, 1, 1.5, 2]),
        ("1,1.4,2", [1, 1.4, 2]),
        ("-1..1", [-1, 0, 1]),
        ("3", [3]),
        ("0..1:0.1", [round(0.1 * i, 10) for i in range(11)]),
    ],
)
def test_parse_range(text, expected):
    assert parse_range(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "7..1", "1..3:0", "a,b", "1..x", "1..3:-1"])
def test_parse_range_rejects(text):
    with pytest.raises(EffscaleError):
        parse_range(text)


@pytest.mark.parametrize("kw", [{"d": 0}, {"w": -1}, {"r": float("nan")}, {"d": float("inf")}])
def test_variant_rejects_non_positive_multipliers(kw):
    with pytest.raises(EffscaleError):
        make_variant("resnet50", base_resolution=224, **kw)


def test_small_input_is_automatic_below_64px():
    assert make_variant("efficientnet-b0", base_resolution=32).small_input
    assert not make_variant("efficientnet-b0", base_resolution=224).small_input
    assert not make_variant("efficientnet-b0", base_resolution=32, small_input=False).small_input


def test_official_table_is_not_the_formula():
    ((_, official),) = compound_variants(
        "efficientnet-b0", [1], base_resolution=224, table="official"
    )
    ((_, formula),) = compound_variants("efficientnet-b0", [1], base_resolution=224)
    assert (official.d, official.w, official.resolution) == (1.1, 1.0, 240)
    assert (formula.d, formula.w, formula.resolution) == (1.2, 1.1, 256)
    px = [
        v.resolution
        for _, v in compound_variants(
            "efficientnet-b0", list(range(8)), base_resolution=224, table="official"
        )
    ]
    assert px == [EFFICIENTNET_PARAMS[f"efficientnet-b{i}"][2] for i in range(8)]


def test_official_table_rejects_fractional_phi_and_other_models():
    with pytest.raises(EffscaleError):
        compound_variants("efficientnet-b0", [1.5], base_resolution=224, table="official")
    with pytest.raises(EffscaleError):
        compound_variants("resnet50", [1], base_resolution=224, table="official")


def test_fractional_and_negative_phi():
    variants = dict(compound_variants("efficientnet-b0", [-1, 0.5], base_resolution=224))
    assert variants[-1].resolution < 224 < variants[0.5].resolution


def test_make_variant_defaults_to_the_native_resolution_and_rows_read_back():
    from effscale.scaling import Variant

    v = make_variant("efficientnet-b0", w=0.5)
    assert (v.base_resolution, v.resolution, v.small_input) == (224, 224, False)
    assert make_variant("efficientnet-b0", w=0.5, base_resolution=224) == v
    assert Variant.from_row(v.to_dict()) == v
    assert Variant.from_row({k: str(x) for k, x in v.to_dict().items()}) == v  # a CSV row
