"""A lab's own backbone in worker processes: registered in an importable module, each worker
imports it; registered in __main__ (a script, a notebook), it is refused before anything
trains; and a study whose points fail says so instead of returning a short table."""

import textwrap
import warnings

import pytest

from effscale.errors import EffscaleError
from effscale.recipe import budget
from effscale.spec import BackboneSpec
from effscale.study.engine import run_study
from effscale.study.executors import InProcess, LocalWorkers
from effscale.study.plan import Base, Study, plan_sweep
from effscale.zoo import registry

RECIPE = budget("smoke", samples=128, batch_size=64)


def _study(model: str) -> Study:
    base = Base(model, 32, base_width=0.25, base_depth=0.5)
    return Study("own", {"kind": "test"}).add_all(
        plan_sweep(base, "width", [1.5], [0], RECIPE, "synthetic")
    )


@pytest.fixture
def labnet(tmp_path, monkeypatch):
    """A backbone registered by a module of the lab's own, importable from sys.path."""
    (tmp_path / "labnets.py").write_text(textwrap.dedent('''
        from effscale.zoo import get_spec
        from effscale.zoo.registry import register_backbone

        @register_backbone
        def labnet():
            return get_spec("resnet18")
    '''))  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))
    import importlib

    importlib.import_module("labnets")
    yield "labnet"
    import sys

    sys.modules.pop("labnets", None)


def test_worker_processes_import_the_module_that_registered_a_backbone(labnet, tmp_path):
    df = run_study(_study(labnet), tmp_path, executor=LocalWorkers(2, "cpu", 1), device="cpu")
    assert len(df) == 2 and (df["status"] == "done").all()
    assert not df.attrs.get("failures")


def test_a_backbone_registered_in_main_is_refused_for_workers(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))

    def scriptnet() -> BackboneSpec:
        return registry.get_spec("resnet18")

    scriptnet.__module__ = "__main__"
    registry.register_backbone(scriptnet)
    with pytest.raises(EffscaleError, match="registered in __main__") as e:
        run_study(_study("scriptnet"), tmp_path, executor=LocalWorkers(2, "cpu", 1), device="cpu")
    assert "train in this process" in e.value.hint
    assert not (tmp_path / "points").exists()  # refused before anything trained
    df = run_study(_study("scriptnet"), tmp_path, executor=InProcess(1), device="cpu")
    assert (df["status"] == "done").all()  # in this process it is known


def test_failed_points_travel_beside_the_table_and_are_not_silent(tmp_path, monkeypatch):
    import effscale.training.loop

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(effscale.training.loop, "train", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = run_study(_study("resnet18"), tmp_path, executor=InProcess(1), device="cpu")
    assert df.empty or not (df["status"] == "done").any()
    assert len(df.attrs["failures"]) == 2
    assert "out of memory (simulated)" in next(iter(df.attrs["failures"].values()))
    assert any("2 of 2 points failed" in str(w.message) for w in caught)


LAB_CNN = textwrap.dedent("""
    import torch.nn as nn
    from effscale.zoo import register_module

    @register_module(resolution=32)
    def lab_cnn(depth_mult, width_mult, num_classes):
        widths = [max(8, round(16 * width_mult)), max(8, round(32 * width_mult))]
        repeats = max(1, round(2 * depth_mult))
        layers, c_in = [], 3
        for c in widths:
            for j in range(repeats):
                layers += [nn.Conv2d(c_in, c, 3, 2 if j == 0 else 1, 1, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU()]
                c_in = c
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(c_in, num_classes))
""")


@pytest.fixture
def lab_cnn(tmp_path, monkeypatch):
    """Any nn.Module as a backbone: a factory of (depth_mult, width_mult, num_classes)."""
    import importlib
    import sys

    (tmp_path / "labcnn.py").write_text(LAB_CNN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    importlib.import_module("labcnn")
    yield "lab-cnn"
    sys.modules.pop("labcnn", None)


def test_any_module_is_scaled_counted_and_trained_as_a_backbone(lab_cnn, tmp_path):
    from effscale.cost import count_cost, count_model
    from effscale.scaling import make_variant
    from effscale.zoo import build_model

    base, wide = make_variant(lab_cnn), make_variant(lab_cnn, w=2.0)
    assert base.resolution == 32  # its native resolution, as registered
    model = build_model(wide, 10)
    assert model[0].out_channels == 32  # the factory applied the width
    assert count_cost(wide, 10) == count_model(model, 32)  # fvcore on the built module
    assert count_cost(wide, 10).flops > 3 * count_cost(base, 10).flops
    # a study of it, in worker processes that import the module that registered it
    df = run_study(_study_of(lab_cnn), tmp_path, executor=LocalWorkers(2, "cpu", 1), device="cpu")
    assert len(df) == 2 and (df["status"] == "done").all()
    assert sorted(df["w"]) == [1.0, 1.5]


def _study_of(model: str) -> Study:
    base = Base(model, 32)
    return Study("own", {"kind": "test"}).add_all(
        plan_sweep(base, "width", [1.5], [0], RECIPE, "synthetic")
    )


def test_cam_on_a_module_without_an_fc_head_is_one_line(lab_cnn, tmp_path):
    from typer.testing import CliRunner

    from effscale.cli import app

    run_study(_study_of(lab_cnn), tmp_path, executor=InProcess(1), device="cpu")
    point = next((tmp_path / "points").iterdir())
    r = CliRunner().invoke(app, ["cam", str(point), "--data", "synthetic", "--count", "2",
                                 "--out", str(tmp_path / "cam.png")])  # fmt: skip
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "fc" in r.stderr
