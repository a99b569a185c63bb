"""A grid search's ranking and plot (Step 1 of the paper; the search itself is planned and run
by effscale.study.search): per network, mean and spread of top-1 over seeds, the winner the
highest mean (ties: fewer FLOPs); search.json gets the ranked table and ``chosen``,
figures/search.png the plot."""

import math
from pathlib import Path

from effscale import io
from effscale.report.labels import legend_below, place_labels
from effscale.report.plots import caption, captioned, plt, save, spread_note
from effscale.report.stats import ALPHA, paired_t
from effscale.report.verdicts import finished as finished_rows
from effscale.report.verdicts import mean_std
from effscale.rundir import FINISHED, SEARCH_FILE, StudyDir, read_search


def search_report(run_dir: str | Path) -> dict:
    """Rank the candidates from whatever has finished; rewrite search.json and the plot.

    Returns the search record with, per candidate, ``seeds`` (finished), ``top1_mean``,
    ``top1_std`` and ``rank`` (of its network; candidates sharing a network share it),
    ``base`` (its top-1), ``finished`` (every planned point done), ``leader`` (the best so
    far) and ``chosen`` (the leader, once the search is finished; else None).
    """
    store = StudyDir(run_dir)
    record = read_search(store.path)
    results = store.write_results()
    by_key = {row["key"]: row for row in results.to_dict("records")}

    def scores(keys: list[str]) -> list[float]:
        return list(_by_seed(by_key, keys).values())

    networks: dict[int, dict] = {}
    for row in record["candidates"]:
        if not row["kept"]:
            continue
        n = row["network"]
        if n not in networks:
            top1 = scores(row["keys"])
            mean, std, _ = mean_std(top1, missing=None)
            networks[n] = {"seeds": len(top1), "top1_mean": mean, "top1_std": std}
            networks[n]["flops"] = row["flops"]
    ranked = sorted(
        (n for n, s in networks.items() if s["top1_mean"] is not None),
        key=lambda n: (-networks[n]["top1_mean"], networks[n]["flops"]),
    )
    for i, n in enumerate(ranked, 1):
        networks[n]["rank"] = i
    for row in record["candidates"]:
        stats = networks.get(row.get("network"), {})
        row.update({k: stats.get(k) for k in ("seeds", "top1_mean", "top1_std", "rank")})
        if not row["kept"]:
            row["seeds"] = 0

    planned = set(record["base_keys"] + [k for r in record["candidates"] for k in r["keys"]])
    n_finished = sum(store.state(k) in FINISHED for k in planned)
    finished = n_finished == len(planned)
    base_top1 = scores(record["base_keys"])
    mean, std, _ = mean_std(base_top1, missing=None)
    record["base_top1"] = {"seeds": len(base_top1), "top1_mean": mean, "top1_std": std}
    leader = None
    if ranked:
        best = next(
            r for r in record["candidates"] if r.get("network") == ranked[0] and r["trained"]
        )
        leader = {
            "alpha": best["alpha"],
            "beta": best["beta"],
            "gamma": best["gamma"],
            "phi": record["phi"],
            "target": record["target"],
            "top1_mean": best["top1_mean"],
            "top1_std": best["top1_std"],
            "realised_flops_ratio": best["realised_flops_ratio"],
            "seeds": best["seeds"],
            "same_network": [
                [r["alpha"], r["beta"], r["gamma"]]
                for r in record["candidates"]
                if r.get("network") == ranked[0] and r is not best
            ],
            "margin": _margin(record, ranked, by_key),
        }
    record.update(
        finished=finished,
        points={"planned": len(planned), "finished": n_finished},
        leader=leader,
        chosen=leader if finished else None,
    )
    figures = search_plot(record, store.path / "figures", caption=caption(finished_rows(results)))
    record["figures"] = [str(p) for p in figures]
    io.write_json(store.path / SEARCH_FILE, record)
    return record


def _by_seed(by_key: dict, keys: list[str]) -> dict[int, float]:
    """Top-1 of the finished runs among ``keys``, per seed (a diverged run has none)."""
    rows = [by_key[k] for k in keys if k in by_key and by_key[k]["status"] == "done"]
    return {int(r["seed"]): float(r["top1"]) for r in rows if math.isfinite(r["top1"])}


def _margin(record: dict, ranked: list[int], by_key: dict) -> dict | None:
    """The leading network's top-1 minus the runner-up's, paired by seed; None without a
    runner-up."""
    if len(ranked) < 2:
        return None
    first, second = (
        next(r for r in record["candidates"] if r.get("network") == n and r["trained"])
        for n in ranked[:2]
    )
    ours, theirs = _by_seed(by_key, first["keys"]), _by_seed(by_key, second["keys"])
    paired = [ours[seed] - theirs[seed] for seed in sorted(ours.keys() & theirs.keys())]
    mean, std, n = mean_std(paired, missing=None)
    test = paired_t(paired)
    return {
        "runner_up": [second["alpha"], second["beta"], second["gamma"]],
        "top1_mean": mean,
        "top1_std": std,
        "seeds": n,
        "p": test.p if math.isfinite(test.p) else None,
        "resolved": math.isfinite(test.p) and test.p < ALPHA,
    }


def margin_sentence(best: dict) -> str:
    """How far the chosen (or leading) network is ahead of the runner-up, paired by seed,
    with the paired t-test's p-value; empty with no runner-up. The two were ranked by these
    same seeds' means, so the p-value flatters the margin: read it as an upper bound on the
    evidence."""
    margin = best.get("margin")
    if not margin or margin["top1_mean"] is None:
        return ""
    alpha, beta, gamma = margin["runner_up"]
    spread = f" ± {margin['top1_std']:.2f}" if margin["top1_std"] is not None else ""
    seeds = f"{margin['seeds']} seed{'s' * (margin['seeds'] != 1)}"
    if margin["seeds"] < 2 or margin.get("p") is None:
        judged = "too few seeds to tell from noise"
    elif margin["resolved"]:
        judged = f"resolved (paired t, p = {margin['p']:.2g} < {ALPHA:g})"
    else:
        judged = (
            f"not resolved (paired t, p = {margin['p']:.2g}): this search does not separate the two"
        )
    return (
        f"ahead of the runner-up (alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}) by "
        f"{margin['top1_mean']:+.2f}{spread} points over {seeds}, {judged}"
    )


def table(record: dict) -> list[dict]:
    """The kept candidates, best first, in the columns the command prints."""
    rows = [r for r in record["candidates"] if r["kept"]]
    target = record["target"]
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, abs(r["product"] - target)))
    columns = [
        "alpha",
        "beta",
        "gamma",
        "product",
        "d",
        "w",
        "r",
        "resolution",
        "flops",
        "target_flops_ratio",
        "realised_flops_ratio",
        "network",
        "trained",
        "seeds",
        "top1_mean",
        "top1_std",
        "rank",
    ]
    return [{c: r.get(c) for c in columns} for r in rows]


# --------------------------------------------------------------------------------------
# The plot
# --------------------------------------------------------------------------------------


def _coefficients(rows: list[dict]) -> str:
    """A network's label: the α, β, γ of each candidate that builds it, "1, 1.4, 1"."""
    return "\n".join(f"{r['alpha']:g}, {r['beta']:g}, {r['gamma']:g}" for r in rows)


def draw_search(record: dict, caption: str = ""):
    """Top-1 vs realised FLOPs ratio per trained network, each labelled with its α, β, γ
    (every candidate that builds it), the chosen one starred and in red; ``caption``: the
    line under it (effscale.report.plots.caption of the results). None with nothing trained."""
    kept = [r for r in record["candidates"] if r["kept"] and r["top1_mean"] is not None]
    nets = [r for r in kept if r["trained"]]
    if not nets:
        return None
    low, high = min(r["seeds"] for r in nets), max(r["seeds"] for r in nets)
    fig, ax = plt.subplots(figsize=(5.4, 4.6), layout="constrained")
    ax.errorbar([r["realised_flops_ratio"] for r in nets], [r["top1_mean"] for r in nets],
                yerr=[r["top1_std"] or 0.0 for r in nets], fmt="o", color="tab:blue",
                capsize=3, ms=5,
                label=f"candidate network, labelled α, β, γ; {spread_note(low, high)}")  # fmt: skip
    best = record.get("chosen") or record.get("leader")
    if best:
        said = "chosen" if record.get("chosen") else "leading (search unfinished)"
        ax.errorbar([best["realised_flops_ratio"]], [best["top1_mean"]],
                    yerr=[best["top1_std"] or 0.0], fmt="*", color="tab:red", capsize=3,
                    ms=14, zorder=5, label=said)  # fmt: skip
    base = record.get("base_top1") or {}
    if base.get("top1_mean") is not None:
        ax.axhline(base["top1_mean"], color="black", ls="--", lw=1,
                   label=f"base (FLOPs ratio 1): {base['top1_mean']:.1f} %")  # fmt: skip
    goal = record["target"] ** record["phi"]
    ax.axvline(goal, color="gray", ls=":", lw=1, label=f"target {goal:g}x")
    ax.set_xlabel("Realised FLOPs / base FLOPs")
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title(
        f"{record['model']}: grid search at φ={record['phi']:g} (α·β²·γ² ≈ {record['target']:g})"
    )
    ax.grid(alpha=0.3)
    ax.margins(x=0.2, y=0.1)  # room for the labels of the end points
    legend_below(fig, ax)
    _label_networks(ax, nets, kept, best)
    return captioned(fig, caption)


def _label_networks(ax, nets: list[dict], kept: list[dict], best: dict | None) -> None:
    """Each trained network's α, β, γ beside it, placed clear of the others and the legend;
    the chosen one's in red."""
    chosen = best and (best["alpha"], best["beta"], best["gamma"])
    plain, red = [], []
    for net in nets:
        rows = [r for r in kept if r["network"] == net["network"]]
        point = (net["realised_flops_ratio"], net["top1_mean"], _coefficients(rows))
        if any((r["alpha"], r["beta"], r["gamma"]) == chosen for r in rows):
            red.append((*point, {"color": "tab:red", "fontweight": "bold"}))
        else:
            plain.append(point)
    place_labels(ax, red + plain, fontsize=7)  # the chosen first: its place is the best


def search_plot(record: dict, out: Path, name: str = "search", caption: str = "") -> list[Path]:
    """Draw the search (draw_search) into ``out`` as PNG and SVG."""
    fig = draw_search(record, caption)
    if fig is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    return save(fig, out, name)
