"""Transfer (paper Table 5): what pre-training adds per variant, and whether the compound
variant transfers better than each dimension scaled alone at the same FLOPs.

A transfer study (effscale.study.plan.plan_transfer) has, per variant, "pretrain" points,
"transfer" points that fine-tune from them, and optionally "scratch" points: the same network
trained on the target data from random weights at the same budget. Differences are paired by
fine-tune seed and tested with Student's t (effscale.report.stats), as every verdict here.
"""

import math

import pandas as pd

from effscale import text
from effscale.report.stats import ALPHA, holm, paired_t, seeds_needed, seeds_phrase
from effscale.report.verdicts import finished, mean_std
from effscale.scaling import DIMENSIONS


def variant_kind(variant) -> str:
    """base, depth, width, resolution (one dimension scaled) or compound (several)."""
    scaled = variant.scaled_dimensions
    return "base" if not scaled else scaled[0] if len(scaled) == 1 else "compound"


def transfer_groups(df: pd.DataFrame, points) -> list[dict]:
    """Per transferred variant and pair of datasets: its pre-training, fine-tune and
    from-scratch results, each as {seed: top-1} of finished points."""
    top1 = finished(df).set_index("key")["top1"].to_dict()
    costs = df.set_index("key")[["flops", "params"]].to_dict("index") if len(df) else {}
    by_key = {p.key: p for p in points}
    groups: dict[tuple, dict] = {}
    for p in points:
        source = by_key.get(p.init_from) if p.init_from else None
        if source is None:
            continue
        g = groups.setdefault(
            (p.variant, source.data, p.data, p.recipe),
            {"variant": p.variant, "pretrain_data": source.data, "finetune_data": p.data,
             "pretrain": {}, "finetune": {}, "scratch": {}, "cost": costs.get(p.key, {})},
        )  # fmt: skip
        if source.key in top1:
            g["pretrain"][source.seed] = top1[source.key]
        if p.key in top1:
            g["finetune"][p.seed] = top1[p.key]
    for p in points:  # from-scratch points: same network, target data and recipe
        for (variant, _, data, recipe), g in groups.items():
            if "scratch" in p.roles and (p.variant, p.data, p.recipe) == (variant, data, recipe):
                if p.key in top1:
                    g["scratch"][p.seed] = top1[p.key]
    return list(groups.values())


def transfer_table(df: pd.DataFrame, points, alpha: float = ALPHA) -> list[dict]:
    """Paper Table 5, one row per transferred variant: FLOPs and parameters (on the target
    data), top-1 on the pre-training data, top-1 on the target after fine-tuning and from
    scratch (mean and std over seeds), and the gain of pre-training: fine-tune minus
    scratch, paired by seed, with its interval and p-value. A variant whose fine-tunes have
    not finished shows its pre-training alone."""
    out = []
    for g in transfer_groups(df, points):
        if not g["pretrain"]:
            continue
        v = g["variant"]
        pre_mean, pre_std, pre_n = mean_std(g["pretrain"].values())
        ft_mean, ft_std, ft_n = mean_std(g["finetune"].values())
        row = {
            "variant": variant_kind(v),
            "d": v.d,
            "w": v.w,
            "resolution": v.resolution,
            "flops": g["cost"].get("flops", math.nan),
            "params": g["cost"].get("params", math.nan),
            "pretrain_data": g["pretrain_data"],
            "finetune_data": g["finetune_data"],
            "pretrain_seeds": pre_n,
            "pretrain_top1": pre_mean,
            "pretrain_std": pre_std,
            "finetune_seeds": ft_n,
            "finetune_top1": ft_mean,
            "finetune_std": ft_std,
        }
        if any("scratch" in p.roles for p in points):
            sc_mean, sc_std, sc_n = mean_std(g["scratch"].values())
            gain = paired_t(_paired(g["finetune"], g["scratch"]), alpha)
            row |= {
                "scratch_seeds": sc_n,
                "scratch_top1": sc_mean,
                "scratch_std": sc_std,
                "gain": gain.mean,
                "gain_ci_low": gain.low,
                "gain_ci_high": gain.high,
                "gain_p": gain.p,
            }
        out.append(row)
    return out


def _paired(a: dict, b: dict) -> list[float]:
    """Per-seed differences a - b over the seeds both have."""
    return [a[s] - b[s] for s in sorted(a.keys() & b.keys())]


def compound_transfers_better(df: pd.DataFrame, points, alpha: float = ALPHA) -> list[dict]:
    """The Table-5 question: at equal FLOPs, does the compound variant fine-tune to a higher
    top-1 than each dimension scaled alone? Compound minus each, paired by fine-tune seed,
    Holm-adjusted over the dimensions; one row per dimension present, each with the
    verdict of the whole family.

    With one pre-training per variant (pretrain_seeds = 1) the seeds vary the fine-tune
    only: the test is about these pre-trained networks, not about pre-training again, and
    the row's ``scope`` says so."""
    groups = [g for g in transfer_groups(df, points) if g["finetune"]]
    out = []
    for datasets in {(g["pretrain_data"], g["finetune_data"]) for g in groups}:
        by_kind = {
            variant_kind(g["variant"]): g
            for g in groups
            if (g["pretrain_data"], g["finetune_data"]) == datasets
        }
        comp = by_kind.get("compound")
        singles = {d: by_kind[d] for d in DIMENSIONS if d in by_kind}
        if comp is None or not singles:
            continue
        tests = {
            d: paired_t(_paired(comp["finetune"], s["finetune"]), alpha) for d, s in singles.items()
        }
        adjusted = holm({d: t.p for d, t in tests.items()})
        verdict = _verdict(tests, adjusted, alpha)
        one_pretraining = (
            max(len(comp["pretrain"]), *(len(s["pretrain"]) for s in singles.values())) < 2
        )
        scope = (
            "these pre-trained checkpoints (one pre-training per variant: its seed's "
            "variance is not in the test)"
            if one_pretraining
            else "pre-training and fine-tune seeds paired"
        )
        for d, t in tests.items():
            out.append(
                {
                    "pretrain_data": datasets[0],
                    "finetune_data": datasets[1],
                    "against": d,
                    "compound_minus": t.mean,
                    "std": t.std,
                    "ci_low": t.low,
                    "ci_high": t.high,
                    "p_holm": adjusted[d],
                    "seeds": t.n,
                    "verdict": verdict,
                    "scope": scope,
                }
            )
    return out


def _verdict(tests: dict, adjusted: dict, alpha: float) -> str:
    """Supported where compound is ahead of every dimension at alpha (each adjusted p),
    contradicted where some dimension is ahead, else not resolved with the seeds the
    weakest comparison would need."""
    if max(t.n for t in tests.values()) < 2:
        return "not resolved: one seed"
    ahead = [d for d, t in tests.items() if t.mean < 0 and adjusted[d] < alpha]
    if ahead:
        return f"contradicted: {min(ahead, key=lambda d: tests[d].mean)} alone transfers better"
    if all(t.mean > 0 and adjusted[d] < alpha for d, t in tests.items()):
        return "supported"
    deciding = max(tests, key=lambda d: adjusted[d] if math.isfinite(adjusted[d]) else 2.0)
    t = tests[deciding]
    needed = seeds_needed(t.mean, t.std, alpha / len(tests))
    return f"not resolved (against {deciding}): {seeds_phrase(needed)} seeds would resolve it"


def transfer_section(transfer: list[dict], question: list[dict], study, fmt_rows) -> list[str]:
    """report.md's Table-5 section (``fmt_rows``: the report's cell formatting)."""
    if not any(p.init_from for p in study.points):
        return []
    if not transfer:
        return ["## Transfer: pre-train, then fine-tune (paper Table 5)", "",
                "No pre-training point has finished yet.", ""]  # fmt: skip
    lines = [
        "## Transfer: pre-train, then fine-tune (paper Table 5)",
        "",
        "Top-1 on the pre-training data, and on the target data after fine-tuning from "
        "that checkpoint (a fresh classifier when the classes differ), mean ± std over "
        "seeds; where the study trains each network on the target from scratch too, its "
        "top-1 and the gain of pre-training (fine-tune minus scratch, paired by seed, with "
        "its interval and p). FLOPs and parameters are on the target data.",
        "",
        text.to_markdown(fmt_rows(transfer)),
        "",
    ]
    if question:
        lines += [
            "Does the compound variant transfer better than each dimension alone at the same "
            "FLOPs? Compound minus each, fine-tuned top-1 paired by seed, p Holm-adjusted "
            f"over the dimensions. Verdict: **{question[0]['verdict']}**; the test is about "
            f"{question[0]['scope']}.",
            "",
            text.to_markdown(
                fmt_rows(
                    [
                        {k: v for k, v in r.items() if k not in ("verdict", "scope")}
                        for r in question
                    ]
                )
            ),  # fmt: skip
            "",
        ]
    return lines
