"""The report's tables for a person: readable column names, a mean and its spread in one
cell, an interval in one cell. Only report.md reads this way; the CSV files and
`effscale report --format json` keep the machine names (snake_case, one number a field).
"""

# A column and the column of its spread across seeds: shown as one cell, "75.91 ± 0.71".
SPREAD = {
    "first_gain_per_doubling": "first_std",
    "last_gain_per_doubling": "last_std",
    "first_minus_last": "first_minus_last_std",
    "compound_top1": "compound_std",
    "best_single_top1": "best_single_std",
    "compound_minus_best": "difference_std",
    "top1_mean": "top1_std",
    "pretrain_top1": "pretrain_std",
    "finetune_top1": "finetune_std",
    "scratch_top1": "scratch_std",
    "gain": "gain_std",
    "difference": "difference_std",
}
# A 95 % confidence interval's two ends (``ci_low``, ``gain_ci_low``, ...): one cell,
# "-2.72 to +0.48".
LOW, HIGH = "ci_low", "ci_high"

NAMES = {
    "flops_min": "FLOPs from",
    "flops_max": "FLOPs to",
    "first_gain_per_doubling": "first step, per doubling",
    "last_gain_per_doubling": "last step, per doubling",
    "first_minus_last": "first - last",
    "ci_low": "95 % CI",
    "gain_ci_low": "gain 95 % CI",
    "compound_flops_ratio": "compound FLOPs x",
    "best_single": "best alone",
    "best_single_top1": "best alone top-1",
    "best_single_flops_ratio": "best alone FLOPs x",
    "compound_minus_best": "compound - best",
    "realised_flops_ratio": "FLOPs x",
    "target_flops_ratio": "target FLOPs x",
    "top1_mean": "top-1",
    "phi": "φ",
}


def column_name(key: str) -> str:
    """``first_minus_last`` -> "first - last", ``p_depth`` -> "p depth", ``top1`` -> "top-1"."""
    if key in NAMES:
        return NAMES[key]
    return key.replace("_", " ").replace("top1", "top-1").replace("flops", "FLOPs")


def readable(row: dict) -> dict:
    """A row of formatted cells (strings) with spreads and intervals folded in and its
    columns renamed; the order of the columns is kept."""
    folded = {SPREAD[k] for k in row if k in SPREAD and SPREAD[k] in row}
    folded |= {k[: -len(LOW)] + HIGH for k in row if k.endswith(LOW)}
    out = {}
    for key, cell in row.items():
        if key in folded:
            continue
        if key in SPREAD and SPREAD[key] in row:
            spread = row[SPREAD[key]]
            cell = cell if "-" in (cell, spread) else f"{cell} ± {spread}"
        elif key.endswith(LOW) and (high := row.get(key[: -len(LOW)] + HIGH)) is not None:
            cell = "-" if "-" in (cell, high) else f"{_signed(cell)} to {_signed(high)}"
        out[column_name(key)] = cell
    return out


def _signed(cell: str) -> str:
    """An interval's end with its sign, so that "-0.04 to +1.92" reads as an interval."""
    return cell if cell.startswith(("-", "+")) or cell == "-" else f"+{cell}"
