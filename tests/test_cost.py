"""Cost counting: the paper's convention, published FLOPs, a second counter as witness."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from effscale import cost as cost_mod
from effscale.cost import count_cost, describe
from effscale.scaling import make_variant
from effscale.zoo import list_backbones, resolve_spec
from effscale.zoo.net import Net

# torchvision's published _ops (G multiply-adds) at the paper's resolutions; timm for V1.
GFLOPS = {
    ("efficientnet-b0", 224): 0.386,
    ("efficientnet-b1", 240): 0.687,
    ("efficientnet-b2", 288): 1.088,  # torchvision measures B2 at its 288 crop
    ("efficientnet-b3", 300): 1.827,
    ("efficientnet-b4", 380): 4.394,
    ("efficientnet-b5", 456): 10.266,
    ("efficientnet-b6", 528): 19.068,
    ("efficientnet-b7", 600): 37.746,
    ("resnet18", 224): 1.814,
    ("resnet34", 224): 3.664,
    ("resnet50", 224): 4.089,
    ("resnet101", 224): 7.801,
    ("resnet152", 224): 11.514,
    ("mobilenet-v2", 224): 0.301,
    ("mobilenet-v1", 224): 0.569,
}

EXPECTED = Path(__file__).parent / "expected_costs.json"

# Variants whose cost is frozen in expected_costs.json (pycls keeps model_complexity.json).
FROZEN = [make_variant(n) for n in list_backbones()] + [
    make_variant("efficientnet-b0", w=0.5, base_resolution=32),
    make_variant("efficientnet-b0", d=2, w=0.5, r=1.5, base_resolution=32),
    make_variant("resnet50", w=2, base_resolution=224),
    make_variant("resnet18", base_resolution=32),
    make_variant("mobilenet-v2", d=4, base_resolution=224),
    make_variant("mobilenet-v1", w=0.5, base_resolution=32),
]


@pytest.mark.parametrize("name, px", list(GFLOPS))
def test_flops_equal_torchvision_to_three_decimals(name, px):
    variant = make_variant(name, base_resolution=224, resolution=px)
    assert round(count_cost(variant).gflops, 3) == GFLOPS[(name, px)]


def test_batch_norm_and_pooling_are_not_counted():
    """fvcore's default would give B0 0.4017 G; the paper's convention gives 0.3858 G."""
    assert count_cost(make_variant("efficientnet-b0")).flops == 385_814_752


def _flop_counter_macs(variant) -> int:
    with torch.device("meta"):
        model = Net(resolve_spec(variant), 1000)
    model = model.to_empty(device="cpu").eval()
    x = torch.zeros(1, 3, variant.resolution, variant.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2  # FlopCounterMode counts 2 FLOPs per multiply-add


@pytest.mark.parametrize("name", list_backbones())
def test_fvcore_agrees_with_flop_counter_mode(name):
    variant = make_variant(name)
    ours, witness = count_cost(variant).flops, _flop_counter_macs(variant)
    assert abs(ours - witness) / witness < 0.01


def test_costs_match_the_frozen_table():
    got = {v.label: count_cost(v).to_dict() for v in FROZEN}
    if os.environ.get("EFFSCALE_REGENERATE"):
        EXPECTED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(EXPECTED.read_text())


def test_cache_is_used_on_the_second_count(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    variant = make_variant("resnet18", w=0.5, base_resolution=64)
    first = count_cost(variant)
    assert list((tmp_path / "cost").glob("*.json"))

    def fail(*a, **k):
        raise AssertionError("recounted despite the cache")

    monkeypatch.setattr(cost_mod, "count_model", fail)
    assert count_cost(variant) == first


def test_a_cached_answer_needs_no_torch(tmp_path):
    """`effscale table` and `cost` answer from the cache in a fraction of torch's import time."""
    env = {**os.environ, "EFFSCALE_CACHE": str(tmp_path)}
    script = (
        "import sys; from effscale.cost import describe; "
        "from effscale.scaling import make_variant; "
        "describe(make_variant('efficientnet-b0', base_resolution=64)); "
        "print('torch' in sys.modules)"
    )

    def torch_imported() -> str:
        cmd = [sys.executable, "-c", script]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    assert torch_imported().strip() == "True"  # the first count builds and traces the model
    assert torch_imported().strip() == "False"  # the second is read from the cache


def test_damaged_cache_entry_is_recounted(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    variant = make_variant("resnet18", w=0.5, base_resolution=64)
    first = count_cost(variant)
    (entry,) = (tmp_path / "cost").glob("*.json")
    entry.write_text("{not json")
    assert count_cost(variant) == first


def test_describe_carries_target_and_realised_ratios():
    row = describe(make_variant("efficientnet-b0", d=1.4, w=1.2, r=1.3, base_resolution=224))
    assert row["resolution"] == 292
    assert row["target_flops_ratio"] == pytest.approx(1.4 * 1.2**2 * 1.3**2, rel=1e-3)
    assert row["realised_flops_ratio"] == pytest.approx(row["flops"] / 385_814_752, rel=1e-3)


def test_small_input_costs_are_counted_on_the_adapted_model():
    adapted = count_cost(make_variant("efficientnet-b0", base_resolution=32))
    plain = count_cost(make_variant("efficientnet-b0", base_resolution=32, small_input=False))
    assert adapted.flops > 3 * plain.flops  # stride-1 stem: 4x the pixels after the stem


@pytest.mark.parametrize(
    "variant",
    [make_variant(n, base_resolution=64) for n in list_backbones()]
    + [
        make_variant(
            "efficientnet-b0", d=2.33333, w=1.1, r=1.5, base_resolution=32, base_width=0.25
        ),
        make_variant("resnet50", d=3, w=0.5, base_resolution=32),
        make_variant("mobilenet-v1", w=1.4, base_resolution=96, small_input=True),
    ],  # fmt: skip
    ids=lambda v: v.label,
)
def test_counting_piece_by_piece_equals_one_trace_of_the_whole_network(variant):
    """A variant whose pieces (stem, blocks, head, classifier) were all seen before is
    added up from them, without a trace: the sum equals one trace of the whole network."""
    spec = resolve_spec(variant)
    whole = cost_mod.count_model(Net(spec, 10), variant.resolution)
    cost_mod._PIECES.clear()
    assert cost_mod.count_spec(spec, 10, variant.resolution) == whole  # traced
    cost_mod.count_spec(resolve_spec(replace(variant, d=variant.d * 2)), 10, variant.resolution)
    deeper = resolve_spec(replace(variant, d=variant.d * 3))  # the same pieces, repeated
    traced = cost_mod.count_model(Net(deeper, 10), variant.resolution)
    calls = []
    real = cost_mod.count_model
    cost_mod.count_model = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        summed = cost_mod.count_spec(deeper, 10, variant.resolution)
    finally:
        cost_mod.count_model = real
    assert summed == traced and calls == []


def test_shipped_costs_are_the_frozen_counts_of_every_registered_backbone():
    """effscale/reference/costs.json answers `effscale models` on a fresh machine; each
    entry must be what counting gives (the frozen table is checked against counting above)."""
    frozen = json.loads(EXPECTED.read_text())
    shipped = cost_mod.shipped_costs()
    for name in list_backbones():
        variant = make_variant(name)
        assert shipped[cost_mod.cost_key(variant, 1000)] == frozen[variant.label], name
    other = make_variant("efficientnet-b0", w=1.1, base_resolution=224)  # not shipped
    assert cost_mod.cost_key(other, 1000) not in shipped


def test_counting_leaves_the_random_state_alone(monkeypatch, tmp_path):
    """A run seeds, counts its cost, then builds its model: a count that drew from the
    global generator would make the weights depend on whether the cost was cached."""
    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    torch.manual_seed(0)
    before = torch.get_rng_state()
    count_cost(make_variant("resnet18", w=0.75, base_resolution=40))  # a miss: built, traced
    assert torch.equal(torch.get_rng_state(), before)
