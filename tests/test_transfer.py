"""Transfer studies (paper Table 5): [[transfer]] in a study file pre-trains on one dataset,
fine-tunes on another from that checkpoint, and the report shows both accuracies."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import TRANSFER, run_study_file, study_toml
from typer.testing import CliRunner

import effscale
from effscale.cli import app
from effscale.data import cache
from effscale.study import files
from effscale.study.files import load_study

runner = CliRunner()

TRANSFER_TOML = study_toml(TRANSFER, name="transfer", samples=256)


@pytest.fixture
def study_file(tmp_path):
    f = tmp_path / "transfer.toml"
    f.write_text(TRANSFER_TOML)
    return f


def test_transfer_plans_a_pretrain_and_a_finetune_from_it_per_seed(study_file):
    study = load_study(study_file)
    pre = [p for p in study.points if p.roles == ("pretrain",)]
    tune = [p for p in study.points if p.roles == ("transfer",)]
    assert len(pre) == len(tune) == 2
    by_key = {p.key: p for p in pre}
    for p in tune:
        source = by_key[p.init_from]
        assert (source.data, p.data) == ("synthetic", "synthetic:8")
        assert source.seed == p.seed and source.variant == p.variant
        assert (source.recipe.samples, p.recipe.samples) == (256, 128)


def test_a_transfer_study_fine_tunes_from_the_pretrain_checkpoint_and_reports_both(
    tmp_path, study_file
):
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(study_file), "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    results = pd.read_csv(out / "results.csv").set_index("key")
    assert len(results) == 4 and (results["status"] == "done").all()
    study = load_study(study_file)
    for p in study.points:
        if p.init_from:
            config = json.loads((out / "points" / p.key / "config.json").read_text())
            source = out / "points" / p.init_from / "checkpoint.pt"
            assert config["identity"]["init_from"] == str(source)
            notes = json.loads((out / "points" / p.key / "result.json").read_text())["notes"]
            assert any(f"initialised from {source}" in n for n in notes)

    rep = runner.invoke(app, ["report", str(out), "--format", "json"])
    assert rep.exit_code == 0, rep.output
    (row,) = json.loads(rep.stdout)["transfer"]
    assert (row["pretrain_data"], row["finetune_data"]) == ("synthetic", "synthetic:8")
    assert row["pretrain_seeds"] == row["finetune_seeds"] == 2
    pre = results[results["roles"] == "pretrain"]["top1"]
    tune = results[results["roles"] == "transfer"]["top1"]
    assert row["pretrain_top1"] == pytest.approx(pre.mean())
    assert row["finetune_top1"] == pytest.approx(tune.mean())
    report = (out / "report.md").read_text()
    assert "## Transfer" in report
    line = next(x for x in report.splitlines() if "| synthetic | synthetic:8 |" in x)
    assert f"{pre.mean():.4g}" in line and f"{tune.mean():.4g}" in line


@pytest.mark.parametrize(
    "edit, says",
    [
        (("finetune_samples = 128", "finetune_smaples = 128"), ":17: unknown key "),
        (("finetune_samples = 128", "finetune_samples = 1.5"), "'finetune_samples' must be int"),
        (('finetune = "synthetic:8"', ""), "a [[transfer]] table needs 'finetune'"),
        (('finetune = "synthetic:8"', 'finetune = "synthetic"'), "on the same data"),
    ],
)
def test_bad_transfer_tables_are_refused_with_file_key_and_line(tmp_path, edit, says):
    f, r = run_study_file(runner, app, tmp_path, TRANSFER_TOML.replace(*edit, 1))
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    if "unknown key" in says:
        assert str(f) in r.stderr and "'finetune_smaples' in [[transfer]]" in r.stderr


PACKAGED = Path(effscale.__file__).parent / "studies" / "transfer.toml"


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty cache and no network: every download attempt fails (and is counted)."""
    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path / "cache"))
    tries = []

    def urlopen(url, *args, **kwargs):
        tries.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return tries


def test_missing_cifar100_is_said_in_one_line_before_anything_is_planned(
    tmp_path, offline, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("planned or loaded data before the datasets were checked")

    monkeypatch.setattr(files, "plan_transfer", never)
    monkeypatch.setattr(cache, "dataset", never)
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(PACKAGED), "--out", str(out), "--yes"])
    assert r.exit_code == 2, r.output
    (line,) = r.stderr.strip().splitlines()
    assert "Traceback" not in r.output and not out.exists()
    assert f"{PACKAGED}:" in line and "(finetune)" in line  # where the study names it
    assert "CIFAR-100 is not in" in line and "could not download CIFAR-100" in line
    assert "--finetune-data /path/to/cifar-100-python" in line
    assert 'finetune = "/path/to/cifar-100-python" in the study file' in line
    assert len(offline) == 1  # one attempt, then no more


def test_finetune_data_gives_the_fine_tune_set_a_path(tmp_path, offline):
    from test_data import write_cifar100

    local = write_cifar100(tmp_path / "data")
    study = load_study(PACKAGED, data="synthetic", finetune=str(local))
    tune = {p.data for p in study.points if p.roles == ("transfer",)}
    assert tune == {str(local)} and not offline  # nothing downloaded

    r = runner.invoke(app, ["run", str(PACKAGED), "--finetune-data", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert f"--finetune-data {tmp_path / 'nowhere'}: dataset" in r.stderr
    assert "does not exist" in r.stderr


def test_finetune_data_is_refused_for_a_study_without_transfer(tmp_path):
    f = tmp_path / "sweep.toml"
    f.write_text(study_toml())
    r = runner.invoke(app, ["run", str(f), "--finetune-data", "synthetic:8", "--dry-run"])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "no [[transfer]] table" in r.stderr


def test_a_study_data_path_that_does_not_exist_names_its_key_and_line(tmp_path):
    text = TRANSFER_TOML.replace('pretrain = "synthetic"', 'pretrain = "no/such/folder"')
    f, r = run_study_file(runner, app, tmp_path, text)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert f"{f}:15 (pretrain): dataset no/such/folder does not exist" in r.stderr
    assert 'pretrain = "PATH" in the study file' in r.stderr
