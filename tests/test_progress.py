"""Progress that stays readable: bars with count and ETA at 80 columns, plain lines in logs,
and planning that says what it counts."""

import io
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console

from effscale import display, output
from effscale.recipe import budget
from effscale.study.engine import ENGINE_EVENTS, run_study
from effscale.study.estimate import Speed, estimate_study
from effscale.study.executors import Executor
from effscale.study.plan import Base, Study, plan_sweep

LABEL = "efficientnet-b0[w0.25] (d=2.333, w=1.42, 48px, small-input stem)"


def _console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def _render(bars, width: int) -> list[str]:
    c = _console(width)
    c.print(bars.get_renderable())
    return c.file.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 60, 200])
def test_study_and_point_bars_keep_count_and_eta_when_narrow(width):
    bars = output.Bars(console=_console(width))
    bars.add_task("sweep-efficientnet-b0-width", total=16, completed=3,
                          eta_at=time.monotonic() + 312, rate="4.2 pt/h", info="")  # fmt: skip
    point = bars.add_task(LABEL, total=4096, completed=0, unit="img",
                          info="epoch 1 · 480 img/s · loss 2.301")  # fmt: skip
    for done in (1024, 2048):  # a rate and an ETA need progress over time
        time.sleep(0.05)
        bars.update(point, completed=done)
    study_line, point_line = _render(bars, width)
    assert all(len(line) <= width for line in (study_line, point_line))
    assert "3/16" in study_line and "eta 0:05:1" in study_line and "4.2 pt/h" in study_line
    assert "2,048/4,096" in point_line and "eta 0:00:" in point_line and "img/s" in point_line
    if width >= 200:  # room for everything: the whole label and the info
        assert LABEL in point_line and "loss 2.301" in point_line


def test_parts_are_dropped_in_order_of_importance():
    parts = {"label": "x" * 40, "bar": "", "count": "2,048/4,096", "rate": "480 img/s",
             "eta": "eta 0:00:04", "elapsed": "0:00:09", "info": "epoch 1"}  # fmt: skip
    assert list(output.fit_line(parts, 30)) == ["count", "eta"]
    assert list(output.fit_line(parts, 40)) == ["count", "rate", "eta"]
    assert list(output.fit_line(parts, 80)) == ["label", "bar", "count", "rate", "eta"]
    wide = output.fit_line(parts, 200)
    assert list(wide) == ["label", "bar", "count", "rate", "eta", "elapsed", "info"]
    assert wide["label"] == 40


def test_a_study_draws_both_bars_at_80_columns(tmp_path):
    """The study bar (points, ETA from the estimates) above the running point's bar, drawn
    from the engine's events by display.show_study."""
    console = _console(80)
    bars = output.Bars(console=console)
    seen = []

    class Halfway(Executor):  # an executor that reports half a run, then a failure
        def run(self, tasks, events):
            for t in tasks:
                events("start", t.point.key, t.point.variant.label)
                first = {"description": t.point.variant.label, "total": 512, "completed": 0}
                events("progress", t.point.key, {**first, "info": ""})
                for done in (128, 256):  # batches: a rate and an ETA need two
                    time.sleep(0.05)
                    events("progress", t.point.key, {"completed": done, "info": "epoch 1"})
                seen.append(_render(bars, 80))
                events("failed", t.point.key, "stopped by the test")

    study = Study("tiny-study", {"kind": "test"})
    base = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
    study.add_all(plan_sweep(base, "width", [1.5], [0], budget("smoke", samples=512), "synthetic"))
    plan = estimate_study(study, tmp_path, speed=Speed(1e8, "cpu", "test", 1, "fixed"))
    with bars:
        on_event = display.show_study(bars, study)
        run_study(study, tmp_path, executor=Halfway(), estimates=plan, on_event=on_event)
    study_line, point_line = seen[0]
    assert study_line.startswith("tiny-study") and "0/2" in study_line
    assert "eta 0:" in study_line and "-:--:--" not in study_line  # from the estimates
    assert point_line.startswith("resnet18[d0.5,w0.25] d1 w1 32px")  # the short label
    assert "256/512" in point_line and "eta 0:00:" in point_line
    assert all(len(line) <= 80 for line in study_line + point_line)


def test_every_event_a_study_sends_is_documented(tmp_path):
    """ENGINE_EVENTS is the list a caller's on_event is written against: a real run sends
    nothing outside it."""
    study = Study("tiny-study", {"kind": "test"})
    base = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
    study.add_all(plan_sweep(base, "width", [1.5], [0], budget("smoke", samples=256), "synthetic"))
    heard = []
    run_study(study, tmp_path, device="cpu", on_event=lambda kind, key, p: heard.append(kind))
    assert set(heard) <= set(ENGINE_EVENTS), set(heard) - set(ENGINE_EVENTS)
    assert {"start", "progress", "epoch", "done", "study"} <= set(heard)


def test_a_log_gets_plain_lines():
    buf = io.StringIO()
    plain = output.PlainProgress(Console(file=buf, width=80), interval=0)
    task = plain.add_task("b0 d1 w1 32px", total=4096, unit="img", info="")
    time.sleep(0.02)
    plain.update(task, completed=2048, info="epoch 1 · loss 2.3")
    plain.remove_task(task)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("b0 d1 w1 32px | 0/4,096")
    assert "2,048/4,096" in lines[1] and "img/s" in lines[1] and "eta " in lines[1]
    assert "done in" in lines[-1]
    quiet = output.PlainProgress(Console(file=io.StringIO()), interval=3600)
    t = quiet.add_task("x", total=10)
    quiet.update(t, completed=5)
    assert len(quiet.console.file.getvalue().splitlines()) == 1  # at most one line a period
    quiet.mark()  # an epoch ended: a line now
    assert len(quiet.console.file.getvalue().splitlines()) == 2


def test_progress_is_plain_when_stderr_is_not_a_terminal():
    assert isinstance(output.progress(console=Console(file=io.StringIO())), output.PlainProgress)
    assert isinstance(output.progress(console=_console(80)), output.Bars)


def test_a_smoke_sweep_piped_to_a_file_logs_its_progress(tmp_path):
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EFFSCALE_PROGRESS_SECONDS": "0",
           "COLUMNS": "80"}  # fmt: skip
    args = ["sweep", "--model", "resnet18", "--base-width", "0.25", "--base-depth", "0.5",
            "--values", "1.5", "--data", "synthetic", "--budget", "smoke", "--samples", "512",
            "--device", "cpu", "--out", str(tmp_path / "run")]  # fmt: skip
    with open(log, "w") as err:
        r = subprocess.run([sys.executable, "-m", "effscale", *args], env=env, stderr=err,
                           stdout=subprocess.DEVNULL, timeout=600)  # fmt: skip
    assert r.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert any(line.startswith("sweep-resnet18-width | ") and "eta" in line for line in lines)
    point_lines = [line for line in lines if line.startswith("resnet18[d0.5,w0.25] d1")]
    # 512 samples of 1,000 images at batch 64 fall inside an epoch: 9 whole batches, 562
    assert any("/562" in line and "img/s" in line for line in point_lines), lines


def test_planning_says_what_it_counts_after_a_second(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(output, "err_console", Console(file=buf, width=120))
    monkeypatch.setattr(output, "PLAIN_INTERVAL", 0)
    from effscale.cost import count_cost
    from effscale.scaling import make_variant

    with output.planning("planning test") as say:
        say("starting")  # under a second: nothing yet
        assert buf.getvalue() == ""
        time.sleep(1.05)
        count_cost(make_variant("resnet18", w=0.3125, base_resolution=36), 10)
    assert "planning test: counting resnet18 (d=1, w=0.3125, 36px" in buf.getvalue()


def test_the_engine_draws_nothing_itself_and_tells_its_callback(tmp_path, capfd):
    class OneStep(Executor):  # an executor that reports one step of each point, then a failure
        def run(self, tasks, events):
            for t in tasks:
                events("start", t.point.key, t.point.variant.label)
                events("progress", t.point.key, {"total": 512, "completed": 128})
                events("failed", t.point.key, "stopped by the test")

    study = Study("quiet", {"kind": "test"})
    base = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
    study.add_all(plan_sweep(base, "width", [1.5], [0], budget("smoke", samples=512), "synthetic"))
    run_study(study, tmp_path / "silent", executor=OneStep())
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # a library call draws nothing

    heard = []
    run_study(study, tmp_path / "told", executor=OneStep(), on_event=lambda *e: heard.append(e))
    kinds = [kind for kind, _, _ in heard]
    assert kinds.count("failed") == 2 and kinds.count("progress") == 2
    last = [payload for kind, _, payload in heard if kind == "study"][-1]
    assert last["completed"] == 0 and last["total"] == 2 and last["failed"] == 2


def test_a_resumed_run_s_rate_counts_this_session_s_samples_only(monkeypatch):
    """Issue 32: a point resumed at 32,896 of 49,920 showed 1,120 img/s (the samples of
    earlier sessions counted as if trained in the first second) against a real 50."""
    clock = [100.0]
    monkeypatch.setattr(output.time, "monotonic", lambda: clock[0])
    for draw in ("run", "study"):
        buf = io.StringIO()
        plain = output.PlainProgress(Console(file=buf, width=200), interval=0)
        start = {"description": "b0", "total": 49_920, "completed": 32_896, "info": ""}
        if draw == "run":
            on_event = display.show_run(plain)
            on_event("progress", start)
            clock[0] += 10
            on_event("progress", {"completed": 33_396, "info": ""})
        else:
            on_event = display.show_study(plain, Study("s", {}))
            on_event("progress", "key", start)
            clock[0] += 10
            on_event("progress", "key", {"completed": 33_396, "info": ""})
        plain.mark()
        assert "| 50 img/s |" in buf.getvalue().splitlines()[-1], draw
