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
    c = point_compute(point, (1000, 200, 10))  # 1000 train images: 16 batches an epoch
    # under an epoch: whole batches (of 62 or 63), the first 9 of them: 562 samples
    assert c["flops"] == flops and c["trained_samples"] == 562
    assert c["train_flops"] == 3 * flops * 562
    one_eval = 200 + min(RECIPE.bn_images, 1000)
    assert c["compute_flops"] == 3 * flops * 562 + flops * one_eval
    longer = point_compute(Point(point.variant, 0, budget("smoke", samples=2000), "x"),
                           (1000, 200, 10))  # fmt: skip
    assert longer["trained_samples"] == 2000  # two passes over all 1,000 (protocol 3)
    assert longer["compute_flops"] - longer["train_flops"] == 2 * flops * one_eval
    old = budget("smoke", samples=2000, protocol=2)  # full batches only: epochs of 960
    assert (
        point_compute(Point(point.variant, 0, old, "x"), (1000, 200, 10))["trained_samples"] == 1920
    )


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
    # an idle machine, whatever runs beside the tests: the probe gets all its thread's time
    monkeypatch.setattr(estimate.time, "process_time", estimate.time.perf_counter)
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
    """With --data, at what training on it would use; without, as `cost` counts (issue 32:
    `compound --phi 0..7 --cost-only` counted at the embedded data's 32 px and 10 classes)."""
    r = runner.invoke(app, [*args, "--data", "embedded"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert {row["base_resolution"] for row in rows} == {32}  # the embedded data's 32 px
    assert all(row["small_input"] for row in rows)
    assert "32 px base (the data's) and 10 classes" in r.stderr
    native = runner.invoke(app, args)
    assert native.exit_code == 0, native.output
    rows = json.loads(native.stdout)
    assert {row["base_resolution"] for row in rows} == {224}
    assert not any(row["small_input"] for row in rows)
    assert "224 px base (the backbone's native size) and 1000 classes" in native.stderr
    cost = json.loads(runner.invoke(app, ["cost", "resnet18", "--format", "json"]).stdout)
    for row in rows:  # the sweep's base row is the same count as `cost`
        if row["w"] == row["d"] == row["r"] == 1:
            assert row["flops"] == cost["flops"]


@pytest.fixture
def torch_threads():
    """Restores torch's thread count (train --threads sets it for its process)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "resnet18", "--base-width", "0.25", "--data", "synthetic", "--budget", "smoke"],
        ["compound", "--model", "resnet18", "--phi", "1", *SYNTHETIC_SMOKE],
        SWEEP,
        SEARCH,
        ["run", "quick", "--data", "synthetic"],
        ["run", "quick", "--data", "synthetic", "--workers", "2"],
    ],
)
def test_every_training_command_takes_threads(tmp_path, monkeypatch, torch_threads, args):
    asked = []
    monkeypatch.setattr(estimate, "measure_speed", lambda d, t=None: asked.append(t) or SPEED)
    r = runner.invoke(app, [*args, "--threads", "3", "--dry-run", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert asked == [3]  # the estimate is for the threads the points will train with (the
    # tests run at one thread, conftest, and two workers on this machine would get one each)


def test_the_default_threads_split_the_cores_between_workers(monkeypatch):
    from effscale.study.executors import InProcess, LocalWorkers, make_executor

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert make_executor("local", workers=2, device="cpu").threads == 4
    assert make_executor("local", workers=3, device="cpu", threads=1).threads == 1
    assert make_executor("local", workers=16, device="cpu").threads == 1  # never zero
    assert isinstance(make_executor("local", threads=2), InProcess)
    assert estimate.executor_shape(LocalWorkers(2, "cpu", threads=3)) == (3, 2)
    assert estimate.executor_shape(InProcess(threads=2)) == (2, 1)


def test_in_process_points_train_with_the_threads_asked_and_leave_them(monkeypatch):
    import torch

    from effscale.study.executors import InProcess, local

    seen, before = [], torch.get_num_threads()
    monkeypatch.setattr(
        local, "run_point", lambda task, emit, **_: seen.append(torch.get_num_threads())
    )
    study = tiny_study()
    InProcess(threads=1).run([type("T", (), {"point": p})() for p in study.points], lambda *a: 0)
    assert seen == [1, 1] and torch.get_num_threads() == before


def test_a_study_file_sets_threads_and_the_option_wins(tmp_path, monkeypatch):
    from effscale.study.files import load_study

    monkeypatch.setattr(estimate, "measure_speed", lambda d, t=None: asked.append(t) or SPEED)
    f = tmp_path / "s.toml"
    f.write_text(
        'name = "s"\nmodel = "resnet18"\nbase_width = 0.25\ndata = "synthetic"\n'
        'budget = "smoke"\nthreads = 1\n[[sweep]]\ndim = "width"\nvalues = [1.5]\n'
    )
    assert load_study(f).threads == 1
    for extra, want in (([], 1), (["--threads", "2"], 2)):
        asked = []
        r = runner.invoke(app, ["run", str(f), "--dry-run", "--out", str(tmp_path / "o"), *extra])
        assert r.exit_code == 0, r.output
        assert asked == [want]
    f.write_text(f.read_text().replace("threads = 1", "threads = 0"))
    r = runner.invoke(app, ["run", str(f), "--dry-run"])
    assert r.exit_code == 2 and "s.toml:6: threads = 0" in r.output


def _probe_starved(monkeypatch, share: float, threads: int = 7):
    """A probe that got ``share`` of its threads' time (the process clock runs slower); 7
    threads, a count no other test caches."""
    wall, cpu = {"t": 0.0}, {"t": 0.0}

    def probe(dev):
        wall["t"] += 2.0
        cpu["t"] += 2.0 * share * threads
        return 1e9, "fake probe"

    monkeypatch.setattr(estimate, "_probe", probe)
    monkeypatch.setattr(estimate.time, "perf_counter", lambda: wall["t"])
    monkeypatch.setattr(estimate.time, "process_time", lambda: cpu["t"])


def test_a_probe_on_a_busy_machine_is_flagged_and_not_cached(monkeypatch):
    _probe_starved(monkeypatch, 0.3)
    speed = estimate.measure_speed("cpu", threads=7, fresh=True)
    assert speed.busy and "busy" in speed.describe() and "30%" in speed.describe()
    _probe_starved(monkeypatch, 1.0)
    again = estimate.measure_speed("cpu", threads=7)  # the busy one was not cached
    assert not again.cached and not again.busy
    assert estimate.measure_speed("cpu", threads=7).cached  # an idle one is


def test_a_cached_speed_expires(monkeypatch):
    _probe_starved(monkeypatch, 1.0)
    estimate.measure_speed("cpu", threads=7, fresh=True)
    assert estimate.measure_speed("cpu", threads=7).cached
    later = estimate.time.time() + estimate.SPEED_MAX_AGE + 60
    monkeypatch.setattr(estimate.time, "time", lambda: later)
    assert not estimate.measure_speed("cpu", threads=7).cached  # measured again


def test_the_long_run_question_says_the_speed_is_doubtful(monkeypatch):
    import typer

    import effscale.cli.running as running

    asked = []
    monkeypatch.setattr(running, "_interactive", lambda: True)
    monkeypatch.setattr(typer, "confirm", lambda q, **k: asked.append(q) or True)
    running.confirm_long_run(7200, yes=False, busy=True)
    running.confirm_long_run(7200, yes=False, busy=False)
    assert "busy" in asked[0] and "busy" not in asked[1]


@pytest.mark.parametrize(
    "damage",
    ['{"flops_per_s": 0}', '{"flops_per_s": "fast"}', '{"measured_at": "now"}', "\xff\xfe", "[]"],
)
def test_a_damaged_speed_cache_entry_is_measured_again(monkeypatch, damage):
    _probe_starved(monkeypatch, 1.0)
    first = estimate.measure_speed("cpu", threads=7, fresh=True)
    path = estimate._speed_path("cpu", first.hardware, 7)
    entry = json.loads(path.read_text())
    if damage.startswith("{"):
        path.write_text(json.dumps(entry | json.loads(damage)))
    else:
        path.write_bytes(damage.encode("latin-1"))
    again = estimate.measure_speed("cpu", threads=7)
    assert not again.cached and again.flops_per_s > 0
