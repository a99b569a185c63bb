"""Plots in the paper's style, from a results table; each written as PNG and SVG.

figure3       accuracy vs FLOPs along each dimension alone (paper Figure 3)
figure8       compound vs single dimensions, the same FLOPs axis (paper Figure 8)
flops_vs_phi  target (alpha*beta^2*gamma^2)^phi and realised FLOPs ratio vs phi
acc_vs_params accuracy vs parameters for every variant
acc_vs_latency accuracy vs measured latency (paper Table 4 / Figure 1), when the table has it
budget_trend  compound minus the best single dimension vs the training budget, per phi
              (when a study trains at several budgets; the other plots are then per budget)

Points are means over seeds; error bars are their standard deviation.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from effscale import io  # noqa: E402
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
}
SYMBOL = {"width": "w", "depth": "d", "resolution": "r"}


def _flops_axis(flops: pd.Series) -> tuple[float, str]:
    return (1e9, "FLOPs (billions)") if flops.max() >= 1e9 else (1e6, "FLOPs (millions)")


# Redrawing unchanged results gives byte-identical files (no dates, fixed SVG ids), so the
# figures kept in the repository change only when their data do.
_STABLE = {"png": {"metadata": {"Software": None}}, "svg": {"metadata": {"Date": None}}}


def _save(fig, out: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out / f"{name}.{ext}"
        with io.atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": "effscale"}):
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", **_STABLE[ext])
        paths.append(path)
    plt.close(fig)
    return paths


def _errorbar(ax, s: pd.DataFrame, scale: float, dim: str, label: str):
    color, marker = STYLE[dim]
    ax.errorbar(
        s["flops"] / scale,
        s["top1_mean"],
        yerr=s["top1_std"],
        color=color,
        marker=marker,
        capsize=3,
        lw=1.5,
        ms=6,
        label=label,
    )


def figure3(df: pd.DataFrame, out: Path, name: str = "figure3") -> list[Path]:
    done = finished(df)
    dims = [d for d in DIMENSIONS if (has_role(done, d) | has_role(done, f"match-{d}")).any()]
    if not dims:
        return []
    scale, xlabel = _flops_axis(finished(df)["flops"])
    fig, axes = plt.subplots(
        1, len(dims), figsize=(4.2 * len(dims), 3.6), sharey=True, squeeze=False
    )
    for ax, dim in zip(axes[0], dims):
        s = summarise(dimension_curve(df, dim))
        _errorbar(ax, s, scale, dim, f"scale by {dim}")
        for _, row in s.iterrows():
            value = row[SYMBOL[dim]]
            ax.annotate(
                f"{SYMBOL[dim]}={value:.2g}",
                (row["flops"] / scale, row["top1_mean"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
            )
        ax.set_xlabel(xlabel)
        ax.set_title(f"{dim.capitalize()} scaling")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Top-1 accuracy (%)")
    return _save(fig, out, name)


def figure8(df: pd.DataFrame, out: Path, name: str = "figure8") -> list[Path]:
    done = finished(df)
    if not has_role(done, "compound").any():
        return []
    scale, xlabel = _flops_axis(done["flops"])
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for dim in DIMENSIONS:
        rows = dimension_curve(done, dim)
        if rows["flops"].nunique() > 1:
            _errorbar(ax, summarise(rows), scale, dim, f"scale by {dim}")
    base = done[has_role(done, "base")]
    comp = summarise(pd.concat([base, done[has_role(done, "compound")]]))
    _errorbar(ax, comp, scale, "compound", "compound scaling")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title("Scaling the base with different methods")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def flops_vs_phi(rows: pd.DataFrame, out: Path, name: str = "flops_vs_phi") -> list[Path]:
    """Works on a results table or on `compound --cost-only` rows (phi and both ratios)."""
    rows = rows.dropna(subset=["phi"]).drop_duplicates("phi").sort_values("phi")
    if rows.empty:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.6))
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
    ax.set_yscale("log", base=2)
    ax.set_xlabel("compound coefficient φ")
    ax.set_ylabel("FLOPs / base FLOPs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def _scatter_by_role(ax, s: pd.DataFrame) -> None:
    """Top-1 mean and std against column x, one colour per role. A Figure-8 match counts
    with its dimension; roles without a paper style (search, pretrain, transfer ...) take
    the next colours of a fixed cycle."""
    family = s["roles"].fillna("").str.split(";").str[0].str.removeprefix("match-")
    styles = {**STYLE, "base": ("black", "D")}
    others = iter(["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray"])
    for role in family.unique():
        color, marker = styles.get(role) or (next(others, "gray"), "o")
        match = s[family == role]
        ax.errorbar(
            match["x"],
            match["top1_mean"],
            yerr=match["top1_std"],
            fmt=marker,
            color=color,
            capsize=3,
            label=role or "other",
        )


def acc_vs_params(df: pd.DataFrame, out: Path, name: str = "acc_vs_params") -> list[Path]:
    s = summarise(df)
    if s.empty:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.8))
    _scatter_by_role(ax, s.assign(x=s["params"] / 1e6))
    ax.set_xscale("log")
    ax.set_xlabel("Parameters (millions)")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def acc_vs_latency(df: pd.DataFrame, out: Path, name: str = "acc_vs_latency") -> list[Path]:
    """Top-1 (mean, std over seeds) against latency_ms (effscale.latency.add_latency)."""
    if "latency_ms" not in df.columns or df["latency_ms"].isna().all():
        return []
    s = summarise(df)
    latency = finished(df).groupby(VARIANT, dropna=False, sort=False)["latency_ms"].first()
    s = s.merge(latency.reset_index(), on=VARIANT, how="left").dropna(subset=["latency_ms"])
    if s.empty:
        return []
    fig, ax = plt.subplots(figsize=(5, 3.8))
    _scatter_by_role(ax, s.assign(x=s["latency_ms"]))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))  # 3, 30, not 3x10^0
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    ax.set_xlabel("Latency (ms per batch, median)")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def budget_label(samples: int) -> str:
    """100000 -> "100k", 1500000 -> "1.5M": short names for budgets in labels and files."""
    for scale, unit in ((1_000_000, "M"), (1_000, "k")):
        if samples >= scale:
            return f"{samples / scale:g}{unit}"
    return str(samples)


def budget_trend(rows: list[dict], out: Path, name: str = "budget_trend") -> list[Path]:
    """Compound minus the best single dimension (mean and std of per-seed differences)
    against the training budget, one line per phi: does the verdict move with training?"""
    rows = pd.DataFrame(rows)
    if rows.empty or "budget" not in rows or rows["budget"].nunique() < 2:
        return []
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for phi, r in rows.sort_values("budget").groupby("phi"):
        ax.errorbar(
            r["budget"],
            r["compound_minus_best"],
            yerr=r["difference_std"].fillna(0),
            marker="o",
            capsize=3,
            label=f"φ = {phi:g}",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    budgets = sorted(rows["budget"].unique())
    ax.set_xticks(budgets, [budget_label(int(b)) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("Training budget (samples per point)")
    ax.set_ylabel("Compound − best single (top-1 points)")
    ax.set_title("Compound vs the best single dimension, by budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, name)


def all_plots(df: pd.DataFrame, out: Path) -> list[Path]:
    """Every plot the results support; one set per model when a study mixes models, and
    per budget when it trains at several (then also the verdict's trend over budgets)."""
    from effscale.report.verdicts import compound_vs_single

    out.mkdir(parents=True, exist_ok=True)
    models = list(df["model"].dropna().unique())
    budgets = sorted(df["budget"].dropna().unique()) if "budget" in df else []
    paths = []
    for model in models or [None]:
        sub = df[df["model"] == model] if model else df
        suffix = f"-{model}" if len(models) > 1 else ""
        for budget in budgets if len(budgets) > 1 else [None]:
            part = sub[sub["budget"] == budget] if budget is not None else sub
            tag = suffix + (f"-{budget_label(int(budget))}" if budget is not None else "")
            for make in (figure3, figure8, flops_vs_phi, acc_vs_params, acc_vs_latency):
                paths += make(part, out, make.__name__ + tag)
        paths += budget_trend(compound_vs_single(sub), out, "budget_trend" + suffix)
    return paths
