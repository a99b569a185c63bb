"""--log: each point's parameters and per-epoch metrics in TensorBoard's event files and an
MLflow store, read back with their own readers; a tracker not installed is one line."""

import importlib.util
import json

import pandas as pd
import pytest
from conftest import TINY_TRAIN, study_toml
from typer.testing import CliRunner

from effscale.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("tracked")
    f = root / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=256, batch_size=64, name="tracked"))
    out = root / "run"
    r = runner.invoke(app, ["run", str(f), "--out", str(out), "--log", "tensorboard", "--log",
                            "mlflow"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return out


def _epochs(out, key) -> list[dict]:
    return [
        json.loads(x) for x in (out / "points" / key / "metrics.jsonl").read_text().splitlines()
    ]


def test_tensorboard_event_files_hold_each_points_epochs(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = pd.read_csv(logged / "results.csv")
    runs = {p.name: p for p in (logged / "tensorboard").iterdir()}
    assert len(runs) == len(results) == 2
    for key in results["key"]:
        (run,) = [p for name, p in runs.items() if name.endswith(key)]
        acc = EventAccumulator(str(run))
        acc.Reload()
        top1 = [e.value for e in acc.Scalars("top1")]
        assert top1 == pytest.approx([m["top1"] for m in _epochs(logged, key)])


def test_an_mlflow_run_per_point_with_its_params_and_metrics(logged):
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(logged / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    results = pd.read_csv(logged / "results.csv").set_index("key")
    assert len(runs) == len(results) == 2
    for run in runs:
        key = run.data.params["key"]
        assert float(run.data.params["w"]) == results.loc[key, "w"]
        assert int(run.data.params["flops"]) == results.loc[key, "flops"]
        history = client.get_metric_history(run.info.run_id, "top1")
        assert [m.value for m in history] == pytest.approx(
            [m["top1"] for m in _epochs(logged, key)]
        )
        assert run.data.metrics["final_top1"] == pytest.approx(results.loc[key, "top1"])


def test_train_log_tensorboard_writes_beside_the_run(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", *TINY_TRAIN, "--samples", "128", "--out", str(out), "--log",
                            "tensorboard"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert list((out / "tensorboard").glob("*/events.out.tfevents.*"))


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_tracker_not_installed_is_one_line_before_anything_trains(tmp_path):
    f = tmp_path / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=128))
    r = runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "run"), "--log", "wandb"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert 'pip install "effscale[wandb]"' in r.stderr and not (tmp_path / "run").exists()
    r = runner.invoke(app, ["run", str(f), "--log", "comet", "--dry-run"])
    assert r.exit_code == 2 and "unknown tracker 'comet'" in r.stderr


def test_metrics_gathers_every_points_epochs_in_one_table(logged):
    r = runner.invoke(app, ["metrics", str(logged), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    results = pd.read_csv(logged / "results.csv")
    assert {row["key"] for row in rows} == set(results["key"])
    for key in results["key"]:
        mine = [row for row in rows if row["key"] == key]
        assert [row["top1"] for row in mine] == [m["top1"] for m in _epochs(logged, key)]
        assert all(row["w"] in (1.0, 1.5) and row["seed"] == 0 for row in mine)


def test_wandb_offline_records_the_points_metrics(tmp_path, monkeypatch):
    """W&B where it installs (not in CI's extras): an offline run per point whose record
    holds the epoch metrics and the final figures."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    f = tmp_path / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=128).replace("1.0, 1.5", "1.0"))
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(f), "--out", str(out), "--log", "wandb"])
    assert r.exit_code == 0, r.output
    (record,) = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    blob = record.read_bytes()
    assert b"top1" in blob and b"final_top1" in blob and b"train_loss" in blob
