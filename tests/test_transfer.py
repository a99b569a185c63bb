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


# Table 5 as issue 28 asks: the Figure-7 set pre-trained once, fine-tuned with 3 seeds, and
# each network trained on the target from scratch too.
FIGURE7_TRANSFER = (
    '[[transfer]]\nfinetune = "synthetic:8"\nphi = [1]\nmatch_single = true\n'
    "pretrain_seeds = 1\nscratch = true\nfinetune_samples = 128\n"
)
COMPOUND_SET = "[[compound]]\nphi = [1]\nmatch_single = true\n"


def test_a_transfer_of_the_figure7_set_pretrains_once_and_trains_from_scratch_beside(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text(study_toml(FIGURE7_TRANSFER, seeds=3))
    study = load_study(f)
    pre = [p for p in study.points if p.roles == ("pretrain",)]
    tune = [p for p in study.points if p.roles == ("transfer",)]
    scratch = [p for p in study.points if p.roles == ("scratch",)]
    assert len(pre) == 5 and len(tune) == len(scratch) == 15  # base, compound, 3 alone
    assert {p.seed for p in pre} == {0} and {p.data for p in pre} == {"synthetic"}
    by_key = {p.key: p for p in pre}
    for p in tune:
        assert by_key[p.init_from].variant == p.variant  # every seed from the one checkpoint
    assert {(p.variant, p.seed, p.recipe) for p in tune} == {
        (p.variant, p.seed, p.recipe) for p in scratch
    }
    assert all(p.init_from is None and p.data == "synthetic:8" for p in scratch)
    # the pre-training points are the compound study's points: a run of it is reused
    g = tmp_path / "c.toml"
    g.write_text(study_toml(COMPOUND_SET, seeds=1))
    assert {p.key for p in pre} == {p.key for p in load_study(g).points}


def test_pretrain_seeds_beyond_the_study_seeds_is_refused_in_one_line(tmp_path):
    text = study_toml(FIGURE7_TRANSFER.replace("pretrain_seeds = 1", "pretrain_seeds = 4"))
    f, r = run_study_file(runner, app, tmp_path, text)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert f"{f}:18: pretrain_seeds = 4: give 1 to 2" in r.stderr


def test_a_transfer_point_reuses_a_finished_pretraining_instead_of_retraining_it(
    tmp_path, monkeypatch
):
    import effscale.training.loop

    single = TRANSFER.replace(
        "finetune_samples = 128", "finetune_samples = 128\npretrain_seeds = 1"
    )
    f = tmp_path / "t.toml"
    f.write_text(study_toml(single, seeds=2, name="transfer"))
    first, second = tmp_path / "first", tmp_path / "second"
    r = runner.invoke(app, ["run", str(f), "--out", str(first), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    (pre,) = [p for p in load_study(f).points if p.roles == ("pretrain",)]
    trained = []
    real_train = effscale.training.loop.train

    def counting(*args, **kwargs):
        trained.append(Path(args[3]).name)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(effscale.training.loop, "train", counting)
    r = runner.invoke(
        app, ["run", str(f), "--out", str(second), "--device", "cpu", "--reuse", str(first)]
    )
    assert r.exit_code == 0, r.output
    assert "took 1 finished points from" in r.output
    assert pre.key not in trained and len(trained) == 2  # the two fine-tunes only
    for name in ("result.json", "checkpoint.pt"):
        a, b = first / "points" / pre.key / name, second / "points" / pre.key / name
        assert a.read_bytes() == b.read_bytes()
    config = json.loads((second / "points" / trained[0] / "config.json").read_text())
    assert config["identity"]["init_from"] == str(second / "points" / pre.key / "checkpoint.pt")


def test_reuse_brings_the_checkpoint_a_stored_result_left_behind(tmp_path):
    """Results are kept without their checkpoints (docs/results): a fine-tune still to train
    there takes its source's checkpoint from the directory --reuse names."""
    import shutil

    single = TRANSFER.replace(
        "finetune_samples = 128", "finetune_samples = 128\npretrain_seeds = 1"
    )
    f = tmp_path / "t.toml"
    f.write_text(study_toml(single, seeds=2, name="transfer"))
    first, kept = tmp_path / "first", tmp_path / "kept"
    assert (
        runner.invoke(app, ["run", str(f), "--out", str(first), "--device", "cpu"]).exit_code == 0
    )
    shutil.copytree(first, kept, ignore=shutil.ignore_patterns("checkpoint.pt"))
    (pre,) = [p for p in load_study(f).points if p.roles == ("pretrain",)]
    tune = [p for p in load_study(f).points if p.init_from == pre.key]
    shutil.rmtree(kept / "points" / tune[-1].key)  # one fine-tune still to train
    r = runner.invoke(
        app, ["run", str(f), "--out", str(kept), "--device", "cpu", "--reuse", str(first)]
    )
    assert r.exit_code == 0, r.output
    assert (kept / "points" / pre.key / "checkpoint.pt").is_file()
    assert (kept / "points" / tune[-1].key / "result.json").is_file()


def test_reuse_takes_no_point_whose_config_is_another_run(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text(study_toml(TRANSFER, seeds=1, name="transfer"))
    first = tmp_path / "first"
    r = runner.invoke(app, ["run", str(f), "--out", str(first), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    (pre,) = [p for p in load_study(f).points if p.roles == ("pretrain",)]
    config_file = first / "points" / pre.key / "config.json"
    config = json.loads(config_file.read_text())
    config["identity"]["seed"] = 7  # a different run filed under the key
    config_file.write_text(json.dumps(config))
    r = runner.invoke(
        app, ["run", str(f), "--dry-run", "--out", str(tmp_path / "x"), "--reuse", str(first)]
    )
    assert r.exit_code == 0, r.output
    assert "0 finished points to take" in r.output
    r = runner.invoke(app, ["run", str(f), "--dry-run", "--reuse", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "not a run directory" in r.stderr


def test_the_transfer_table_has_scratch_and_gain_and_the_compound_question(tmp_path):
    from effscale.report.transfer import compound_transfers_better, transfer_table
    from effscale.scaling import DIMENSIONS

    f = tmp_path / "t.toml"
    f.write_text(study_toml(FIGURE7_TRANSFER, seeds=3))
    points = load_study(f).points
    # fine-tuned top-1 by kind: compound 80 + seed, each dimension lower by a known margin
    margin = {"base": 20.0, "compound": 0.0, "depth": 3.0, "width": 1.0, "resolution": 2.0}
    from effscale.report.transfer import variant_kind

    rows = []
    for p in points:
        kind = variant_kind(p.variant)
        top1 = {"pretrain": 70.0, "transfer": 80.0 - margin[kind] + p.seed * 0.5,
                "scratch": 60.0 + p.seed * (p.seed - 1)}[p.roles[0]]  # fmt: skip
        rows.append({"key": p.key, "top1": top1, "status": "done", "flops": 1e6, "params": 1e3})
    df = pd.DataFrame(rows)
    table = {r["variant"]: r for r in transfer_table(df, points)}
    assert set(table) == {"base", "compound", *DIMENSIONS}
    c = table["compound"]
    assert c["finetune_top1"] == pytest.approx(80.5) and c["scratch_top1"] == pytest.approx(
        60 + 2 / 3
    )
    assert c["gain"] == pytest.approx(80.5 - (60 + 2 / 3))  # paired by seed
    assert (c["pretrain_seeds"], c["finetune_seeds"], c["scratch_seeds"]) == (1, 3, 3)
    question = {r["against"]: r for r in compound_transfers_better(df, points)}
    assert set(question) == set(DIMENSIONS)
    assert question["width"]["compound_minus"] == pytest.approx(1.0)
    assert question["depth"]["std"] == 0 and question["depth"]["verdict"] == "supported"
    assert "one pre-training per variant" in question["depth"]["scope"]
