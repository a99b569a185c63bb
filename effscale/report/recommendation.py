"""Was the recommendation right? The recommended network's seeds against the networks of
other run directories at its FLOPs (issue 26: closing the loop of `effscale recommend`).

The verification run directory holds the points of role "recommended" that `effscale recommend
--plan` planned; the comparisons are finished points elsewhere (the study the law was fitted
on, typically) at the same budget, training protocol, backbone and base, whose counted FLOPs
are within ``tolerance`` of the recommended network's. Each comparison is paired by seed (the
seeds share data order and initialisation streams) and tested like every verdict in effscale:
Student's paired t at n - 1 degrees of freedom, with Holm's correction over the comparisons
(effscale.report.stats); "better" or "worse" only where the corrected p is below alpha,
otherwise "not resolved" with the seeds a difference of the observed size would need.
"""

from pathlib import Path

import pandas as pd

from effscale.errors import EffscaleError
from effscale.report.stats import ALPHA, holm, paired_t, seeds_needed, seeds_phrase
from effscale.report.verdicts import finished, mean_std
from effscale.rundir import StudyDir

ROLE = "recommended"
TOLERANCE = 0.10  # relative FLOPs difference within which networks count as equal-FLOPs
SAME = ("samples", "protocol", "model", "base_width", "base_depth", "base_resolution")
SCALED = 1.01  # a multiplier above this counts as scaled


def _rows(run_dir: str | Path) -> pd.DataFrame:
    if not Path(run_dir).is_dir():
        raise EffscaleError(f"{run_dir} is not a directory", "give a study's run directory")
    return finished(StudyDir(run_dir).results())


def shape_name(row) -> str:
    """compound (a point a compound rule planned), depth alone, width alone, resolution
    alone, base, or the scaled dimensions together."""
    if "compound" in str(row.get("roles", "")).split(";"):
        return "compound"
    dims = (("depth", "d"), ("width", "w"), ("resolution", "r"))
    scaled = [name for name, k in dims if row[k] > SCALED]
    if not scaled:
        return "base"
    return f"{scaled[0]} alone" if len(scaled) == 1 else "+".join(scaled)


def _label(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    return f"d{first['d']:.3g} w{first['w']:.3g} {int(first['resolution'])}px"


def check_recommendation(
    verify_dir: str | Path,
    against: list[str | Path],
    alpha: float = ALPHA,
    tolerance: float = TOLERANCE,
) -> dict:
    """The recommended network (mean, std, seeds) and one row per equal-FLOPs network of
    ``against``: its shape, seeds paired, the mean of recommended minus it with its interval,
    p, Holm's p and the verdict."""
    rows = _rows(verify_dir)
    rec = rows[rows["roles"].astype(str).str.split(";").map(lambda r: ROLE in r)]
    if rec.empty:
        raise EffscaleError(
            f"{verify_dir} has no finished point of role {ROLE!r}",
            "train the plan `effscale recommend --plan FILE` wrote, into this directory",
        )
    shapes = rec.groupby(["d", "w", "resolution", "samples"]).ngroups
    if shapes > 1:
        raise EffscaleError(
            f"{verify_dir} holds {shapes} recommended networks", "verify one at a time"
        )
    top = rec.iloc[0]
    others = pd.concat([_rows(d) for d in against], ignore_index=True)
    for column in SAME:  # never compare points of another budget, protocol or base
        others = others[others[column] == top[column]]
    others = others[(others["flops"] / top["flops"] - 1).abs() <= tolerance]
    others = others[~others["key"].isin(rec["key"])]
    if others.empty:
        raise EffscaleError(
            f"no finished network within {tolerance:.0%} of the recommendation's FLOPs "
            f"({int(top['flops']):,}) at {int(top['samples']):,} samples and protocol "
            f"{int(top['protocol'])} in {', '.join(map(str, against))}",
            "give the run directory the law was fitted on (`against`), or a wider `tolerance`",
        )
    mine = rec.groupby("seed")["top1"].mean()
    table = []
    for _, net in others.groupby(["d", "w", "resolution"], sort=False):
        theirs = net.groupby("seed")["top1"].mean()
        seeds = sorted(set(mine.index) & set(theirs.index))
        diffs = [float(mine[s] - theirs[s]) for s in seeds]
        test = paired_t(diffs, alpha)
        mean, std, n = mean_std(theirs)
        table.append({
            "network": shape_name(net.iloc[0]), "shape": _label(net),
            "flops_ratio": float(net["flops"].iloc[0] / top["flops"]), "top1_mean": mean,
            "top1_std": std, "seeds_paired": len(seeds), "difference": test.mean,
            "ci_low": test.low, "ci_high": test.high, "p": test.p,
            "diff_std": test.std,
        })  # fmt: skip
    corrected = holm({i: row["p"] for i, row in enumerate(table)})
    for i, row in enumerate(table):
        row["p_holm"] = corrected[i]
        row["verdict"] = _verdict(row, alpha)
    table.sort(key=lambda row: -row["top1_mean"])
    mean, std, n = mean_std(mine)
    return {
        "recommended": {"shape": _label(rec), "flops": int(top["flops"]), "top1_mean": mean,
                        "top1_std": std, "seeds": n, "samples": int(top["samples"]),
                        "protocol": int(top["protocol"])},
        "comparisons": table, "alpha": alpha, "tolerance": tolerance,
    }  # fmt: skip


def _verdict(row: dict, alpha: float) -> str:
    p, diff = row["p_holm"], row["difference"]
    if p == p and p < alpha:  # not NaN
        return "recommended better" if diff > 0 else "recommended worse"
    need = seeds_needed(diff, row["diff_std"], alpha)
    return f"not resolved (seeds to resolve this difference: {seeds_phrase(need)})"
