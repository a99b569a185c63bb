"""Every registered backbone builds, runs forward and backward, and has the published size."""

import json
from pathlib import Path

import pytest
import torch

from effscale.errors import EffscaleError
from effscale.scaling import make_variant
from effscale.zoo import build_model, get_spec, list_backbones, resolve_spec

# torchvision num_params / timm mobilenetv1_100, 1000 classes
PARAMS = {
    "efficientnet-b0": 5_288_548,
    "efficientnet-b1": 7_794_184,
    "efficientnet-b2": 9_109_994,
    "efficientnet-b3": 12_233_232,
    "efficientnet-b4": 19_341_616,
    "efficientnet-b5": 30_389_784,
    "efficientnet-b6": 43_040_704,
    "efficientnet-b7": 66_347_960,
    "mobilenet-v1": 4_231_976,
    "mobilenet-v2": 3_504_872,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}

REFERENCE = json.loads(
    (Path(__file__).parents[1] / "effscale/reference/efficientnet.json").read_text()
)


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_every_backbone_in_natural_order():
    assert list_backbones() == list(PARAMS)
    assert list_backbones("resnet*") == [
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
    ]


@pytest.mark.parametrize("name", list(PARAMS))
def test_params_at_base_equal_published(name):
    with torch.device("meta"):
        model = build_model(make_variant(name))
    assert _n_params(model) == PARAMS[name]


@pytest.mark.parametrize("i", range(8))
def test_b1_to_b7_specs_match_official_rounding(i):
    """Stem, stage widths, repeats and head equal the official code's (reference §9)."""
    derived = REFERENCE["derived"]["per_variant"][f"b{i}"]
    spec = get_spec(f"efficientnet-b{i}")
    assert spec.stem_channels == derived["stem"]
    assert spec.head_channels == derived["head"]
    assert [s.channels for s in spec.stages] == derived["channels"]
    assert [s.repeats for s in spec.stages] == derived["repeats"]


@pytest.mark.parametrize("name", list(PARAMS))
def test_forward_backward_small_variant(name):
    """Each family trains: finite output of the right shape and a gradient on every param."""
    torch.manual_seed(0)
    variant = make_variant(name, d=0.5, w=0.25, base_resolution=32)
    model = build_model(variant, num_classes=10)
    x = torch.randn(2, 3, variant.resolution, variant.resolution)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_small_input_adaptation_removes_stem_downsampling():
    plain = resolve_spec(make_variant("resnet50", base_resolution=32, small_input=False))
    adapted = resolve_spec(make_variant("resnet50", base_resolution=32))
    assert plain.total_stride == 32 and adapted.total_stride == 8
    assert (adapted.stem_kernel, adapted.stem_stride, adapted.stem_pool) == (3, 1, False)
    b0 = resolve_spec(make_variant("efficientnet-b0", base_resolution=32))
    assert b0.stem_stride == 1 and b0.small_input and b0.total_stride == 16


def test_width_scales_every_channel_count_and_depth_every_stage():
    base = resolve_spec(make_variant("resnet50"))
    wide = resolve_spec(make_variant("resnet50", w=2, base_resolution=224))
    deep = resolve_spec(make_variant("resnet50", d=4, base_resolution=224))
    assert wide.stem_channels == 2 * base.stem_channels
    assert [s.mid for s in wide.stages] == [2 * s.mid for s in base.stages]
    assert [s.channels for s in wide.stages] == [2 * s.channels for s in base.stages]
    assert [s.repeats for s in deep.stages] == [12, 16, 24, 12]


def test_unknown_model_suggests_the_closest():
    with pytest.raises(EffscaleError) as e:
        get_spec("resnet-50")
    assert "resnet50" in (e.value.hint or "")


def test_resolution_below_total_stride_is_refused():
    with pytest.raises(EffscaleError, match="total stride"):
        resolve_spec(make_variant("efficientnet-b0", base_resolution=224, resolution=16))


def test_any_class_count():
    model = build_model(make_variant("mobilenet-v2", w=0.5, base_resolution=32), num_classes=7)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 7)
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def _resnext50_32x4d():
    """ResNeXt-50 (32x4d) as a spec: ResNet-50's bottlenecks, twice as wide inside, with
    32 groups in the 3x3 conv (Xie et al. 2017; torchvision resnext50_32x4d)."""
    from dataclasses import replace

    from effscale.zoo import get_spec

    r50 = get_spec("resnet50")
    stages = tuple(replace(s, mid=s.mid * 2, groups=32) for s in r50.stages)
    return replace(r50, name="resnext50-32x4d", stages=stages)


def test_a_grouped_bottleneck_stays_valid_at_every_width(monkeypatch):
    """The ResNeXt case: widths snap to multiples of 8, so w = 1.1 made 128 -> 144 inner
    channels for 32 groups, and the conv refused; now mid snaps to multiples of its groups."""
    import torch

    from effscale.cost import count_cost
    from effscale.scaling import make_variant
    from effscale.zoo import build_model, registry

    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))
    spec = _resnext50_32x4d()
    registry._BACKBONES["resnext50-32x4d"] = lambda: spec
    base = build_model(make_variant("resnext50-32x4d", base_resolution=64), 1000)
    # torchvision's resnext50_32x4d has 25,028,904 parameters
    assert sum(p.numel() for p in base.parameters()) == 25_028_904
    for w in (1.1, 1.25, 1.37, 0.6):
        v = make_variant("resnext50-32x4d", w=w, base_resolution=32)
        model = build_model(v, 10).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
        assert count_cost(v, 10).flops > 0


def test_a_backbones_channel_divisor_sets_the_width_rounding():
    from dataclasses import replace

    from effscale.scaling import scale_spec
    from effscale.zoo import get_spec

    spec = replace(get_spec("resnet18"), channel_divisor=16)
    scaled = scale_spec(spec, 1.0, 1.1)
    assert all(s.channels % 16 == 0 and s.mid % 16 == 0 for s in scaled.stages)
    assert scaled.stem_channels % 16 == 0
