"""Export: a trained run's network as TorchScript or a state dict, with its preprocessing,
giving the same logits as the run's own weights; effscale.load_trained at the top level."""

import importlib.util
import json

import pytest
import torch
from conftest import TINY_TRAIN
from typer.testing import CliRunner

import effscale
from effscale.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = runner.invoke(app, ["train", *TINY_TRAIN, "--samples", "128", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def _input(run):
    res = effscale.load_run(run).variant.resolution
    return torch.randn(4, 3, res, res, generator=torch.Generator().manual_seed(0))


def test_load_trained_gives_a_module_in_eval_mode(trained):
    model = effscale.load_trained(trained)
    assert isinstance(model, torch.nn.Module) and not model.training


def test_torchscript_export_gives_the_runs_logits(trained, tmp_path):
    r = runner.invoke(app, ["export", str(trained), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    scripted = torch.jit.load(str(tmp_path / "model.torchscript.pt"))
    x = _input(trained)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), effscale.load_trained(trained)(x))
    pre = json.loads((tmp_path / "preprocess.json").read_text())
    run = effscale.load_run(trained)
    assert pre["resolution"] == run.variant.resolution and pre["eval_crop"] == 0.875
    assert pre["mean"] == pytest.approx(list(run.stats[0])) and len(pre["std"]) == 3
    assert pre["classes"] == run.classes and pre["format"] == "torchscript"


def test_state_dict_export_loads_into_the_built_variant(trained, tmp_path):
    r = runner.invoke(
        app, ["export", str(trained), "--format", "state_dict", "--out", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    run = effscale.load_run(trained)
    model = effscale.build_model(run.variant, len(run.classes)).eval()
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    x = _input(trained)
    with torch.no_grad():
        torch.testing.assert_close(model(x), run.model(x))


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_extra_says_what_to_install(trained, tmp_path):
    r = runner.invoke(app, ["export", str(trained), "--format", "onnx", "--out", str(tmp_path)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert 'pip install "effscale[onnx]"' in r.stderr
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("fmt", ["tflite", "torchscript"])
def test_bad_exports_are_refused_in_one_line(tmp_path, fmt):
    r = runner.invoke(app, ["export", str(tmp_path / "nowhere"), "--format", fmt])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert ("unknown export format" if fmt == "tflite" else "no checkpoint at") in r.stderr


def test_status_points_names_each_point_for_a_person(tmp_path):
    from conftest import study_toml

    f = tmp_path / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=128))
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(f), "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["status", str(out), "--points", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    wide = next(row for row in rows if row["w"] == 1.5)
    assert wide["seed"] == 0 and wide["state"] == "done" and wide["top1"] is not None
    assert wide["path"] == str(out / "points" / wide["key"])
    assert effscale.load_trained(wide["path"]) is not None  # the path is a run to load
