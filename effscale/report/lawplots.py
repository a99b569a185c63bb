"""Plots of a fitted scaling law (effscale.law), each written as PNG and SVG like plots.py.

law_parity  measured top-1 (mean over seeds, bars ± 1 std) against the law's prediction
            (bars: its 80 % interval for a mean of that many seeds); configurations held out
            of the fit (``effscale fit --holdout-above``) are marked apart, since only they
            test the law
law_curves  the law's top-1 drawn over accuracy vs FLOPs, one panel per dimension alone and
            one for compound scaling where the study has it, with the measured points

A curve follows the ray in log (d, w, r) from the base through the path's largest measured
point (for one dimension: that dimension alone; for compound: the largest compound point, so
off-ray points such as a grid search's are drawn but not joined), its FLOPs interpolated as
a power law between the base and that point; past it the curve is thinner: extrapolation.
The band is the law's own 80 % bootstrap interval (without the seed noise a single run adds).
The library draws these without a CLI: ``parity(table, out)`` and ``curves(boot, points, out)``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from effscale.report.plots import (
    STYLE,
    captioned,
    log2_axis,
    plt,
    points_phrase,
    save,
    spread_note,
)

PATHS = ("depth", "width", "resolution", "compound")
ALONE = 1.01  # a multiplier above this counts as scaled
BEYOND = 2.0  # the curve runs on to this many times the path's largest FLOPs
HELD = ("tab:red", "D")
FITTED = ("tab:blue", "o")


def law_caption(points, law: str) -> str:
    """Dataset (by name, as plots.caption), base and budgets, then ``law`` (which law, fitted
    on what): what every law figure stands on."""
    from effscale.data.names import short_name

    i = points.identity
    budgets = " and ".join(f"{b:,}" for b in points.budgets)
    base = (f"{i.get('model')} at base width {float(i.get('base_width', 1)):g}, "
            f"{int(i.get('base_resolution', 0))} px base")  # fmt: skip
    return (f"data: {short_name(str(i.get('data')))}; base: {base}; {budgets} training samples "
            f"per point; {law}, 80 % intervals")  # fmt: skip


def draw_parity(table: pd.DataFrame, caption: str = ""):
    """Measured against predicted; ``table`` has measured, measured_std, predicted, lo, hi
    and held (bool), one row per configuration (effscale.law.validate.score's columns)."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 4.6), layout="constrained")
    held = table["held"].astype(bool) if "held" in table else pd.Series(False, table.index)
    for mask, (color, marker), label in ((~held, FITTED, "fitted"), (held, HELD, "held out")):
        t = table[mask]
        if t.empty:
            continue
        xerr = np.vstack([t["predicted"] - t["lo"], t["hi"] - t["predicted"]]).clip(0)
        ax.errorbar(t["predicted"], t["measured"], xerr=xerr,
                    yerr=t["measured_std"].fillna(0.0), fmt=marker, color=color, ms=5,
                    capsize=2, lw=1, label=f"{label} ({len(t)} configurations)")  # fmt: skip
    lo = float(min(table["lo"].min(), (table["measured"] - table["measured_std"].fillna(0)).min()))
    hi = float(max(table["hi"].max(), (table["measured"] + table["measured_std"].fillna(0)).max()))
    pad = 0.05 * (hi - lo) + 0.1
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=1, ls="--",
            label="measured = predicted")  # fmt: skip
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("Predicted top-1 (%), bars: 80 % interval")
    ax.set_ylabel(f"Measured top-1 (%), {_spread(table)}")
    ax.set_title("Fitted law: measured against predicted")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return captioned(fig, caption)


def _spread(table: pd.DataFrame) -> str:
    """What a measured point and its bar are (plots.spread_note), from ``seeds``."""
    if "seeds" not in table or table["seeds"].dropna().empty:
        return "mean ± std over seeds"
    return spread_note(int(table["seeds"].min()), int(table["seeds"].max()))


def parity(table: pd.DataFrame, out: Path, caption: str = "", name="law_parity") -> list[Path]:
    return save(draw_parity(table, caption), Path(out), name)


def _path_configs(cfg: pd.DataFrame, path: str) -> pd.DataFrame:
    """The configurations on one path: a dimension alone, or compound (two or more)."""
    scaled = cfg[["d", "w", "r"]].to_numpy(float) > ALONE
    if path == "compound":
        return cfg[scaled.sum(axis=1) >= 2]
    k = PATHS.index(path)
    return cfg[scaled[:, k] & (scaled.sum(axis=1) == 1)]


def _ray(boot, top: pd.Series, samples: int, n: int = 60) -> pd.DataFrame:
    """The law along the ray from the base through ``top`` (a configuration), to BEYOND
    times its FLOPs: FLOPs ratio, predicted top-1 and the law's interval."""
    from effscale.law.points import SAMPLES_REF

    u = np.log(top[["d", "w", "r"]].to_numpy(float))
    f = max(float(top["flops_ratio"]), 1.0 + 1e-6)
    t = np.linspace(0.0, np.log(BEYOND * f) / np.log(f), n)
    X = np.column_stack([np.exp(np.outer(t, u)), np.full(n, samples / SAMPLES_REF)])
    pred = boot.predict(X)
    return pd.DataFrame({"t": t, "flops_ratio": f**t, "top1": pred["top1"],
                         "lo": pred["law_lo"], "hi": pred["law_hi"]})  # fmt: skip


def _panel(ax, boot, cfg: pd.DataFrame, path: str, budgets: list[int]) -> list[float]:
    """One path's curves and points, per budget; returns the FLOPs ratios shown."""
    color, marker = STYLE[path]
    shown = []
    for n, samples in enumerate(budgets):
        at = cfg[cfg["samples"] == samples]
        on = _path_configs(at, path)
        if on.empty:
            continue
        base = at[(at[["d", "w", "r"]] <= ALONE).all(axis=1)]
        ray = _ray(boot, on.loc[on["flops_ratio"].idxmax()], samples)
        inside = ray["t"] <= 1.0 + 1e-9
        ls = ("-", ":", "-.", "--")[n % 4]
        tag = f", {samples:,}" if len(budgets) > 1 else ""
        ax.plot(ray["flops_ratio"][inside], ray["top1"][inside], color=color, ls=ls, lw=1.5,
                label=f"law{tag}")  # fmt: skip
        beyond = ray["t"] >= ray["t"][inside].max()  # joined to the last measured FLOPs
        ax.plot(ray["flops_ratio"][beyond], ray["top1"][beyond], color=color, ls=ls, lw=0.7)
        ax.fill_between(ray["flops_ratio"], ray["lo"], ray["hi"], color=color, alpha=0.15, lw=0)
        pts = pd.concat([base, on])
        ax.errorbar(pts["flops_ratio"], pts["top1_mean"], yerr=pts["top1_std"].fillna(0.0),
                    fmt=marker, color=color, ms=5, capsize=2, lw=1,
                    label=f"measured{tag}")  # fmt: skip
        shown += list(ray["flops_ratio"]) + list(pts["flops_ratio"])
    return shown


def draw_curves(boot, points, caption: str = ""):
    """The law over accuracy vs FLOPs, per dimension alone and compound where present."""
    cfg = points.configs()
    paths = [p for p in PATHS if not _path_configs(cfg, p).empty]
    if not paths:
        return None
    fig, axes = plt.subplots(1, len(paths), figsize=(3.6 * len(paths), 3.6), sharey=True,
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax, path in zip(axes[0], paths):
        shown = _panel(ax, boot, cfg, path, points.budgets)
        log2_axis(ax, shown, suffix="x")
        ax.set_xlabel("FLOPs over the base's, log scale")
        ax.set_title(f"{path.capitalize()}{' alone' if path != 'compound' else ''}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("Top-1 accuracy (%)")
    return captioned(fig, caption)


def curves(boot, points, out: Path, caption: str = "", name="law_curves") -> list[Path]:
    return save(draw_curves(boot, points, caption), Path(out), name)


def law_figures(boot, points, out: Path, table: pd.DataFrame,
                parity_law: str | None = None) -> list[Path]:  # fmt: skip
    """Both figures into ``out``: the parity plot of ``table`` and the full law's curves.
    ``parity_law`` says which fit the parity table scores when it is not the full law (a
    holdout: "law F3 fitted up to 2.6x FLOPs, ...")."""
    law = f"law {boot.fit.form.name} on {points.n_configs} configurations"
    seeds = points.configs()["seeds"]
    bars = "; " + points_phrase(int(seeds.min()), int(seeds.max()))
    return (parity(table, out, law_caption(points, parity_law or law) + bars
                   + ", across: the 80 % prediction interval")
            + curves(boot, points, out, law_caption(points, law) + bars + "; band: the law's "
                     "80 % interval, thin line: beyond the largest measured point"))  # fmt: skip
