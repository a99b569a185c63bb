"""Plots in the paper's style, from a results table; each written as PNG and SVG.

figure3       accuracy vs FLOPs along each dimension alone (paper Figure 3)
figure8       compound vs single dimensions, the same FLOPs axis (paper Figure 8)
flops_vs_phi  target (alpha*beta^2*gamma^2)^phi and realised FLOPs ratio vs phi
acc_vs_params accuracy vs parameters, a line per dimension and compound rule (as figure3/8)
acc_vs_latency accuracy vs measured latency (paper Table 4 / Figure 1), when the table has it
budget_trend  compound minus the best single dimension vs the training budget, per phi
              (when a study trains at several budgets; the other plots are then per budget)

Points are means over seeds; error bars are ± one standard deviation over seeds, as each
figure's legend and caption say ("1 seed (no spread)" where there is one). FLOPs axes are
logarithmic in base 2 (the verdicts are per doubling of FLOPs), ticked at round numbers, at
least three across any range; a caption line under every figure names the dataset (by name,
not path), the base (model, base width and depth, base resolution, stem) and the budget.
Point labels (d=2.3, w=1.4, r=1.5, φ=1) sit where they cover no other label, legend or
marker, and a line lying on another is drawn a few points to its right, the legend saying
so (effscale.report.labels). Each plot has a ``draw_*`` function that returns the matplotlib
figure (tests inspect it) and a function of the plot's name that saves it.
"""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from effscale import io  # noqa: E402
from effscale.report.labels import (  # noqa: E402
    DODGE_PT,
    dodge,
    legend_below,
    log2_ticks,  # noqa: F401  (plots.log2_ticks, as before)
    log_axis,
    number,
    overlapping,
    place_labels,
    spans,
)
from effscale.report.verdicts import (  # noqa: E402
    VARIANT,
    dimension_curve,
    finished,
    has_role,
    summarise,
)
from effscale.scaling import DIMENSIONS  # noqa: E402

STYLE = {
    "width": ("tab:blue", "o"),
    "depth": ("tab:orange", "s"),
    "resolution": ("tab:green", "^"),
    "compound": ("tab:red", "*"),
    "compound-2": ("tab:purple", "P"),  # a second coefficient choice, e.g. a search's
    "compound-3": ("tab:brown", "X"),
}
SYMBOL = {"width": "w", "depth": "d", "resolution": "r"}


def _flops_axis(flops: pd.Series) -> tuple[float, str]:
    return (1e9, "FLOPs (billions)") if flops.max() >= 1e9 else (1e6, "FLOPs (millions)")


def log2_axis(ax, values, axis: str = "x", suffix: str = "") -> None:
    """Base-2 log scale on ``axis`` with readable round ticks (12, 24, 48; not 10^1), at
    least three across the axis (labels.log_axis); ``values``: what it shows."""
    values = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not values:
        getattr(ax, f"set_{axis}scale")("log", base=2)
        return
    log_axis(ax, axis, 2, lambda v: number(v) + suffix)


def caption(df: pd.DataFrame) -> str:
    """The caption line: dataset, base, resolution, budget, and what points and bars are.

    The dataset by name ("imagenette", not the path it sat at on the machine that trained:
    effscale.data.names.short_name); the report's header keeps the path."""
    from effscale.data.names import short_name

    parts = []
    if "data" in df and df["data"].notna().any():
        datasets = sorted({short_name(str(d)) for d in df["data"].dropna().unique()})
        parts.append("data: " + ", ".join(datasets))
    if "model" in df and df["model"].notna().any():
        first = df.iloc[0]
        base = ", ".join(sorted(map(str, df["model"].dropna().unique())))
        for key, name in (("base_width", "width"), ("base_depth", "depth")):
            if key in df and df[key].nunique() == 1 and float(first[key]) != 1.0:
                base += f" at base {name} {float(first[key]):g}"
        if "base_resolution" in df and df["base_resolution"].nunique() == 1:
            base += f", {int(first['base_resolution'])} px base"
        if "small_input" in df and df["small_input"].astype(str).str.lower().eq("true").all():
            base += " (small-input stem)"
        parts.append("base: " + base)
    if "budget" in df and df["budget"].notna().any():
        budgets = sorted(int(b) for b in df["budget"].dropna().unique())
        parts.append(" and ".join(f"{b:,}" for b in budgets) + " training samples per point")
    seeds = _seed_range(df)
    if seeds:
        parts.append(points_phrase(*seeds))
    return "; ".join(parts)


def captioned(fig, text: str):
    """The caption under the axes (inside the saved area: files are cut to their contents)."""
    if text:
        fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=7, color="0.3", wrap=True)
    return fig


def seed_words(low: int, high: int) -> str:
    """ "3 seeds", "1 seed", or "1-3 seeds" while a study is still filling in."""
    return f"{high} seed{'s' * (high != 1)}" if low == high else f"{low}-{high} seeds"


def spread_note(low: int, high: int) -> str:
    """What a point and its bar are, for a legend: "mean ± std over 3 seeds", and "1 seed
    (no spread)" where every point has one seed (a mean and std over one seed are not)."""
    if high <= 1:
        return "1 seed (no spread)"
    return f"mean ± std over {seed_words(low, high)}"


def points_phrase(low: int, high: int) -> str:
    """The caption's words for points and bars (spread_note's, for a caption)."""
    if high <= 1:
        return "points: top-1 of 1 seed (no spread)"
    return f"points: mean top-1 over {seed_words(low, high)}, bars ± 1 std"


def _seed_range(df: pd.DataFrame) -> tuple[int, int] | None:
    """Fewest and most seeds of a plotted point (a point over one seed has no bar)."""
    if "seed" not in df or finished(df).empty:
        return None
    per_point = summarise(df)["seeds"]  # summarise's variants are the plotted points
    return int(per_point.min()), int(per_point.max())


def _seeds(df: pd.DataFrame) -> str:
    seeds = _seed_range(df)
    return spread_note(*seeds) if seeds else "mean ± std over seeds"


# Redrawing unchanged results gives byte-identical files (no dates, fixed SVG ids), so the
# figures kept in the repository change only when their data do.
_STABLE = {"png": {"metadata": {"Software": None}}, "svg": {"metadata": {"Date": None}}}


def save(fig, out: Path, name: str) -> list[Path]:
    if fig is None:
        return []
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        with io.atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": "effscale"}):
            fig.savefig(
                tmp, format=ext, dpi=150, bbox_inches="tight", pad_inches=0.1, **_STABLE[ext]
            )
        paths.append(path)
    plt.close(fig)
    return paths


def _curve(ax, x, s: pd.DataFrame, style: str, label: str, drawn=None, span=None):
    """One line with error bars: top1_mean ± top1_std of ``s`` against ``x``, in
    STYLE[style]. With ``drawn`` ([(name, xs, ys)] of the lines before it in ``ax``, which
    it joins) and ``span`` (labels.spans of the axes' data): a line lying on one of them is
    dashed and drawn DODGE_PT points to its right, and its legend entry says so."""
    x, y = [float(v) for v in x], [float(v) for v in s["top1_mean"]]
    on = overlapping(x, y, drawn, span) if drawn else None
    color, marker = STYLE[style]
    note = f"\n(coincides with {on}: drawn {DODGE_PT:g} pt right)" if on else ""
    bars = ax.errorbar(x, y, yerr=s["top1_std"], color=color, marker=marker, capsize=3,
                       lw=1.5, ms=6, ls="--" if on else "-", label=label + note)  # fmt: skip
    if on:
        dodge(ax, bars.get_children())
    if drawn is not None:
        drawn.append((label.removeprefix("scale by "), x, y))
    return bars


def _label(row, dim: str) -> str:
    """A point's label: the scaled dimension's multiplier (d=2.3), or compound's φ=2."""
    if dim == "compound":
        return f"φ={row['phi']:g}" if pd.notna(row["phi"]) else ""
    return f"{SYMBOL[dim]}={row[SYMBOL[dim]]:.2g}"


def draw_figure3(df: pd.DataFrame):
    done = finished(df)
    dims = [d for d in DIMENSIONS if (has_role(done, d) | has_role(done, f"match-{d}")).any()]
    if not dims:
        return None
    scale, xlabel = _flops_axis(done["flops"])
    fig, axes = plt.subplots(
        1, len(dims), figsize=(4.2 * len(dims), 3.8), sharey=True, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    labels = []
    for ax, dim in zip(axes[0], dims):
        s = summarise(dimension_curve(df, dim))
        _curve(ax, s["flops"] / scale, s, dim, f"scale by {dim}, {_seeds(df)}")
        labels.append([(row["flops"] / scale, row["top1_mean"], _label(row, dim))
                       for _, row in s.iterrows()])  # fmt: skip
        log2_axis(ax, s["flops"] / scale)
        ax.margins(x=0.12, y=0.1)  # room for the labels of the end points
        ax.set_xlabel(xlabel + ", log scale")
        ax.set_title(f"{dim.capitalize()} scaling")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("Top-1 accuracy (%)")
    for ax, points in zip(axes[0], labels):  # last: placed around everything else
        place_labels(ax, points)
    return captioned(fig, caption(done))


def figure3(df: pd.DataFrame, out: Path, name: str = "figure3") -> list[Path]:
    return save(draw_figure3(df), out, name)


def draw_figure8(df: pd.DataFrame):
    done = finished(df)
    if not has_role(done, "compound").any():
        return None
    scale, xlabel = _flops_axis(done["flops"])
    fig, ax = plt.subplots(figsize=(5.4, 4.2), layout="constrained")
    shown, drawn, span = [], [], spans(done["flops"], done["top1"])
    runs = done.drop_duplicates("key")  # a run serving two cells is one point on its curve
    for dim in DIMENSIONS:
        rows = dimension_curve(runs, dim)
        if rows["flops"].nunique() > 1:
            s = summarise(rows)
            _curve(ax, s["flops"] / scale, s, dim, f"scale by {dim}", drawn, span)
            shown += list(rows["flops"])
    base = runs[has_role(runs, "base")]
    compound = done[has_role(done, "compound")]
    rules = (
        compound["scaling"] if "scaling" in compound else pd.Series("", compound.index)
    ).fillna("")
    styles = ["compound", "compound-2", "compound-3"]
    for i, rule in enumerate(sorted(rules.unique())):  # one line per coefficient choice
        comp = pd.concat([base, compound[rules == rule]])
        label = f"compound ({rule})" if rules.nunique() > 1 else "compound scaling"
        s = summarise(comp)
        _curve(ax, s["flops"] / scale, s, styles[min(i, 2)], label, drawn, span)
        shown += list(comp["flops"])
    log2_axis(ax, pd.Series(shown) / scale)
    ax.margins(x=0.08, y=0.1)
    ax.set_xlabel(xlabel + ", log scale")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title("Scaling the base with different methods")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=_seeds(df), title_fontsize=7)
    return captioned(fig, caption(done))


def figure8(df: pd.DataFrame, out: Path, name: str = "figure8") -> list[Path]:
    return save(draw_figure8(df), out, name)


def draw_flops_vs_phi(rows: pd.DataFrame):
    """Works on a results table or on `compound --cost-only` rows (phi and both ratios)."""
    described = rows
    if "roles" in rows:  # a results table: the compound points, not their matches
        rows = rows[has_role(rows, "compound") | has_role(rows, "base")]
    rows = rows.dropna(subset=["phi"]).drop_duplicates("phi").sort_values("phi")
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.8), layout="constrained")
    ax.plot(
        rows["phi"], rows["target_flops_ratio"], "k--", marker="o", ms=4, label="target (α·β²·γ²)^φ"
    )
    ax.plot(
        rows["phi"],
        rows["realised_flops_ratio"],
        color="tab:red",
        marker="*",
        ms=8,
        label="realised (counted)",
    )
    log2_axis(ax, list(rows["target_flops_ratio"]) + list(rows["realised_flops_ratio"]), "y", "x")
    if len(rows) <= 12:
        ax.set_xticks(list(rows["phi"]), [f"{p:g}" for p in rows["phi"]])
    ax.set_xlabel("compound coefficient φ")
    ax.set_ylabel("FLOPs / base FLOPs, log scale")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    text = caption(described.drop(columns=["seed"], errors="ignore"))
    return captioned(fig, text)


def flops_vs_phi(rows: pd.DataFrame, out: Path, name: str = "flops_vs_phi") -> list[Path]:
    return save(draw_flops_vs_phi(rows), out, name)


def _scatter_by_role(ax, s: pd.DataFrame) -> None:
    """Top-1 mean and std against column x as points, one colour per role: the roles that
    are no curve (search, pretrain, transfer ...), in the next colours of a fixed cycle."""
    family = s["roles"].fillna("").str.split(";").str[0]
    others = iter(["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"])
    for role in family.unique():
        match = s[family == role]
        ax.errorbar(match["x"], match["top1_mean"], yerr=match["top1_std"], fmt="o",
                    color=next(others, "gray"), capsize=3, label=role or "other")  # fmt: skip


def _rules(df: pd.DataFrame, s: pd.DataFrame) -> pd.Series:
    """Each summarised point's coefficient choice (``scaling``; "" for none)."""
    if "scaling" not in df:
        return pd.Series("", index=s.index)
    rule = finished(df).groupby(VARIANT, dropna=False, sort=False)["scaling"].first()
    merged = s[VARIANT].merge(rule.reset_index(), on=VARIANT, how="left")
    return pd.Series(merged["scaling"].fillna("").to_numpy(), index=s.index)


def _curves_by_dimension(ax, df: pd.DataFrame, s: pd.DataFrame) -> list[tuple]:
    """Top-1 against column x of ``s``: the base joined to each dimension's points and to
    each compound rule's (as in figure3 and figure8; a line on another dodged), other roles
    as points, the base on top. Returns the point labels, (x, y, "d=2.3"), one per point."""
    base, compound, rules = has_role(s, "base"), has_role(s, "compound"), _rules(df, s)
    curves = [(d, f"scale by {d}", has_role(s, d) | has_role(s, f"match-{d}")) for d in DIMENSIONS]
    choices = sorted(rules[compound].unique())
    for i, rule in enumerate(choices):  # one line per coefficient choice
        label = f"compound ({rule})" if len(choices) > 1 else "compound scaling"
        on = compound & (rules == rule)
        curves.append((["compound", "compound-2", "compound-3"][min(i, 2)], label, on))
    drawn, span, texts = [], spans(s["x"], s["top1_mean"]), {}
    for style, label, on in curves:
        if not on.any():
            continue
        line = s[base | on].sort_values(["x", "flops"])
        _curve(ax, line["x"], line, style, label, drawn, span)
        dim = "compound" if style.startswith("compound") else style
        for _, row in s[on].iterrows():
            texts.setdefault((row["x"], row["top1_mean"]), []).append(_label(row, dim))
    grouped = base | compound
    for dim in DIMENSIONS:
        grouped |= has_role(s, dim) | has_role(s, f"match-{dim}")
    if (~grouped).any():
        _scatter_by_role(ax, s[~grouped])
    if base.any():
        b = s[base]
        ax.errorbar(b["x"], b["top1_mean"], yerr=b["top1_std"], fmt="D", color="black", ms=7,
                    mec="white", capsize=3, zorder=5, label="base")  # fmt: skip
    return [(x, y, ", ".join(dict.fromkeys(filter(None, t)))) for (x, y), t in texts.items()
            if any(t)]  # fmt: skip


def draw_acc_vs_params(df: pd.DataFrame):
    s = summarise(df)
    if s.empty:
        return None
    x = s["params"] / 1e6
    return _accuracy_against(
        df, s, x, lambda ax: log2_axis(ax, x), "Parameters (millions), log scale"
    )


def _accuracy_against(df: pd.DataFrame, s: pd.DataFrame, x, log_axis, xlabel: str):
    """Top-1 (summarised rows ``s``) against ``x`` on a log axis, a line per dimension and
    per compound rule, each point labelled, captioned."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    points = _curves_by_dimension(ax, df, s.assign(x=list(x)))
    log_axis(ax)
    ax.margins(x=0.1, y=0.08)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    legend_below(fig, ax, title=_seeds(df), title_fontsize=7)
    place_labels(ax, points, fontsize=7)
    return captioned(fig, caption(finished(df)))


def acc_vs_params(df: pd.DataFrame, out: Path, name: str = "acc_vs_params") -> list[Path]:
    return save(draw_acc_vs_params(df), out, name)


def draw_acc_vs_latency(df: pd.DataFrame):
    """Top-1 (mean, std over seeds) against latency_ms (effscale.latency.add_latency)."""
    if "latency_ms" not in df.columns or df["latency_ms"].isna().all():
        return None
    s = summarise(df)
    latency = finished(df).groupby(VARIANT, dropna=False, sort=False)["latency_ms"].first()
    s = s.merge(latency.reset_index(), on=VARIANT, how="left").dropna(subset=["latency_ms"])
    if s.empty:
        return None
    xlabel = "Latency (ms per batch, median), log scale"
    return _accuracy_against(df, s, s["latency_ms"], lambda ax: log_axis(ax, "x", 10), xlabel)


def acc_vs_latency(df: pd.DataFrame, out: Path, name: str = "acc_vs_latency") -> list[Path]:
    return save(draw_acc_vs_latency(df), out, name)


def budget_label(samples: int) -> str:
    """100000 -> "100k", 1500000 -> "1.5M": short names for budgets in labels and files."""
    for scale, unit in ((1_000_000, "M"), (1_000, "k")):
        if samples >= scale:
            return f"{samples / scale:g}{unit}"
    return str(samples)


def draw_budget_trend(rows: list[dict], df: pd.DataFrame | None = None):
    """Compound minus the best single dimension (mean and std of per-seed differences)
    against the training budget, one line per phi: does the verdict move with training?
    ``rows``: effscale.report.verdicts.trend_by_budget's."""
    rows = pd.DataFrame(rows)
    if rows.empty:  # trend_by_budget keeps only what was measured at two budgets or more
        return None
    fig, ax = plt.subplots(figsize=(5.4, 4), layout="constrained")
    rules = rows["scaling"].fillna("") if "scaling" in rows else pd.Series("", index=rows.index)
    several_rules = rules.nunique() > 1
    for (rule, phi), r in rows.assign(rule=rules).sort_values("budget").groupby(["rule", "phi"]):
        ax.errorbar(
            r["budget"],
            r["compound_minus_best"],
            yerr=r["difference_std"].fillna(0),
            marker="o",
            capsize=3,
            label=f"φ = {phi:g}" + (f", {rule}" if several_rules and rule else ""),
        )
    ax.axhline(0, color="black", lw=0.8)
    budgets = sorted(rows["budget"].unique())  # ticked, with round ones between
    log_axis(ax, "x", 10, lambda v: budget_label(int(round(v))), keep=budgets)
    ax.margins(x=0.1)
    ax.set_xlabel("Training budget (samples per point), log scale")
    ax.set_ylabel("Compound − best single (top-1 points)")
    ax.set_title("Compound vs the best single dimension, by budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=_difference_note(rows), title_fontsize=7)
    return captioned(fig, caption(finished(df)) if df is not None else "")


def _difference_note(rows: pd.DataFrame) -> str:
    """The trend legend's words for its points: over how many seeds, or "1 seed"."""
    seeds = rows["seeds"].dropna() if "seeds" in rows else pd.Series(dtype=float)
    if seeds.empty:
        return "mean ± std of per-seed differences"
    low, high = int(seeds.min()), int(seeds.max())
    if high <= 1:
        return "difference on 1 seed (no spread)"
    return f"mean ± std of per-seed differences, {seed_words(low, high)}"


def budget_trend(
    rows: list[dict], out: Path, name: str = "budget_trend", df: pd.DataFrame | None = None
) -> list[Path]:
    return save(draw_budget_trend(rows, df), out, name)


def all_plots(df: pd.DataFrame, out: Path, cells: pd.DataFrame | None = None) -> list[Path]:
    """Every plot the results support; one set per model when a study mixes models, and
    per budget when it trains at several (then also the verdict's trend over budgets).
    ``cells``: the results with a row per Figure-8 cell a run serves
    (effscale.report.report.every_cell), for Figure 8 and the trend; default ``df``."""
    from effscale.report.verdicts import compound_vs_single, trend_by_budget

    cells = df if cells is None else cells
    out.mkdir(parents=True, exist_ok=True)
    models = list(df["model"].dropna().unique())
    budgets = sorted(df["budget"].dropna().unique()) if "budget" in df else []
    paths = []

    def pick(frame, model, budget=None):
        frame = frame[frame["model"] == model] if model else frame
        return frame[frame["budget"] == budget] if budget is not None else frame

    for model in models or [None]:
        suffix = f"-{model}" if len(models) > 1 else ""
        for budget in budgets if len(budgets) > 1 else [None]:
            tag = suffix + (f"-{budget_label(int(budget))}" if budget is not None else "")
            for make in (figure3, figure8, flops_vs_phi, acc_vs_params, acc_vs_latency):
                part = pick(cells if make is figure8 else df, model, budget)
                paths += make(part, out, make.__name__ + tag)
        sub = pick(cells, model)
        trend = trend_by_budget(compound_vs_single(sub))
        paths += budget_trend(trend, out, "budget_trend" + suffix, sub)
    return paths
