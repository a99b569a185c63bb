"""report.md: what was run, on what, the tables, the plots and the verdicts with numbers.

Re-runnable at any time: it reads only the run directory, so a partial study gets a partial
report, and the verdicts say what the data so far can and cannot support.
"""

import math
from pathlib import Path

import pandas as pd

from effscale import io, text
from effscale.latency import latency_for_results
from effscale.report import plots
from effscale.report.columns import readable
from effscale.report.lawsection import law_section
from effscale.report.pooling import pooled_compound_vs_single
from effscale.report.stats import ALPHA
from effscale.report.summary import summary_lines
from effscale.report.transfer import (
    compound_transfers_better,
    transfer_section,
    transfer_table,
)
from effscale.report.verdicts import (
    IMPROVING,
    compound_vs_single,
    diminishing_returns,
    figure8_per_seed,
    mixed_environments,
    summarise,
    trend_by_budget,
    trend_group,
)
from effscale.rundir import LATENCY_FILE, SEARCH_FILE, SUMMARY, StudyDir
from effscale.study.estimate import timing_table

SUMMARY_COLUMNS = [
    "model",
    "base_width",
    "d",
    "w",
    "r",
    "resolution",
    "roles",
    "phi",
    "flops",
    "realised_flops_ratio",
    "params",
    "seeds",
    "top1_mean",
    "top1_std",
]


TIMING_COLUMNS = ["variant", "seed", "samples", "est_seconds", "measured_seconds", "ratio"]

# Settings rather than measurements: shown as set (2.333, 1.025), not rounded to 2 decimals.
MULTIPLIERS = {"d", "w", "r", "phi", "alpha", "beta", "gamma", "base_width", "base_depth"}


def _cell(key: str, v) -> str:
    """One number format for every table of the report: counts and FLOPs as whole numbers
    with thousands separators, accuracies, gains, spreads and ratios with two decimals,
    p-values to two significant digits, multipliers as set; "-" for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and key in MULTIPLIERS:
        return f"{v:.4g}"
    if isinstance(v, float) and (key in ("p", "level") or key.startswith("p_")):
        return f"{v:.2g}"  # a p-value of 0.003 is not 0.00
    if isinstance(v, (int, float)) and ("flops" in key and "ratio" not in key):
        return f"{int(round(v)):,}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _variants_table(summary: pd.DataFrame) -> str:
    """The variants, one row each; per budget when the study trains at several (a variant at
    two budgets is two rows, told apart only by this column)."""
    columns = SUMMARY_COLUMNS
    if "budget" in summary and summary["budget"].nunique() > 1:
        columns = [*columns[: columns.index("flops")], "budget", *columns[columns.index("flops") :]]
        summary = summary.sort_values(["budget", "flops"], kind="stable")
    rows = [{c: r.get(c) for c in columns} for r in summary.to_dict("records")]
    return text.to_markdown(_fmt_rows(rows))


def _fmt_rows(rows: list[dict]) -> list[dict]:
    """Rows as report.md shows them: one number format (_cell), readable column names, a
    mean and its spread in one cell (effscale.report.columns)."""
    return [readable({k: _cell(k, v) for k, v in r.items()}) for r in rows]


def _base_line(study) -> str:
    """Which base the study scales: model, base width and depth, base resolution, stem."""
    bases = sorted({
        f"{p.variant.base_name} (base width {p.variant.base_width:g}, base depth "
        f"{p.variant.base_depth:g}; {p.variant.base_resolution} px base"
        + (", small-input stem)" if p.variant.small_input else ")")
        for p in study.points
    })  # fmt: skip
    return f"- base: {'; '.join(bases)}; d and w multiply it" if bases else ""


def _timing(store: StudyDir, study) -> tuple[list[str], dict]:
    """The report's section on estimated vs measured time, and its record."""
    rows = timing_table(store.path, study)
    if not rows:
        return [], {"points": []}
    est = sum(r["est_seconds"] for r in rows)
    measured = sum(r["measured_seconds"] for r in rows)
    ratios = sorted(r["ratio"] for r in rows)
    median = (
        ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1 :][:2]) / 2
    )
    record = {
        "points": rows,
        "estimated_seconds": round(est, 1),
        "measured_seconds": round(measured, 1),
        "ratio": round(measured / est, 2) if est else None,
        "median_ratio": round(median, 2),
    }
    lines = [
        "## Time: estimated before training, and measured",
        "",
        f"Estimated {est:,.0f} s for the {len(rows)} finished points with an estimate, measured "
        f"{measured:,.0f} s (training and evaluation, from each point's metrics.jsonl): "
        f"measured / estimated = {record['ratio']:.2f} in all, {ratios[0]:.2f} to "
        f"{ratios[-1]:.2f} per point (median {median:.2f}). The estimate is 3 x forward FLOPs x "
        "samples plus the evaluations, over the training FLOP/s a probe measured on this device "
        "(effscale.study.estimate).",
        "",
        text.to_markdown(_fmt_rows([{k: r[k] for k in TIMING_COLUMNS} for r in rows])),
    ]
    return lines, record


def _environment(store: StudyDir, df: pd.DataFrame) -> dict:
    for key in df["key"]:
        cfg = store.config(key)
        if cfg is not None:
            return cfg.get("environment", {})
    return {}


def trained_on(environment: dict) -> str:
    """What a point was trained on that changes its numbers but not its key: the device
    type and the thread count (config.json's environment)."""
    device = str(environment.get("device", "?")).split(":")[0]
    threads = environment.get("threads", "?")
    return f"{device}, {threads} thread{'s' * (threads != 1)}"


def _trained_on(store: StudyDir, df: pd.DataFrame) -> pd.Series:
    envs = [(store.config(k) or {}).get("environment", {}) for k in df["key"]]
    return pd.Series([trained_on(e) for e in envs], index=df.index, dtype=object)


def every_cell(df: pd.DataFrame, study) -> pd.DataFrame:
    """The results with one more row for each other Figure-8 cell a run serves (Point.also),
    under that cell's roles, phi and scaling: Figure 8 picks rows by cell, and a run that
    serves two coefficient choices counts for both."""
    also = {p.key: p.also for p in study.points if p.also}
    extra = [
        {**row, "roles": ";".join(roles), "phi": phi, "scaling": scaling}
        for row in df[df["key"].isin(also)].to_dict("records")
        for roles, phi, scaling in also[row["key"]]
    ]
    if not extra:
        return df
    return pd.concat([df, pd.DataFrame(extra, columns=df.columns)], ignore_index=True)


def write_report(run_dir: str | Path, alpha: float = ALPHA) -> dict:
    """Write results.csv, summary tables, plots (figures/) and report.md; return the verdicts,
    each decided at the two-sided level ``alpha``."""
    store = StudyDir(run_dir)
    study = store.load_study()
    io.writable_dir(store.path, "run directory")
    store.remove_orphans()
    df = store.write_results(study)
    if (store.path / LATENCY_FILE).exists():  # measured by --latency: the stored figures only
        df = latency_for_results(store.path, measure=False)
    status = store.status()
    summary = summarise(df)
    cells = every_cell(df, study)
    figures = plots.all_plots(df, store.path / "figures", cells=cells)
    dims, compound = diminishing_returns(df, alpha), compound_vs_single(cells, alpha)
    pooled = pooled_compound_vs_single(cells, alpha)
    io.write_csv(store.path / SUMMARY, summary)
    env = _environment(store, df)
    df = df.assign(trained_on=_trained_on(store, df))
    warnings = [f"{w}: not like for like" for w in mixed_environments(df)]
    warnings += [
        f"{p}: that point is not counted (a rerun trains it again)" for p in store.problems
    ]

    lines = _header(store, study, df, status, env)
    summary_at = len(lines)  # the summary goes here once every verdict is known
    lines += _warnings_section(warnings)
    per_seed = figure8_per_seed(cells)
    lines += _verdict_sections(dims, compound, per_seed, alpha)
    lines += _pooled_section(pooled)
    trend = trend_by_budget(compound)
    lines += _budget_section(trend)
    transfer = transfer_table(df, study.points, alpha)
    transfer_question = compound_transfers_better(df, study.points, alpha)
    lines += transfer_section(transfer, transfer_question, study, _fmt_rows)
    lines[summary_at:summary_at] = summary_lines(dims, compound, pooled, transfer_question, study)
    fitted_law = law_section(store.path, lines)  # the study's own law, or why there is none
    lines += ["## Figures", ""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in figures if p.suffix == ".png"]
    lines += ["", "## Variants (mean over seeds)", ""]
    lines.append(_variants_table(summary) if not summary.empty else "No finished points yet.\n")
    timing_lines, timing = _timing(store, study)  # after the figures: how, not what
    lines += timing_lines
    search = None
    if (store.path / SEARCH_FILE).exists():  # a grid search's run directory (Step 1)
        search, search_lines = _search_section(store)
        lines[2:2] = search_lines
    io.write_text(store.path / "report.md", "\n".join(lines) + "\n")
    return {
        "warnings": warnings,
        "search": search,
        "report": str(store.path / "report.md"),
        "figures": [str(p) for p in figures],
        "diminishing_returns": dims,
        "compound_vs_single": compound,
        "pooled_compound_vs_single": pooled,
        "figure8_per_seed": per_seed,
        "alpha": alpha,
        "budget_trend": trend,
        "transfer": transfer,
        "transfer_compound_vs_single": transfer_question,
        "timing": timing,
        "fitted_law": fitted_law,
        "status": status,
    }


def _header(store: StudyDir, study, df: pd.DataFrame, status: dict, env: dict) -> list[str]:
    """The title and what the study is: its points, data, recipe, base and hardware."""
    hours = df["train_seconds"].fillna(0).sum() / 3600
    recipe = study.points[0].recipe if study.points else None
    budgets = sorted({p.recipe.samples for p in study.points})
    protocols = sorted({p.recipe.protocol for p in study.points})
    return [
        f"# {study.name}",
        "",
        f"- points: {status['points']} planned, {status['done']} done, "
        f"{status['running']} running, {status['interrupted']} interrupted, "
        f"{status['failed']} failed, {status['diverged']} diverged, "
        f"{status['corrupt']} with damaged files, {status['pending']} pending",
        f"- data: {', '.join(sorted(set(p.data for p in study.points)))}",
        f"- recipe: {' and '.join(f'{b:,}' for b in budgets)} samples per point, batch "
        f"{recipe.batch_size}, {recipe.optimizer}, lr {recipe.lr:g}, {recipe.schedule}; "
        f"training protocol {', '.join(map(str, protocols))} (effscale.recipe.PROTOCOL)"
        if recipe
        else "",
        _base_line(study),
        *_upsampled(store, df),
        f"- training time: {hours:.2f} h summed over points, on "
        f"{env.get('hardware', '?')} ({env.get('device', '?')}, "
        f"{env.get('threads', '?')} thread(s) per point), torch {env.get('torch', '?')}",
        *_environments_line(df),
        "",
    ]


def _warnings_section(warnings: list[str]) -> list[str]:
    if not warnings:
        return []
    return [
        "## Warnings",
        "",
        *[f"- {w}" for w in warnings],
        "",
        "A point's key does not hold the thread count or the device type, yet both change "
        "its numbers (a point trained with 1 thread differed from the same point with 2 "
        "by 1 to 3.4 top-1 points): a verdict standing on both kinds compares unlike runs.",
        "",
    ]


def _table_section(title: str, rows: list[dict], intro: str, empty: str) -> list[str]:
    """A verdict's section: a heading, then its table with an intro, or what is missing."""
    lines = [title, ""]
    if rows:
        lines += [intro, "", text.to_markdown(_fmt_rows(rows))]
    else:
        lines.append(empty)
    return lines


def _verdict_sections(
    dims: list[dict], compound: list[dict], per_seed: list[dict], alpha: float
) -> list[str]:
    """The paper's two verdicts: Figure 3's diminishing returns and Figure 8's comparison
    (with the per-seed numbers it stands on), and how they were decided."""
    lines = []
    if dims or compound:
        lines += [
            "## How the verdicts are decided",
            "",
            f"Each verdict is Student's paired t-test on per-seed differences (two-sided, n - 1 "
            f'degrees of freedom): "supported" or "contradicted" only where p < {alpha:g}, '
            f'else "not resolved" with the number of seeds that would resolve a difference of '
            "the observed size at the observed spread (80 % power). The 95 % CI column is the "
            f"{100 * (1 - alpha):g} % confidence interval of the mean difference. Compound is "
            "tested against every matched dimension (p depth, p width, p resolution: "
            "Holm-adjusted over the dimensions), not only the one best on the means, since "
            "picking the best after looking at the same seeds tilts the test against compound: "
            "it is contradicted where "
            "some dimension is ahead after the correction, and supported only where it is ahead "
            "of every dimension at the level (an intersection-union test). With 3 seeds a "
            "difference needs to be about 4.3 standard errors from zero to pass at 0.05.",
            "",
        ]
    lines += _table_section(
        "## Diminishing returns (paper Figure 3)",
        dims,
        "Accuracy gained per doubling of FLOPs along each dimension alone, on the "
        "first step and on the last, mean ± std over seeds (points of top-1); the test is "
        "on first minus last, paired by seed.",
        "No dimension has three or more finished points yet.\n",
    )
    lines += _table_section(
        "## Compound vs the best single dimension at matched FLOPs (paper Figure 8)",
        [{k: v for k, v in r.items() if k != "level"} for r in compound],  # the level: above
        "Compound top-1 minus the best single-dimension top-1 at the same counted "
        "FLOPs, per seed; mean ± std of those differences, its interval, and the "
        "Holm-adjusted p-value against each dimension.",
        "No compound point with finished matched single-dimension points yet.\n",
    )
    if per_seed:
        lines += [
            "Per seed (top-1; compound - best against the dimension best on the mean, "
            '"-" where either is missing; the means above pair the seeds that have both):',
            "",
            text.to_markdown(_fmt_rows(per_seed)),
        ]
    if dims or compound:
        lines += [
            f"Still improving names the points a verdict stands on that gained more than "
            f"{IMPROVING:g} top-1 point(s), on average over seeds, in about the last quarter of "
            "their training (late_gain in results.csv): a verdict standing on them may move "
            "with a longer budget.",
            "",
        ]
    return lines


def _pooled_section(pooled: list[dict]) -> list[str]:
    """What the study says as a whole: compound minus each dimension over every cell."""
    if not pooled:
        return []
    return [
        "## The study as a whole: compound minus each dimension, pooled over cells",
        "",
        "Every cell (phi, budget, coefficient choice) whose rule scales more than one "
        "dimension, combined: cells that share no run as independent estimates (seed-weighted "
        "mean, seed variance pooled over cells, sum(n - 1) degrees of freedom), cells that "
        "share runs by seed (each seed's mean over the cells, then a paired t-test). It tests "
        "the average difference over these cells, not that every cell has it; p is "
        "Holm-adjusted over the dimensions.",
        "",
        text.to_markdown(_fmt_rows(pooled)),
        "",
    ]


def _search_section(store: StudyDir) -> tuple[dict, list[str]]:
    """A grid search's record (Step 1) and the lines that open the report with its result."""
    from effscale.report.search import margin_sentence, search_report
    from effscale.report.search import table as search_table

    search = search_report(store.path)
    best = search.get("chosen") or search.get("leader")
    if not best:
        return search, []
    state = "chosen" if search.get("chosen") else "leading so far (search unfinished)"
    ahead = margin_sentence(best)
    return search, [
        "## Grid search for alpha, beta, gamma (paper Step 1)",
        "",
        f"{state}: alpha={best['alpha']:g}, beta={best['beta']:g}, "
        f"gamma={best['gamma']:g}, top-1 {_mean_pm(best)} (base: {_mean_pm(search['base_top1'])})"
        + (f"; {ahead}" if ahead else "")
        + ". Kept candidates, best first (top-1 mean and std over seeds):",
        "",
        text.to_markdown(_fmt_rows(search_table(search))),
        "![search](figures/search.png)",
        "",
    ]


def trend_sentences(trend: list[dict]) -> list[str]:
    """One line per model, phi and coefficient choice: compound − best at the smallest and
    the largest budget, and how far it moved (the model is named when there are several)."""
    lines = []
    several_models = len({r.get("model") for r in trend}) > 1
    for model, scaling, phi in dict.fromkeys(map(trend_group, trend)):
        at = [r for r in trend if trend_group(r) == (model, scaling, phi)]
        first, last = at[0], at[-1]
        move = last["compound_minus_best"] - first["compound_minus_best"]
        rule = f" ({scaling})" if scaling else ""
        rule = f"{rule} of {model}" if several_models else rule
        # the seed counts are said only where the two ends stand on different seeds
        said = first["seeds"] != last["seeds"]
        n0, n1 = (f" ({r['seeds']} seed{'s' * (r['seeds'] != 1)})" * said for r in (first, last))
        lines.append(
            f"φ = {phi:g}{rule}: compound − best {first['compound_minus_best']:+.2f} at "
            f"{first['budget']:,} samples{n0}, {last['compound_minus_best']:+.2f} at "
            f"{last['budget']:,}{n1} ({move:+.2f} points)"
        )
    return lines


def _budget_section(trend: list[dict]) -> list[str]:
    """How the Figure-8 verdict moves as the training budget grows (when there are several)."""
    if not trend:
        return []
    lines = ["## How the verdict moves with the training budget", ""]
    lines += [
        "Compound minus the best single dimension at matched FLOPs, per phi and budget "
        "(mean ± std of per-seed differences); positive favours compound scaling.",
        "",
        text.to_markdown(_fmt_rows(trend)),
    ]
    lines += [f"- {line}." for line in trend_sentences(trend)]
    return lines + ["", "![budget trend](figures/budget_trend.png)", ""]


def _environments_line(df: pd.DataFrame) -> list[str]:
    """Where the finished points were trained, when not all in one environment."""
    counts = df.loc[df["status"] == "done", "trained_on"].value_counts()
    if len(counts) < 2:
        return []
    return [
        "- trained on: "
        + "; ".join(f"{env} ({n} run{'s' * (n != 1)})" for env, n in sorted(counts.items()))
        + " (see Warnings)"
    ]


def _upsampled(store: StudyDir, df: pd.DataFrame) -> list[str]:
    """One line when some variants train above the stored image size (upsampled images)."""
    stored, sizes = set(), set()
    for key, resolution in zip(df["key"], df["resolution"]):
        try:
            px = int((store.config(key) or {})["identity"]["data"]["stored_px"])
        except (ValueError, KeyError, TypeError):
            continue
        if resolution > px:
            stored.add(px)
            sizes.add(int(resolution))
    if not sizes:
        return []
    return [
        f"- upsampled: images are stored at {', '.join(map(str, sorted(stored)))} px; variants "
        f"at {', '.join(map(str, sorted(sizes)))} px see them upsampled (no detail beyond the "
        "stored size)"
    ]


def redraw(run_dir: str | Path) -> list[Path]:
    """Redraw the plots of a run directory from its results (`effscale plot`)."""
    store = StudyDir(run_dir)
    study = store.load_study()
    io.writable_dir(store.path, "run directory")
    store.remove_orphans()
    return plots.all_plots(store.write_results(study), store.path / "figures")


def _mean_pm(stats: dict) -> str:
    """Top-1 as mean ± std from a {top1_mean, top1_std, seeds} record; "-" before any run
    finished, and the seed count instead of a spread when one seed is in."""
    if stats["top1_mean"] is None:
        return "-"
    if stats.get("top1_std") is None:
        return f"{stats['top1_mean']:.2f} (1 seed)"
    return f"{stats['top1_mean']:.2f} ± {stats['top1_std']:.2f}"
