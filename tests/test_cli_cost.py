"""The cost commands through the real entry point, as a user or a script drives them."""

import io
import json

import pandas as pd
import pytest
from conftest import error_lines
from typer.testing import CliRunner

from effscale.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_models_json_lists_every_backbone_with_cost():
    r = run("models", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = {row["model"]: row for row in json.loads(r.stdout)}
    assert rows["resnet50"]["params"] == 25_557_032
    assert rows["efficientnet-b0"]["gflops"] == pytest.approx(0.3858, abs=1e-4)


def test_cost_prints_the_stage_table():
    r = run("cost", "resnet50", "--width", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["w"] == 2 and data["params"] > 90_000_000
    s1 = next(s for s in data["stages"] if s["stage"] == "s1")
    assert (s1["channels"], s1["base_channels"]) == (512, 256)


def test_cost_csv_is_one_table_and_the_stages_are_their_own():
    r = run("cost", "efficientnet-b0", "--phi", "1", "--format", "csv")
    assert r.exit_code == 0, r.output
    table = pd.read_csv(io.StringIO(r.stdout))
    assert len(table) == 1 and table["flops"].dtype.kind == "i"
    assert table["gflops"][0] == pytest.approx(table["flops"][0] / 1e9, abs=1e-4)
    r = run("cost", "efficientnet-b0", "--stages", "--format", "csv")
    assert r.exit_code == 0, r.output
    stages = pd.read_csv(io.StringIO(r.stdout))
    assert stages["stage"].tolist()[:2] == ["stem", "s1"] and stages["stage"].iloc[-1] == "head"


@pytest.mark.parametrize(
    "args",
    [
        ["models", "resnet*"],
        ["cost", "resnet50", "--width", "2"],
        ["table", "efficientnet"],
        ["table", "table7"],
        ["compound", "--phi", "0..2", "--cost-only"],
    ],
)
def test_json_carries_exact_integers_beside_rounded_figures(args):
    r = run(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    rows = data if isinstance(data, list) else [data]
    counted = [row for row in rows if row.get("gflops") is not None]
    assert counted
    for row in counted:
        assert isinstance(row["flops"], int) and isinstance(row["params"], int)
        assert row["gflops"] == pytest.approx(row["flops"] / 1e9, abs=1e-4)


def test_table_efficientnet_within_five_percent_of_the_paper():
    r = run("table", "efficientnet", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["model"] for row in rows] == [f"efficientnet-b{i}" for i in range(8)]
    assert all(abs(row["deviation_pct"]) <= 5 for row in rows)


@pytest.mark.parametrize("name", ["table3", "table7"])
def test_paper_tables_show_our_flops_beside_the_paper(name):
    r = run("table", name, "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    counted = [row for row in rows if row["gflops"] is not None]
    assert counted and all(row["paper_gflops"] for row in counted)
    compound = (
        next(row for row in rows if row["paper_model"].startswith("Compound"))
        if name == "table7"
        else None
    )
    if compound:  # d=1.4, w=1.2, r=1.3 at 292 px is the paper's 1.8 B exactly
        assert compound["deviation_pct"] == pytest.approx(0, abs=1)


def test_compound_cost_only_json_one_row_per_phi():
    r = run(
        "compound", "--model", "efficientnet-b0", "--phi", "0..7", "--cost-only", "--format", "json"
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["phi"] for row in rows] == list(range(8))
    for row in rows:
        assert row["target_flops_ratio"] == pytest.approx(1.9203 ** row["phi"], rel=1e-3)
        assert row["realised_flops_ratio"] > 0
    assert rows[0]["realised_flops_ratio"] == 1


def test_compound_official_table():
    r = run(
        "compound", "--phi", "0..7", "--table", "official", "--cost-only", "--base-resolution",
        "224", "--format", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [row["resolution"] for row in json.loads(r.stdout)] == [
        224,
        240,
        260,
        300,
        380,
        456,
        528,
        600,
    ]


@pytest.mark.parametrize(
    "args, says",
    [
        (["cost", "resnet-50"], "did you mean resnet50"),
        (["cost", "resnet50", "--width", "0"], "width must be a positive number"),
        (["cost", "resnet50", "--resolution", "16"], "use at least 32 px"),
        (["cost", "resnet50", "--phi", "1", "--depth", "2"], "cannot be combined"),
        (["cost", "resnet50", "--format", "xml"], "'xml' is not one of"),
        (["compound", "--phi", "", "--cost-only"], "empty range"),
        (["compound", "--phi", "1..x", "--cost-only"], "cannot read"),
        (["compound", "--phi", "1.5", "--table", "official", "--cost-only"], "B0-B7"),
        (["table", "table9"], "unknown table"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, says):
    r = run(*args)
    assert r.exit_code == 2
    assert says in r.stderr
    assert len(error_lines(r.stderr)) == 1
    assert "Traceback" not in r.output


def test_compound_flops_solves_phi_for_a_realised_target():
    r = runner.invoke(
        app,
        ["compound", "--flops", "4x", "--cost-only", "--base-resolution", "224",
         "--format", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["realised_flops_ratio"] == pytest.approx(4.0, rel=0.02)
    assert row["target_flops_ratio"] < 3.5  # what Equation 3's phi for 4x would miss by
    for args, says in (
        (["--flops", "4x", "--phi", "2"], "--flops and --phi both choose phi"),
        (["--flops", "four"], "not ratios"),
        (["--flops", "0.5x"], "give 1x or more"),
    ):
        r = runner.invoke(app, ["compound", *args, "--cost-only"])
        assert r.exit_code == 2 and says in r.stderr, r.output
        assert len(r.stderr.strip().splitlines()) == 1
