"""Command-line conventions: version, completion, one-line errors, choices in help."""

import json
from pathlib import Path

import pytest
from conftest import error_lines
from typer.testing import CliRunner

import effscale
from effscale.cli import app

runner = CliRunner()


def run(*args, **kw):
    return runner.invoke(app, list(args), **kw)


def test_version_prints_the_version():
    r = run("--version")
    assert r.exit_code == 0
    assert r.stdout.strip() == f"effscale {effscale.__version__}"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--bogus"], "No such option: --bogus (see `effscale --help`)"),
        (["models", "--bogus"], "see `effscale models --help`"),
        (["no-such-command"], "No such command"),
        (["sweep", "--epochs", "2", "--samples", "100k"], "--epochs and --samples"),
        (["compound", "--epochs", "2", "--samples", "100k"], "--epochs and --samples"),
        (["search", "--epochs", "2", "--samples", "100k"], "--epochs and --samples"),
        (["train", "resnet18", "--epochs", "2", "--samples", "100k"], "--epochs and --samples"),
        (["run", "quick", "--detect", "1"], "--detect sizes a study: it goes with --dry-run"),
    ],
)
def test_bad_input_anywhere_is_one_line_and_exit_code_2(args, says):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert says in r.stderr
    assert len(error_lines(r.stderr)) == 1
    assert "Traceback" not in r.output


def test_no_arguments_show_the_help():
    r = run()
    assert "Usage" in r.output and "sweep" in r.output


def test_help_offers_shell_completion_and_the_version():
    r = run("--help", env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for option in ("--install-completion", "--show-completion", "--version"):
        assert option in r.stdout


@pytest.mark.parametrize(
    "command, choices",
    [
        ("sweep", ["[width|depth|resolution]", "[smoke|short|paper]", "[local|ray|slurm]"]),
        ("compound", ["[formula|official]", "[auto|cpu|cuda|cuda:N]"]),
        ("train", ["[smoke|short|paper]", "<table|csv|json|markdown>"]),
        ("run", ["[smoke|short|paper]"]),
    ],
)
def test_help_shows_the_choices(command, choices):
    r = run(command, "--help", env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for text in choices:
        assert text in r.stdout


def test_studies_lists_the_packaged_study_files():
    r = run("studies", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert {"quick", "figure3", "figure8", "cifar10", "transfer"} <= set(rows)
    assert rows["quick"]["data"] == "embedded" and rows["quick"]["description"]
    assert Path(rows["quick"]["file"]).is_file()


def test_studies_say_which_need_a_download_or_a_path():
    r = run("studies", "--format", "json")
    needs = {row["name"]: row["needs"] for row in json.loads(r.stdout)}
    assert needs["transfer"] == "download: cifar100"  # its fine-tune set, not its data
    assert needs["cifar10"] == "download: cifar10" and needs["quick"] == "-"
    assert needs["imagenette"] == "path: imagenette"  # a folder effscale cannot fetch
    csv = run("studies", "--format", "csv").stdout.splitlines()
    assert "needs" in csv[0].split(",") and any("download: cifar100" in x for x in csv)
    assert "needs" in run("studies", env={"COLUMNS": "200"}).stdout


def test_a_study_is_found_by_name_here_or_in_the_package(tmp_path, monkeypatch):
    from effscale.errors import EffscaleError
    from effscale.study.packaged import find_study, packaged_studies

    monkeypatch.chdir(tmp_path)
    assert find_study("quick") == packaged_studies()["quick"]
    assert find_study("studies/quick.toml") == packaged_studies()["quick"]
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "quick.toml").write_text("# mine\n")
    assert find_study("quick") == Path("studies/quick.toml")  # the working directory's first
    with pytest.raises(EffscaleError, match="packaged study: .*quick"):
        find_study("no-such-study")


def test_a_dry_run_says_how_many_seeds_a_difference_needs(tmp_path):
    """A 1-point difference at a per-seed spread of 1 point: 10 seeds (paired t, 80 %)."""
    r = run("run", "quick", "--dry-run", "--detect", "1", "--spread", "1",
            "--out", str(tmp_path / "q"))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "1-point difference" in r.output and ": 10 seeds; this study plans 2" in r.output
    r = run("run", "quick", "--dry-run", "--detect", "1", "--out", str(tmp_path / "q"))
    assert r.exit_code == 2 and "give --spread" in r.stderr  # nothing to measure it from
