"""timm models through effscale's one counting path (``timm:NAME``), with and without timm.

timm is an optional extra and is not installed in the development environment (its
torchvision must match the CPU torch build, see README), so these tests stand a small fake
``timm`` module in for it: they check effscale's side (names, multipliers, counting, cache,
messages), not timm's models.
"""

import json
import sys
import types

import pytest
from torch import nn
from typer.testing import CliRunner

from effscale import timm_cost
from effscale.cli import app
from effscale.cost import count_model
from effscale.zoo import timm_models

runner = CliRunner()


def _net(width: int, blocks: int, num_classes: int):
    layers = [nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    model = nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
    )
    model.pretrained_cfg = {"input_size": (3, 64, 64)}
    return model


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []
    timm = types.ModuleType("timm")
    timm.__version__ = "0.0-test"
    names = ["efficientnet_b0", "efficientnet_b1", "resnet50", "tf_efficientnet_b0"]

    def list_models(pattern="*"):
        import fnmatch

        return [n for n in names if fnmatch.fnmatch(n, pattern)]

    def create_model(name, pretrained=False, num_classes=1000):
        assert not pretrained
        calls.append(("create", name))
        return _net(16, 2, num_classes)

    def _gen_efficientnet(variant, channel_multiplier, depth_multiplier, pretrained, num_classes):
        calls.append(("gen", variant, channel_multiplier, depth_multiplier))
        return _net(round(16 * channel_multiplier), round(2 * depth_multiplier), num_classes)

    timm.list_models, timm.create_model = list_models, create_model
    models = types.ModuleType("timm.models")
    efficientnet = types.ModuleType("timm.models.efficientnet")
    efficientnet._gen_efficientnet = _gen_efficientnet
    timm.models, models.efficientnet = models, efficientnet
    for name, module in (("timm", timm), ("timm.models", models),
                         ("timm.models.efficientnet", efficientnet)):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    timm_models.timm_version.cache_clear()
    yield calls
    timm_models.timm_version.cache_clear()


def test_cost_of_a_timm_model_is_counted_by_the_one_fvcore_path(fake_timm):
    r = runner.invoke(app, ["cost", "timm:resnet50", "--format", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    expected = count_model(_net(16, 2, 1000), 64)
    assert (row["flops"], row["params"], row["activations"]) == (
        expected.flops, expected.params, expected.activations
    )  # fmt: skip
    assert row["resolution"] == 64 and row["realised_flops_ratio"] == 1
    assert row["gflops"] == pytest.approx(row["flops"] / 1e9, abs=1e-4)


def test_a_timm_cost_is_cached(fake_timm):
    timm_cost.timm_cost("timm:resnet50", resolution=96)
    before = len(fake_timm)
    timm_cost.timm_cost("timm:resnet50", resolution=96)
    assert len(fake_timm) == before  # answered from the cache, no model built


def test_timm_efficientnet_is_scaled_through_its_own_multipliers(fake_timm):
    r = runner.invoke(app, ["cost", "timm:efficientnet_b1", "--depth", "2", "--width", "1.5",
                            "--format", "json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert ("gen", "efficientnet_b1", 1.5, 2.2) in fake_timm  # B1's (w 1.0, d 1.1) times (1.5, 2)
    row = json.loads(r.stdout)
    assert row["realised_flops_ratio"] > 2 and row["target_flops_ratio"] == pytest.approx(4.5)
    r = runner.invoke(app, ["cost", "timm:resnet50", "--res-mult", "2", "--format", "json"])
    assert json.loads(r.stdout)["resolution"] == 128


def test_models_lists_timm_models_by_wildcard(fake_timm):
    r = runner.invoke(app, ["models", "timm:*eff*", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["model"] for row in rows] == [
        "timm:efficientnet_b0", "timm:efficientnet_b1", "timm:tf_efficientnet_b0"
    ]  # fmt: skip
    assert all(isinstance(row["flops"], int) for row in rows)


@pytest.mark.parametrize(
    "args, says",
    [
        (["cost", "timm:resnet50", "--depth", "2"], "takes no depth or width multiplier"),
        (["cost", "timm:resnet500"], "did you mean timm:resnet50"),
        (["cost", "timm:resnet50", "--base-width", "0.5"], "--base-width applies to effscale's"),
        (["sweep", "--model", "timm:resnet50"], "costs timm models but builds"),
    ],
)
def test_what_timm_models_cannot_do_is_one_line(fake_timm, args, says):
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_without_timm_the_message_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ModuleNotFoundError
    for args in (["cost", "timm:resnet50"], ["models", "timm:*eff*"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        assert "pip install 'effscale[timm]'" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
