"""The figure code (not stored images): log FLOPs axes with round ticks, error bars named,
a caption with data, base, resolution and budget, labels inside the saved area, and the
report's one number format."""

import math

import pandas as pd
import pytest

from effscale.report import plots
from effscale.report.report import _cell

SEEDS = (0, 1, 2)
BASE = {"model": "efficientnet-b0", "base_width": 0.25, "base_depth": 1.0,
        "base_resolution": 32, "small_input": True, "data": "embedded", "budget": 4096,
        "status": "done", "protocol": 2}  # fmt: skip


def _row(roles, d, w, r, px, flops, seed, top1, phi=None, ratio=None):
    return {**BASE, "key": f"{roles}{d}{w}{r}{seed}", "roles": roles, "d": d, "w": w, "r": r,
            "resolution": px, "flops": flops, "params": int(3e5 * w * w * d), "phi": phi,
            "seed": seed, "top1": top1 + seed * 0.3, "top5": 90.0, "train_seconds": 5.0,
            "late_gain": 0.1,
            "target_flops_ratio": d * w * w * r * r,
            "realised_flops_ratio": ratio or flops / 3.87e6}  # fmt: skip


@pytest.fixture
def results() -> pd.DataFrame:
    rows = []
    for s in SEEDS:
        rows += [
            _row("base", 1, 1, 1, 32, 3_869_472, s, 60.0),
            _row("width", 1, 2, 1, 32, 14_000_000, s, 64.0),
            _row("width", 1, 4, 1, 32, 52_000_000, s, 66.0),
            _row("depth", 3, 1, 1, 32, 10_500_000, s, 62.0),
            _row("resolution", 1, 1, 2, 64, 15_400_000, s, 63.0),
            _row("compound", 1.2, 1.1, 1.15, 36, 9_400_000, s, 62.5, phi=1.0, ratio=2.43),
            _row("match-width", 1, 1.42, 1, 32, 9_465_168, s, 63.1, phi=1.0, ratio=2.45),
            _row("match-depth", 2.33, 1, 1, 32, 9_326_496, s, 61.9, phi=1.0, ratio=2.41),
            _row("match-resolution", 1, 1, 1.56, 48, 8_647_072, s, 62.8, phi=1.0, ratio=2.23),
        ]
    return pd.DataFrame(rows)


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend:
            out += [t.get_text() for t in legend.get_texts()] + [legend.get_title().get_text()]
    return out


@pytest.mark.parametrize("draw", [plots.draw_figure3, plots.draw_figure8, plots.draw_acc_vs_params])
def test_flops_and_params_are_on_a_log_axis_with_round_ticks(results, draw):
    fig = draw(results)
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert len(labels) >= 2
        for label in labels:  # 4, 8, 16, 32 or 0.5, 1: no 10^x, no scientific notation
            assert "^" not in label and "e" not in label and "$" not in label
            float(label.replace(",", ""))


def test_log2_ticks_are_round_and_cover_the_data():
    assert plots.log2_ticks(3.87, 35.0) == [4, 8, 16, 32]
    narrow = plots.log2_ticks(2.2, 2.5)
    assert len(narrow) >= 2 and all(t > 0 for t in narrow)
    assert plots.log2_ticks(1.8, 6.7) == [2, 3, 4, 6]  # a few octaves: halves added


@pytest.mark.parametrize("draw", [plots.draw_figure3, plots.draw_figure8,
                                  plots.draw_acc_vs_params, plots.draw_flops_vs_phi])  # fmt: skip
def test_every_figure_has_a_caption_with_data_base_resolution_and_budget(results, draw):
    text = " ".join(_texts(draw(results)))
    for part in ("data: embedded", "efficientnet-b0 at base width 0.25", "32 px base",
                 "small-input stem", "4,096 training samples per point"):  # fmt: skip
        assert part in text, (part, text)


@pytest.mark.parametrize(
    "data, shown",
    [
        ("/work/data/imagenette", "data: imagenette"),  # a folder: its last component
        ("/work/data/imagenette/", "data: imagenette"),
        ("/data/cifar-100-python", "data: cifar100"),  # a CIFAR batches folder: its set
        ("imagenette", "data: imagenette"),  # a name from the study file stays
        ("synthetic:8", "data: synthetic:8"),
        ("cifar10", "data: cifar10"),
    ],
)
def test_captions_name_the_dataset_not_its_path(results, data, shown):
    text = " ".join(_texts(plots.draw_figure8(results.assign(data=data))))
    assert shown in text and ("/" not in data or data.rstrip("/") not in text), text


@pytest.mark.parametrize("draw", [plots.draw_figure3, plots.draw_figure8,
                                  plots.draw_acc_vs_params])  # fmt: skip
def test_error_bars_are_defined_in_legend_and_caption(results, draw):
    text = " ".join(_texts(draw(results)))
    assert "mean ± std over 3 seeds" in text
    assert "bars ± 1 std" in text


def test_a_study_still_filling_in_says_how_many_seeds_its_points_have(results):
    partial = results[(results["seed"] == 0) | (results["roles"] == "base")]  # base: 3 seeds
    text = " ".join(_texts(plots.draw_figure8(partial)))
    assert "mean ± std over 1-3 seeds" in text and "mean top-1 over 1-3 seeds" in text


def test_labels_are_not_clipped(results):
    fig = plots.draw_figure3(results)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    saved = fig.get_tightbbox(renderer)  # what bbox_inches="tight" saves, in inches
    texts = [t for ax in fig.axes for t in ax.texts] + list(fig.texts)
    assert texts
    for t in texts:
        box = t.get_window_extent(renderer).transformed(fig.dpi_scale_trans.inverted())
        assert saved.x0 - 1e-6 <= box.x0 and box.x1 <= saved.x1 + 1e-6, t.get_text()
        assert saved.y0 - 1e-6 <= box.y0 and box.y1 <= saved.y1 + 1e-6, t.get_text()
    for ax in fig.axes:
        for t in ax.texts:
            assert t.get_annotation_clip() is False  # drawn even just outside the axes


def test_flops_vs_phi_plots_the_compound_points_not_their_matches(results):
    fig = plots.draw_flops_vs_phi(results)
    realised = fig.axes[0].get_lines()[1].get_ydata()
    assert list(realised) == [2.43]  # the compound point's, not a match's 2.45 or 2.23
    assert fig.axes[0].get_yscale() == "log"


def test_plot_files_keep_their_names(results, tmp_path):
    names = {p.name for p in plots.all_plots(results, tmp_path)}
    for stem in ("figure3", "figure8", "flops_vs_phi", "acc_vs_params"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("top1_mean", 64.3666, "64.37"),
        ("top1_std", 1.0, "1.00"),
        ("first_gain_per_doubling", -0.9, "-0.90"),
        ("flops", 3_869_472, "3,869,472"),
        ("flops_min", 3869472.0, "3,869,472"),
        ("realised_flops_ratio", 2.4298, "2.43"),
        ("seeds", 3, "3"),
        ("w", 2.3333333, "2.333"),
        ("alpha", 1.025, "1.025"),
        ("phi", None, "-"),
        ("phi", math.nan, "-"),
    ],
)
def test_report_tables_use_one_number_format(key, value, shown):
    assert _cell(key, value) == shown


def test_a_report_keeps_the_data_path_while_its_captions_name_the_folder(tmp_path):
    from conftest import study_toml
    from test_data import write_cifar10
    from typer.testing import CliRunner

    from effscale.cli import app

    data = tmp_path / "mydata"
    write_cifar10(data)
    f = tmp_path / "one.toml"
    f.write_text(study_toml('[[sweep]]\ndim = "width"\nvalues = [1.0]\n', seeds=1, samples=32))
    out, runner = tmp_path / "run", CliRunner()
    r = runner.invoke(app, ["run", str(f), "--data", str(data), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    assert f"- data: {data}\n" in (out / "report.md").read_text()  # the path, in full
    assert "data: mydata;" in plots.caption(pd.read_csv(out / "results.csv"))
