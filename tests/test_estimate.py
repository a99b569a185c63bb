"""Plans and estimates: points and FLOPs before anything trains, the speed probe and its
cache, --dry-run, the question before a long run, and estimated vs measured time."""

import json

import pytest
from typer.testing import CliRunner

from effscale.cli import app
from effscale.cost import count_cost
from effscale.recipe import budget
from effscale.report import write_report
from effscale.study import estimate
from effscale.study.engine import run_study
from effscale.study.estimate import Speed, StudyClock, estimate_study, point_compute
from effscale.study.plan import Base, Point, Study, plan_sweep

runner = CliRunner()
RECIPE = budget("smoke", samples=512, batch_size=64)
BASE = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
SPEED = Speed(1e9, "cpu", "test CPU", 1, "fixed for the tests")
SWEEP = [
    "sweep", "--model", "resnet18", "--base-width", "0.25", "--base-depth", "0.5", "--dim",
    "width", "--values", "1.5", "--data", "synthetic", "--budget", "smoke", "--samples", "512",
]  # fmt: skip


def tiny_study() -> Study:
    study = Study("tiny", {"kind": "test"})
    study.add_all(plan_sweep(BASE, "width", [1.5], [0], RECIPE, "synthetic"))
    return study


@pytest.fixture
def fixed_speed(monkeypatch):
    """No probe: every estimate divides by SPEED (or what the test sets)."""
    speed = {"value": SPEED}
    monkeypatch.setattr(estimate, "measure_speed", lambda *a, **k: speed["value"])
    return speed


def test_a_point_costs_three_forward_passes_a_sample_plus_its_evaluations():
    point = Point(BASE.variant(w=1.5), 0, RECIPE, "synthetic")
    flops = count_cost(point.variant, 10).flops
    c = point_compute(point, (1000, 200, 10))  # 1000 train images: 15 batches of 64 an epoch
    assert c["flops"] == flops and c["trained_samples"] == 512  # under an epoch: as asked
    assert c["train_flops"] == 3 * flops * 512
    one_eval = 200 + min(RECIPE.bn_images, 1000)
    assert c["compute_flops"] == 3 * flops * 512 + flops * one_eval
    longer = point_compute(Point(point.variant, 0, budget("smoke", samples=2000), "x"),
                           (1000, 200, 10))  # fmt: skip
    assert longer["trained_samples"] == 1920  # two whole epochs of 960
    assert longer["compute_flops"] - longer["train_flops"] == 2 * flops * one_eval


def test_the_estimate_is_compute_over_the_measured_speed(tmp_path):
    study = tiny_study()
    plan = estimate_study(study, tmp_path / "none", speed=SPEED)
    assert [r["covered"] for r in plan.rows] == [False, False]
    for row in plan.rows:
        assert row["est_seconds"] == pytest.approx(row["compute_flops"] / 1e9, abs=0.05)
        assert {"d", "w", "r", "resolution", "flops", "params", "samples", "seed"} <= set(row)
        assert isinstance(row["flops"], int) and row["samples"] == 512
    assert plan.total_seconds == pytest.approx(sum(r["compute_flops"] for r in plan.rows) / 1e9,
                                               rel=1e-3)  # fmt: skip
    assert plan.wall_seconds == plan.total_seconds  # one point at a time
    assert "2 of 2 points to train" in plan.sentence() and "1 GFLOP/s" in plan.sentence()


def test_stored_results_cover_points_and_estimates_are_kept_for_the_report(tmp_path):
    study = tiny_study()
    plan = estimate_study(study, tmp_path, speed=SPEED)
    run_study(study, tmp_path, device="cpu", estimates=plan)
    kept = estimate.load_estimates(tmp_path)
    assert set(kept) == {p.key for p in study.points}
    assert kept[study.points[0].key]["seconds"] == pytest.approx(plan.seconds[study.points[0].key],
                                                                 abs=0.01)  # fmt: skip
    again = estimate_study(study, tmp_path, speed=Speed(2e9, "cpu", "x", 1, "other"))
    assert all(r["covered"] for r in again.rows) and again.total_seconds == 0
    estimate.save_estimates(tmp_path, again)  # finished points keep the estimate they ran with
    assert estimate.load_estimates(tmp_path) == kept
    result = write_report(tmp_path)
    timing = result["timing"]
    assert len(timing["points"]) == 2
    for row in timing["points"]:
        assert row["measured_seconds"] > 0 and row["ratio"] == pytest.approx(
            row["measured_seconds"] / row["est_seconds"], rel=0.05, abs=0.01
        )
    assert (
        "## Time: estimated before training, and measured" in (tmp_path / "report.md").read_text()
    )


def test_the_speed_probe_is_cached_per_device_and_threads(monkeypatch):
    monkeypatch.setattr(estimate, "PROBE_SECONDS", 0.05)
    first = estimate.measure_speed("cpu", threads=1, fresh=True)
    assert first.flops_per_s > 0 and not first.cached and first.threads == 1
    monkeypatch.setattr(estimate, "_probe", lambda dev: pytest.fail("probed again"))
    again = estimate.measure_speed("cpu", threads=1)
    assert again.cached and again.flops_per_s == first.flops_per_s
    with pytest.raises(BaseException, match="probed again"):
        estimate.measure_speed("cpu", threads=3)  # another thread count: its own measurement


def test_the_study_clock_counts_down_from_the_estimates(monkeypatch):
    now = {"t": 100.0}
    monkeypatch.setattr(estimate.time, "monotonic", lambda: now["t"])
    clock = StudyClock({"a": 10.0, "b": 20.0, "c": 30.0}, ["a", "b", "c"], parallel=2)
    assert clock.seconds_left() == pytest.approx(30.0)  # 60 point-seconds, two at a time
    clock.start("a")
    clock.progress("a", 50, 100)
    assert clock.seconds_left() == pytest.approx(27.5)
    now["t"] += 20.0  # a took twice its estimate: the rest is expected to, too
    clock.done("a")
    assert clock.seconds_left() == pytest.approx(50.0)
    assert StudyClock({"a": 1.0}, ["a", "b"], 1).seconds_left() is None  # b has no estimate


def test_dry_run_prints_points_and_estimate_and_trains_nothing(tmp_path, fixed_speed):
    out = tmp_path / "out"
    r = runner.invoke(app, [*SWEEP, "--dry-run", "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["points"] == 2 and plan["to_train"] == 2 and plan["est_seconds"] > 0
    assert [row["w"] for row in plan["plan"]] == [1.0, 1.5]
    assert not out.exists()  # nothing written
    r = runner.invoke(app, [*SWEEP, "--dry-run", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Dry run, nothing trained" in r.stdout and "est" in r.stdout


SYNTHETIC_SMOKE = ["--data", "synthetic", "--budget", "smoke"]
SEARCH = ["search", "--model", "resnet18", "--step", "0.5", "--max", "2", "--tolerance", "0.5"]
SEARCH += ["--flops-tolerance", "1", *SYNTHETIC_SMOKE]


@pytest.mark.parametrize(
    "args",
    [
        ["train", "resnet18", "--base-width", "0.25", "--data", "synthetic", "--budget", "smoke"],
        ["compound", "--model", "resnet18", "--phi", "1", *SYNTHETIC_SMOKE],
        SEARCH,
        ["run", "quick", "--data", "synthetic"],
    ],
)
def test_every_training_command_has_a_dry_run(tmp_path, fixed_speed, args):
    out = tmp_path / "out"
    r = runner.invoke(app, [*args, "--dry-run", "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["points"] >= 1 and all("est_seconds" in row for row in plan["plan"])
    assert not out.exists()


def test_a_long_run_asks_on_a_terminal_and_only_there(tmp_path, fixed_speed, monkeypatch):
    import effscale.cli.running as cli_study
    import effscale.study.engine as engine

    fixed_speed["value"] = Speed(1.0, "cpu", "slow", 1, "1 FLOP/s: years")
    started = []
    monkeypatch.setattr(engine, "run_study", lambda *a, **k: started.append(1) or exit(3))
    monkeypatch.setattr(cli_study, "_interactive", lambda: True)
    r = runner.invoke(app, [*SWEEP, "--out", str(tmp_path / "o")], input="n\n")
    assert r.exit_code == 1 and "Start?" in r.output and "not started" in r.stderr
    assert not started
    r = runner.invoke(app, [*SWEEP, "--out", str(tmp_path / "o"), "--yes"])
    assert started and "Start?" not in r.output  # --yes: no question
    monkeypatch.setattr(cli_study, "_interactive", lambda: False)
    r = runner.invoke(app, [*SWEEP, "--out", str(tmp_path / "o")])
    assert len(started) == 2 and "Start?" not in r.output  # no terminal: never asks


def test_the_estimate_is_printed_before_a_run(tmp_path, fixed_speed):
    r = runner.invoke(app, [*SWEEP, "--out", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "2 of 2 points to train" in r.stdout and "estimated" in r.stdout
    assert json.loads((tmp_path / "estimates.json").read_text())["points"]
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert "time: estimated" in r.stdout and "measured" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--model", "resnet18", "--values", "2", "--cost-only", "--format", "json"],
        ["compound", "--model", "resnet18", "--phi", "1", "--cost-only", "--format", "json"],
    ],
)
def test_cost_only_counts_at_the_resolution_training_would_use(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["base_resolution"] for row in rows} == {32}  # the embedded data's 32 px
    assert all(row["small_input"] for row in rows)
    assert "32 px base (the data's) and 10 classes" in r.stderr
    native = runner.invoke(app, [*args, "--base-resolution", "224"])
    assert {row["base_resolution"] for row in json.loads(native.stdout)} == {224}
