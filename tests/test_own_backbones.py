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
