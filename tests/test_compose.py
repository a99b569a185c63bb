"""Studies that compose: a sweep or compound scaling run into another's directory extends
it; `effscale report DIR1 DIR2 --out DIR` reports directories trained alike together and
refuses a mixture in one line."""

import json

import pandas as pd
from typer.testing import CliRunner

from effscale.cli import app
from effscale.rundir import StudyDir

runner = CliRunner()
TINY = ["--model", "resnet18", "--data", "synthetic", "--budget", "smoke", "--samples", "128"]
TINY += ["--base-width", "0.25", "--base-depth", "0.5", "--device", "cpu"]


def sweep(dim: str, value: str, out, *more: str):
    return runner.invoke(app, ["sweep", *TINY, "--dim", dim, "--values", value, "--out",
                               str(out), *more])  # fmt: skip


def test_a_depth_sweep_extends_a_width_sweeps_directory(tmp_path):
    out = tmp_path / "run"
    assert sweep("width", "1.5", out).exit_code == 0
    r = sweep("depth", "2", out)
    assert r.exit_code == 0, r.output
    assert "adds 1 point to it" in " ".join(r.output.split())
    study = StudyDir(out).load_study()
    assert study.name == "sweep-resnet18-width"  # the directory keeps its study's name
    roles = {role for p in study.points for role in p.roles}
    assert {"base", "width", "depth"} <= roles
    r = runner.invoke(app, ["compound", *TINY, "--phi", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(out / "results.csv")) == 4  # base, w, d, compound
    r = sweep("width", "1.5", out, "--lr", "0.5")  # trained otherwise: refused before training
    assert r.exit_code == 2 and "holds a different study" in r.stderr


def test_report_of_two_directories_trained_alike(tmp_path):
    a, b, both = tmp_path / "a", tmp_path / "b", tmp_path / "both"
    assert sweep("width", "1.5", a).exit_code == 0
    assert sweep("depth", "2", b).exit_code == 0
    r = runner.invoke(app, ["report", str(a), str(b), "--out", str(both), "--format", "json"])
    assert r.exit_code == 0, r.output
    results = pd.read_csv(both / "results.csv")
    assert len(results) == 3 and (results["status"] == "done").all()  # the base is shared
    assert {"width", "depth"} <= {role for roles in results["roles"] for role in roles.split(",")}
    assert json.loads(r.stdout)["report"] == str(both / "report.md")
    assert not (both / "points" / results["key"][0] / "checkpoint.pt").exists()


def test_report_refuses_a_mixture_and_needs_out(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert sweep("width", "1.5", a).exit_code == 0
    other = [x if x != "0.25" else "0.5" for x in TINY]  # another base width
    r = runner.invoke(app, ["sweep", *other, "--dim", "depth", "--values", "2", "--out", str(b)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(a), str(b), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.output
    assert "trained otherwise" in r.stderr and "base width" in r.stderr
    r = runner.invoke(app, ["report", str(a), str(a / ".." / "a"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "named twice" in r.stderr
    r = runner.invoke(app, ["report", str(a), str(b)])
    assert r.exit_code == 2 and "give --out DIR" in r.stderr
