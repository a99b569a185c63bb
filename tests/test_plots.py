"""The figure code (not stored images): log FLOPs axes with round ticks, error bars named,
a caption with data, base, resolution and budget, labels inside the saved area, and the
report's one number format."""

import math

import pandas as pd
import pytest
from matplotlib.text import Text

from effscale.report import plots
from effscale.report.report import _cell

SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plots.plt.close("all")


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
    for legend in [ax.get_legend() for ax in fig.axes] + fig.legends:  # in or under the axes
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


# --------------------------------------------------------------------------------------
# Labels that collide neither with each other, the legend nor the markers (issue 32)
# --------------------------------------------------------------------------------------

RULE_A, RULE_B = "alpha=1.2 beta=1.1 gamma=1.15", "alpha=1 beta=1.4 gamma=1"


def crowded_results(seeds=SEEDS) -> pd.DataFrame:
    """Points like the CIFAR-10 study's: w=2.8 and w=3.3 a few percent of FLOPs apart on the
    log axis, d=3 below the base at the right (the quick study's, once under the legend), and
    a second compound rule (alpha=1, beta=1.4) whose points are the width line's."""
    rows = []
    for s in seeds:
        rows += [
            _row("base", 1, 1, 1, 32, 3_869_472, s, 64.1),
            _row("width", 1, 1.4, 1, 32, 9_500_000, s, 67.0),
            _row("width", 1, 1.96, 1, 32, 14_500_000, s, 68.4),
            _row("width", 1, 2.8, 1, 32, 29_000_000, s, 70.6),
            _row("width", 1, 3.3, 1, 32, 33_000_000, s, 70.4),
            _row("depth", 2.3, 1, 1, 32, 9_300_000, s, 65.6),
            _row("depth", 3, 1, 1, 32, 11_500_000, s, 63.2),
            _row("depth", 7, 1, 1, 32, 27_000_000, s, 63.0),
            _row("depth", 9.5, 1, 1, 32, 36_000_000, s, 62.9),
            _row("resolution", 1, 1, 1.6, 52, 8_600_000, s, 66.5),
            _row("resolution", 1, 1, 2.6, 84, 23_000_000, s, 69.8),
            _row("resolution", 1, 1, 3.1, 100, 34_000_000, s, 70.5),
        ]
        for phi, (d, w, r, px, flops, top1) in enumerate(
            [(1.2, 1.1, 1.15, 36, 9_400_000, 66.2), (1.44, 1.21, 1.32, 42, 24_000_000, 69.4)], 1
        ):
            rows.append({**_row("compound", d, w, r, px, flops, s, top1, phi=phi),
                         "scaling": RULE_A})  # fmt: skip
        for phi, (w, flops, top1) in enumerate([(1.4, 9_500_000, 67.0),
                                                (1.96, 14_500_000, 68.4)], 1):  # fmt: skip
            rows.append({**_row("compound", 1, w, 1, 32, flops, s, top1, phi=phi),
                         "key": f"rule-b{w}{s}", "scaling": RULE_B})  # fmt: skip
    return pd.DataFrame(rows)


def _intersect(a, b, pad: float = 0.0) -> bool:
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > pad) and (min(a.y1, b.y1) - max(a.y0, b.y0) > pad)


def label_collisions(fig) -> list[str]:
    """Each pair of point labels whose boxes intersect, and each label over its axes' legend
    or over a plotted marker, as drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        texts = [t for t in ax.texts if t.get_visible() and t.get_text()]
        boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text, no leader
        for i, a in enumerate(boxes):
            found += [f"{texts[i].get_text()!r} on {texts[j].get_text()!r}"
                      for j in range(i + 1, len(boxes)) if _intersect(a, boxes[j])]  # fmt: skip
        for legend in [ax.get_legend(), *fig.legends]:  # its own, or the figure's
            if legend is not None:
                frame = legend.get_window_extent(renderer)
                found += [f"{t.get_text()!r} under the legend"
                          for t, b in zip(texts, boxes) if _intersect(b, frame)]  # fmt: skip
        for line in ax.get_lines():
            if line.get_marker() in (None, "None", "", " ", "_", "|") or not line.get_visible():
                continue
            half = line.get_markersize() * fig.dpi / 72 / 2
            for x, y in line.get_transform().transform(line.get_xydata()):
                mark = type(boxes[0]).from_extents(x - half, y - half, x + half, y + half) \
                    if boxes else None  # fmt: skip
                found += [f"{t.get_text()!r} on a marker" for t, b in zip(texts, boxes)
                          if _intersect(b, mark, pad=1.0)]  # fmt: skip
    return found


def _search_record(seeds=3) -> dict:
    """A finished grid search: five trained networks (one shared by two candidates) whose
    FLOPs ratios crowd between 2 and 2.6, the chosen one among them."""
    nets = [((1.0, 1.0, 1.4), 2.05, 74.6), ((1.0, 1.1, 1.3), 2.12, 74.64),
            ((1.0, 1.4, 1.0), 2.38, 75.0), ((1.1, 1.1, 1.2), 2.57, 74.11),
            ((1.3, 1.1, 1.1), 2.54, 74.07)]  # fmt: skip
    candidates = []
    for n, ((a, b, g), ratio, top1) in enumerate(nets, 1):
        candidates.append({"alpha": a, "beta": b, "gamma": g, "kept": True, "trained": True,
                           "network": n, "realised_flops_ratio": ratio, "top1_mean": top1,
                           "top1_std": 0.5 if seeds > 1 else 0.0, "seeds": seeds})  # fmt: skip
    twin = {**candidates[3], "alpha": 1.2, "trained": False}  # the same network as 1.1, 1.1, 1.2
    dropped = {**candidates[0], "alpha": 1.4, "kept": False, "trained": False, "network": None,
               "top1_mean": None, "seeds": 0}  # fmt: skip
    chosen = {"alpha": 1.0, "beta": 1.4, "gamma": 1.0, "realised_flops_ratio": 2.38,
              "top1_mean": 75.0, "top1_std": candidates[2]["top1_std"]}  # fmt: skip
    return {"model": "efficientnet-b0", "phi": 1.0, "target": 2.0,
            "candidates": candidates + [twin, dropped], "chosen": chosen, "leader": chosen,
            "base_top1": {"seeds": seeds, "top1_mean": 72.4, "top1_std": 0.4}}  # fmt: skip


def _trend_rows() -> list[dict]:
    return [{"phi": phi, "budget": b, "compound_minus_best": -1.2 - 0.3 * i + phi,
             "difference_std": 0.8, "seeds": 3}
            for phi in (1.0, 2.0) for i, b in enumerate((100_000, 200_000))]  # fmt: skip


def _draw(name: str):
    from effscale.report import search

    crowded = crowded_results()
    timed = crowded.assign(latency_ms=9.0 + crowded["flops"] / 40e6)  # a 9-10 ms range
    return {
        "figure3": lambda: plots.draw_figure3(crowded),
        "figure8": lambda: plots.draw_figure8(crowded),
        "acc_vs_params": lambda: plots.draw_acc_vs_params(crowded),
        "acc_vs_latency": lambda: plots.draw_acc_vs_latency(timed),
        "budget_trend": lambda: plots.draw_budget_trend(_trend_rows(), crowded),
        "flops_vs_phi": lambda: plots.draw_flops_vs_phi(crowded),
        "search": lambda: search.draw_search(_search_record()),
    }[name]()


@pytest.mark.parametrize("name", ["figure3", "figure8", "acc_vs_params", "acc_vs_latency",
                                  "budget_trend", "flops_vs_phi", "search"])  # fmt: skip
def test_no_label_collides_with_another_the_legend_or_a_marker(name):
    fig = _draw(name)
    try:
        assert label_collisions(fig) == []
    finally:
        plots.plt.close(fig)


def _lines(ax) -> dict:
    """Each error-bar line of ``ax`` by its legend label: its data line."""
    return {c.get_label(): c.lines[0] for c in ax.containers}


def test_a_line_on_another_is_drawn_beside_it_and_the_legend_says_so():
    fig = plots.draw_figure8(crowded_results())
    fig.canvas.draw()
    ax = fig.axes[0]
    lines = _lines(ax)
    on = [name for name in lines if name.startswith(f"compound ({RULE_B})")]
    assert on == [f"compound ({RULE_B})\n(coincides with width: drawn 4 pt right)"], list(lines)
    assert f"compound ({RULE_A})" in lines  # a line of its own: as it was
    width, rule_b = lines["scale by width"], lines[on[0]]
    assert rule_b.get_linestyle() == "--" and width.get_linestyle() == "-"
    a = width.get_transform().transform(width.get_xydata())[:3]  # base, w=1.4, w=1.96
    b = rule_b.get_transform().transform(rule_b.get_xydata())
    assert b[:, 0] - a[:, 0] == pytest.approx([4 * fig.dpi / 72] * 3)  # apart on the page
    assert b[:, 1] == pytest.approx(a[:, 1])  # ... at the same accuracy
    assert list(rule_b.get_xdata()) == pytest.approx(list(width.get_xdata())[:3])  # same data
    plots.plt.close(fig)


def test_lines_sharing_only_the_base_are_not_on_each_other():
    from effscale.report.labels import overlapping

    width = [("width", [4, 9.5, 14.5], [64, 67, 68.4])]
    span = (1.0, 10.0)
    assert overlapping([4, 9.5], [64, 67.05], width, span) == "width"
    assert overlapping([4, 9.4], [64, 66.2], width, span) is None  # its own second point
    assert overlapping([4, 14.5], [64, 68.4], width, span) == "width"  # passes w=1.4 too
    bent = [("width", [4, 9.5, 14.5], [64, 67.5, 68.4])]
    assert overlapping([4, 14.5], [64, 68.4], bent, span) is None  # a chord under its bend
    assert overlapping([9.5, 4], [67, 64], width, span) is None  # not along it


def test_acc_vs_params_joins_each_dimension_and_draws_the_base_on_top():
    fig = plots.draw_acc_vs_params(crowded_results())
    ax = fig.axes[0]
    lines = _lines(ax)
    for dim, n in (("width", 5), ("depth", 5), ("resolution", 4)):
        line = lines[f"scale by {dim}"]
        assert line.get_linestyle() == "-" and len(line.get_xdata()) == n  # base + its points
    base = lines["base"]
    others = [a for a in ax.get_lines() + ax.collections if a is not base]
    assert base.get_zorder() > max(a.get_zorder() for a in others)  # no bar hides it
    texts = {t.get_text() for t in ax.texts}
    assert {"w=1.4", "d=3", "r=1.6", "φ=1"} <= texts
    plots.plt.close(fig)


def test_every_search_candidate_is_labelled_and_the_chosen_one_stands_out():
    from effscale.report import search

    fig = search.draw_search(_search_record())
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    assert set(texts) == {"1, 1, 1.4", "1, 1.1, 1.3", "1, 1.4, 1", "1.1, 1.1, 1.2\n1.2, 1.1, 1.2",
                          "1.3, 1.1, 1.1"}  # fmt: skip
    assert texts["1, 1.4, 1"].get_color() == "tab:red"
    assert texts["1, 1.4, 1"].get_fontweight() == "bold"
    assert texts["1, 1.1, 1.3"].get_fontweight() == "normal"
    plots.plt.close(fig)


def test_one_seed_is_said_to_have_no_spread():
    from effscale.report import search

    one = crowded_results(seeds=(0,))
    for draw in (plots.draw_figure3, plots.draw_figure8, plots.draw_acc_vs_params):
        fig = draw(one)
        text = " ".join(_texts(fig))
        assert "1 seed (no spread)" in text and "points: top-1 of 1 seed (no spread)" in text
        assert "over 1 seed" not in text and "bars ± 1 std" not in text
        plots.plt.close(fig)
    fig = search.draw_search(_search_record(seeds=1))
    text = " ".join(_texts(fig))
    assert "1 seed (no spread)" in text and "over 1 seed" not in text
    plots.plt.close(fig)


def _visible_ticks(ax, axis: str) -> list[str]:
    lo, hi = sorted(getattr(ax, f"get_{axis}lim")())
    target = ax.xaxis if axis == "x" else ax.yaxis
    return [t.get_text() for t, v in zip(target.get_ticklabels(), target.get_ticklocs())
            if t.get_text() and lo <= v <= hi]  # fmt: skip


@pytest.mark.parametrize("name", ["figure3", "figure8", "acc_vs_params", "acc_vs_latency",
                                  "budget_trend", "flops_vs_phi"])  # fmt: skip
def test_every_log_axis_has_three_plain_labelled_ticks_or_more(name):
    fig = _draw(name)
    fig.canvas.draw()
    logs = [(ax, a) for ax in fig.axes for a in "xy" if getattr(ax, f"get_{a}scale")() == "log"]
    assert logs
    for ax, axis in logs:
        labels = _visible_ticks(ax, axis)
        assert len(labels) >= 3, (axis, labels)
        for label in labels:  # 9.25, 9.5 ms; 100k, 150k; 4, 8, 16: no 10^x, no 1e7
            assert "^" not in label and "$" not in label and "e" not in label, label
    plots.plt.close(fig)


def test_a_latency_axis_across_9_to_10_ms_has_plain_ticks():
    fig = _draw("acc_vs_latency")
    fig.canvas.draw()
    assert _visible_ticks(fig.axes[0], "x") == ["9.25", "9.5", "9.75"]
    plots.plt.close(fig)


def test_redrawn_figures_are_the_same_bytes(tmp_path):
    from effscale.report import search

    df = crowded_results()
    files = {}
    for out in (tmp_path / "a", tmp_path / "b"):
        paths = plots.all_plots(df, out)
        paths += search.search_plot(_search_record(), out)
        files[out.name] = {p.name: p.read_bytes() for p in paths}
    assert len(files["a"]) >= 10 and files["a"] == files["b"]
