"""Training budgets as an axis of a study, the training protocol, and large-image preprocessing."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import error_lines
from typer.testing import CliRunner

from effscale.cli import app
from effscale.data import load_dataset
from effscale.data.augment import eval_transform, random_resized_crop
from effscale.errors import EffscaleError
from effscale.recipe import PROTOCOL, Recipe, budget, parse_budgets
from effscale.report import write_report
from effscale.report.report import trend_sentences
from effscale.report.verdicts import trend_by_budget
from effscale.rundir import StudyDir
from effscale.scaling import make_variant
from effscale.study.engine import run_study, training_order
from effscale.study.files import load_study
from effscale.study.plan import Point
from effscale.training.loop import late_gain, train

runner = CliRunner()
RESULTS = Path(__file__).parent.parent / "docs" / "results"

STUDY = """
name = "budgets"
model = "resnet18"
data = "synthetic"
budget = "smoke"
samples = [256, 512]
seeds = 2
base_width = 0.25
base_depth = 0.5

[recipe]
batch_size = 64

[[compound]]
phi = [1]
match_single = true
"""


# -- stored points and the protocol -------------------------------------------------------


@pytest.mark.parametrize("study", sorted(RESULTS.glob("*/study.json")), ids=lambda p: p.parent.name)
def test_stored_points_keep_their_keys(study):
    """Recipe fields added since (the protocol, precise BN, crops) must not move the keys
    of points already stored, or their results would be orphaned."""
    points = json.loads(study.read_text())["points"]
    assert points
    for p in points:
        assert Point.from_dict(p).key == p["key"]


def test_points_made_the_old_way_are_kept_apart_and_not_trained(tmp_path):
    stored = json.loads((RESULTS / "cifar10" / "study.json").read_text())["points"][0]
    old = Point.from_dict(stored)
    assert old.recipe.protocol == 1 and old.recipe.bn_images == 0
    now = Point(old.variant, old.seed, budget("short"), old.data, old.roles)
    assert now.recipe.protocol == PROTOCOL and now.key != old.key
    tiny = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)
    with pytest.raises(EffscaleError, match="protocol 1"):
        train(tiny, load_dataset("synthetic"), old.recipe, tmp_path, device="cpu")


def test_recipe_round_trips_through_its_dict():
    r = budget("short", crop_area=0.35)
    assert Recipe.from_dict(r.to_dict()) == r


# -- budgets ------------------------------------------------------------------------------


def test_budgets_read_like_a_person_writes_them():
    assert parse_budgets("100k,200k") == [100_000, 200_000]
    assert parse_budgets("1.5M") == [1_500_000]
    assert parse_budgets([200_000, "100_000"]) == [100_000, 200_000]
    assert parse_budgets(4096) == [4096]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--samples", "100k,lots"], "budget 'lots' is not a positive whole number"),
        (["--samples", "0"], "budget '0' is not a positive"),
        (["--samples", "-5"], "budget '-5' is not a positive"),
        (["--samples", ""], "not a positive whole number"),
        (["--samples", "100", "--epochs", "2"], "--epochs and --samples both set the budget"),
    ],
)
def test_bad_budgets_on_the_command_line(args, says):
    r = runner.invoke(app, ["sweep", "--dim", "width", "--data", "synthetic", *args])
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(error_lines(r.stderr)) == 1


@pytest.mark.parametrize(
    "line, says",
    [
        ("samples = []", "no training budget given"),
        ("samples = [0]", "budget 0 is not a positive"),
        ('samples = ["big"]', "budget 'big' is not a positive"),
        ("samples = 1.5", "'samples' must be int or list or str"),
    ],
)
def test_bad_budgets_in_a_study_file(tmp_path, line, says):
    f = tmp_path / "bad.toml"
    f.write_text(STUDY.replace("samples = [256, 512]", line))
    r = runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(error_lines(r.stderr)) == 1


def test_each_budget_is_its_own_points(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(STUDY)
    study = load_study(f)
    by_budget = pd.Series([p.recipe.samples for p in study.points]).value_counts()
    assert by_budget.to_dict() == {256: 10, 512: 10}  # base, compound, 3 matches x 2 seeds
    keys = {p.key for p in study.points}
    assert len(keys) == 20


def test_a_study_extended_by_a_budget_trains_only_the_new_points(tmp_path, monkeypatch):
    f = tmp_path / "s.toml"
    f.write_text(STUDY.replace("samples = [256, 512]", "samples = [256]"))
    run_study(load_study(f), tmp_path / "run", device="cpu")
    first = StudyDir(tmp_path / "run").results()
    trained = []
    import effscale.training.loop as t

    real = t.fit
    monkeypatch.setattr(t, "fit", lambda *a, **k: trained.append(1) or real(*a, **k))
    f.write_text(STUDY)
    df = run_study(load_study(f), tmp_path / "run", device="cpu")
    assert len(trained) == 10  # the 512-sample points alone
    assert set(df["budget"]) == {256, 512}
    old = df[df["budget"] == 256].set_index("key")["top1"]
    assert old.to_dict() == first.set_index("key")["top1"].to_dict()

    result = write_report(tmp_path / "run")
    budgets = {r["budget"] for r in result["compound_vs_single"]}
    assert budgets == {256, 512}
    assert all("still_improving" in r for r in result["compound_vs_single"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "How the verdict moves with the training budget" in report
    assert "256 and 512 samples per point" in report
    variants = report.split("## Variants (mean over seeds)")[1].strip().splitlines()
    header = [c.strip() for c in variants[0].strip("|").split("|")]
    bases = [r for r in variants[2:] if r.startswith("|") and "| base |" in r]
    at = [[c.strip() for c in r.strip("|").split("|")][header.index("budget")] for r in bases]
    assert sorted(at) == ["256", "512"]  # one base row per budget, told apart by its column
    figures = tmp_path / "run" / "figures"
    assert (figures / "budget_trend.png").stat().st_size > 0
    assert (figures / "figure8-256.png").exists() and (figures / "figure8-512.png").exists()

    r = runner.invoke(app, ["report", str(tmp_path / "run")], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    table = r.stdout.split("Compound minus best single dimension")[1]
    header = table.splitlines()[2]
    assert "budget" in header and "φ" in header  # the two rows are told apart on screen
    assert "…" not in r.stdout  # an 80-column terminal shows every header and value whole
    assert "compound − best" in r.stdout and "at 256 samples" in r.stdout


def test_the_budget_trend_keeps_coefficient_choices_apart():
    def row(scaling, budget, diff):
        return {"model": "m", "scaling": scaling, "phi": 1.0, "budget": budget,
                "best_single": "width", "compound_minus_best": diff, "difference_std": 0.1,
                "seeds": 3, "verdict": "-", "still_improving": "none"}  # fmt: skip

    compound = [
        row("paper", 100, -3.0), row("searched", 100, -1.0), row("paper", 200, -2.0),
        row("searched", 200, 0.5), row("only once", 100, 9.0),
        row("width alone", 100, 0.0), row("width alone", 200, 0.0),
    ]  # fmt: skip
    for r in compound[-2:]:  # zero by construction, at every budget: no trend to draw
        r["verdict"] = "not a test: the compound network is width alone"
    compound[3]["seeds"] = 1  # the searched choice's longer budget is still on one seed
    trend = trend_by_budget(compound)
    assert [(r["scaling"], r["budget"]) for r in trend] == [
        ("paper", 100), ("paper", 200), ("searched", 100), ("searched", 200)
    ]  # a choice measured at one budget has no trend  # fmt: skip
    assert trend_sentences(trend) == [
        "φ = 1 (paper): compound − best -3.00 at 100 samples, -2.00 at 200 (+1.00 points)",
        "φ = 1 (searched): compound − best -1.00 at 100 samples (3 seeds), +0.50 at 200 "
        "(1 seed) (+1.50 points)",
    ]
    other = [{**r, "model": "n", "compound_minus_best": 5.0} for r in compound[:3]]
    both = trend_sentences(trend_by_budget(compound + other))  # two models stay apart too
    assert both[0] == (
        "φ = 1 (paper) of m: compound − best -3.00 at 100 samples, -2.00 at 200 (+1.00 points)"
    )
    assert both[-1] == (
        "φ = 1 (paper) of n: compound − best +5.00 at 100 samples, +5.00 at 200 (+0.00 points)"
    )


def test_a_study_trains_seed_by_seed_and_the_quickest_points_first():
    small = make_variant("resnet18", base_width=0.25)
    large = make_variant("resnet18", w=2.0, base_width=0.25)  # about 4x the FLOPs
    long, short = Recipe(samples=1000), Recipe(samples=100)
    points = [
        Point(small, 1, short, "synthetic", ("base",)),
        Point(small, 0, long, "synthetic", ("base",)),
        Point(large, 0, short, "synthetic", ("width",)),
    ]
    order = [(p.seed, p.variant.w, p.recipe.samples) for p in training_order(points)]
    # the larger network's short budget is a quarter of the time of the smaller one's long
    assert order == [(0, 2.0, 100), (0, 1.0, 1000), (1, 1.0, 100)]


def test_a_run_records_whether_it_was_still_improving():
    metrics = [{"samples": s, "top1": t} for s, t in ((100, 40.0), (200, 50.0), (300, 56.0))]
    assert late_gain(metrics) == (6.0, 200)
    metrics.append({"samples": 400, "top1": 57.0})
    assert late_gain(metrics) == (1.0, 300)
    assert late_gain(metrics[:1]) == (None, None)


# -- large images -------------------------------------------------------------------------


def test_random_resized_crops_do_not_alias_when_shrinking():
    """A one-pixel checkerboard at 224 px shrunk to 32 px is flat grey with an antialiased
    filter; point sampling (or plain bilinear) would turn it into stripes and blotches."""
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    board = (((yy + xx) % 2) * 255).to(torch.uint8).expand(8, 3, 224, 224).contiguous()
    out = random_resized_crop(board, 32, torch.Generator().manual_seed(0), min_area=0.5)
    assert out.shape == (8, 3, 32, 32)
    assert (out - 127.5).abs().max() < 20


def test_evaluation_crops_the_centre_of_large_images():
    x = torch.zeros(2, 3, 224, 224, dtype=torch.uint8)
    x[..., 14:210, 14:210] = 200  # the central 0.875 of the image is bright, the border dark
    out = eval_transform(x, 64, (0.0,) * 3, (1.0,) * 3, crop=0.875)
    assert out.shape == (2, 3, 64, 64)
    assert torch.allclose(out, torch.full_like(out, 200 / 255))
    whole = eval_transform(x, 64, (0.0,) * 3, (1.0,) * 3)
    assert whole[..., 0, 0].max() < 100 / 255
