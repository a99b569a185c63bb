"""effscale latency: timing statistics, warm-up exclusion, a latency column, a plot."""

import json
import time

import pandas as pd
import pytest
import torch
from conftest import error_lines
from torch import nn
from typer.testing import CliRunner

import effscale.latency as latency
from effscale.cli import app
from effscale.errors import EffscaleError
from effscale.report.plots import acc_vs_latency
from effscale.scaling import make_variant

runner = CliRunner()
TINY = ["resnet18", "--width", "0.25", "--depth", "0.5", "--base-resolution", "32"]


def test_json_reports_median_spread_and_throughput():
    r = runner.invoke(
        app,
        ["latency", *TINY, "--batch", "2", "--warmup", "2", "--repeats", "7"]
        + ["--num-classes", "10", "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["batch"] == 2 and out["resolution"] == 32 and out["device"] == "cpu"
    assert out["repeats"] == 7 and out["warmup"] == 2 and out["threads"] >= 1
    assert len(out["times_s"]) == 7
    assert 0 < out["min_s"] <= out["p25_s"] <= out["median_s"] <= out["p75_s"]
    assert out["iqr_s"] == pytest.approx(out["p75_s"] - out["p25_s"])
    assert out["std_s"] >= 0
    assert out["median_s"] == pytest.approx(sorted(out["times_s"])[3])
    assert out["images_per_s"] == pytest.approx(2 / out["median_s"])


def test_warm_up_calls_are_not_timed():
    # A fake clock in which call k takes k seconds: the timed list must start at call 4.
    now, calls = [0.0], []

    def call():
        calls.append(1)
        now[0] += len(calls)

    times = latency.time_calls(call, warmup=3, repeats=5, clock=lambda: now[0])
    assert times == [4, 5, 6, 7, 8]
    assert len(calls) == 8


class _SlowStart(nn.Module):
    """A model whose first passes are slow, as first passes of real models are."""

    def __init__(self, slow_passes: int):
        super().__init__()
        self.passes, self.slow_passes = 0, slow_passes

    def forward(self, x):
        self.passes += 1
        if self.passes <= self.slow_passes:
            time.sleep(0.2)
        return x


def test_measured_times_exclude_the_warm_up_passes(monkeypatch):
    model = _SlowStart(slow_passes=3)
    monkeypatch.setattr(latency, "build_model", lambda v, n: model)
    variant = make_variant("resnet18", base_resolution=32)
    out = latency.measure_latency(variant, warmup=3, repeats=4, device="cpu")
    assert model.passes == 7
    assert len(out["times_s"]) == 4 and max(out["times_s"]) < 0.1
    # and with too short a warm-up the slow pass shows up in the spread
    model = _SlowStart(slow_passes=3)
    monkeypatch.setattr(latency, "build_model", lambda v, n: model)
    out = latency.measure_latency(variant, warmup=2, repeats=4, device="cpu")
    assert out["times_s"][0] > 0.15 and out["median_s"] < 0.1


def _results(seeds=2) -> pd.DataFrame:
    """A results table of two variants (32 and 64 px) with two seeds each."""
    rows = []
    for r in (1.0, 2.0):
        v = make_variant("resnet18", w=0.25, d=0.5, r=r, base_resolution=32)
        for seed in range(seeds):
            rows.append(
                {
                    **v.to_dict(),
                    "roles": "base" if r == 1 else "resolution",
                    "seed": seed,
                    "data": "synthetic",
                    "flops": 1e6 * r * r,
                    "params": 1e5,
                    "top1": 50.0 + 10 * r + seed,
                    "top5": 90.0,
                    "status": "done",
                    "realised_flops_ratio": r * r,
                    "target_flops_ratio": r * r,
                    "phi": None,
                    "train_seconds": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_add_latency_measures_each_variant_once(monkeypatch):
    measured = []
    real = latency.measure_latency

    def counting(variant, **kw):
        measured.append(variant)
        return real(variant, **kw)

    monkeypatch.setattr(latency, "measure_latency", counting)
    df = _results()
    out = latency.add_latency(df, num_classes=10, warmup=1, repeats=3, device="cpu")
    assert "latency_ms" not in df.columns  # the input is left alone
    assert len(out) == 4 and (out["latency_ms"] > 0).all()
    assert [v.resolution for v in measured] == [32, 64]
    assert measured[0].small_input and measured[0].base_width == 1.0
    by_res = out.groupby("resolution")["latency_ms"].nunique()
    assert (by_res == 1).all()  # seeds of one variant share its figure


def test_add_latency_reads_a_results_csv_roundtrip(tmp_path):
    path = tmp_path / "results.csv"
    _results(seeds=1).to_csv(path, index=False)
    out = latency.add_latency(pd.read_csv(path), warmup=0, repeats=1, device="cpu")
    assert out["latency_ms"].notna().all()


def test_add_latency_refuses_a_table_without_variants():
    with pytest.raises(EffscaleError, match="no .*small_input"):
        latency.add_latency(pd.DataFrame({"model": ["resnet18"], "top1": [50.0]}))


def test_acc_vs_latency_plot(tmp_path):
    df = _results()
    df["latency_ms"] = df["resolution"] / 10
    paths = acc_vs_latency(df, tmp_path)
    assert [p.name for p in paths] == ["acc_vs_latency.png", "acc_vs_latency.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert acc_vs_latency(df.drop(columns="latency_ms"), tmp_path / "none") == []


@pytest.mark.parametrize(
    "args, says",
    [
        (["--repeats", "0"], "repeats must be at least 1"),
        (["--batch", "0"], "batch must be at least 1"),
        (["--warmup", "-1"], "warmup must be 0 or more"),
        (["--device", "tpu"], "unknown device"),
        (["--phi", "1", "--width", "2"], "--phi sets depth, width and resolution together"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, says):
    r = runner.invoke(app, ["latency", *TINY, *args])
    assert r.exit_code == 2
    assert says in r.stderr
    assert len(error_lines(r.stderr)) == 1
    assert "Traceback" not in r.output


def test_threads_are_restored_after_measuring():
    before = torch.get_num_threads()
    v = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)
    out = latency.measure_latency(v, num_classes=10, warmup=0, repeats=1, threads=2)
    assert out["threads"] == 2 and torch.get_num_threads() == before


def _study(run_dir) -> None:
    """A run directory with two finished variants, two seeds each (results written by hand)."""
    from effscale.recipe import budget
    from effscale.rundir import StudyDir
    from effscale.study.plan import Point, Study

    store = StudyDir(run_dir)
    points = [
        Point(
            make_variant("resnet18", w=0.25, d=0.5, r=r, base_resolution=32),
            seed,
            budget("smoke"),
            "synthetic",
            ("base",) if r == 1 else ("resolution",),
        )
        for r in (1.0, 2.0)
        for seed in (0, 1)
    ]
    store.save_study(Study("tiny", {"name": "tiny"}, points))
    for i, p in enumerate(points):
        (store.point_dir(p.key)).mkdir(parents=True)
        (store.point_dir(p.key) / "config.json").write_text(json.dumps({"num_classes": 10}))
        (store.point_dir(p.key) / "result.json").write_text(
            json.dumps({"status": "done", "top1": 50.0 + i})
        )


def test_a_study_measures_each_variant_once_and_keeps_the_figures(tmp_path, monkeypatch):
    _study(tmp_path)
    measured = []
    real = latency.measure_latency
    monkeypatch.setattr(
        latency, "measure_latency", lambda v, **kw: measured.append(kw) or real(v, **kw)
    )
    kw = dict(device="cpu", warmup=0, repeats=2)
    df = latency.latency_for_results(tmp_path, **kw)
    assert len(df) == 4 and df["latency_ms"].notna().all()
    assert len(measured) == 2 and measured[0]["num_classes"] == 10
    stored = pd.read_csv(tmp_path / "latency.csv")
    assert len(stored) == 2 and set(stored["device"]) == {"cpu"}
    again = latency.latency_for_results(tmp_path, **kw)  # a redrawn report: nothing new
    assert len(measured) == 2
    assert again["latency_ms"].tolist() == df["latency_ms"].tolist()
    other = latency.latency_for_results(tmp_path, batch=4, measure=False, **kw)
    assert other["latency_ms"].isna().all() and len(measured) == 2
