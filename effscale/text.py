"""Plain text for people: numbers, durations, FLOP counts and Markdown tables.

The lowest layer (no rich, no torch): the report, the study estimate and the output layer all
format through here, so a number reads the same in report.md, a dry run and the terminal.
"""

import math


def fmt_value(v) -> str:
    """Human formatting: thousands separators for ints, 4 significant digits for floats."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def column_names(rows: list[dict], columns: list[str] | None) -> list[str]:
    if columns:
        return columns
    seen: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if not isinstance(v, (list, dict)):
                seen.setdefault(k)
    return list(seen)


def to_markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    cols = column_names(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(fmt_value(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def fmt_seconds(seconds: float) -> str:
    """A duration a person reads at a glance: 45 s, 12 min, 3.2 h, 14.5 d (days)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def fmt_flops(flops: float) -> str:
    """A FLOP count with its SI prefix: 3.87 MFLOPs, 22.1 PFLOPs (effscale's FLOPs are
    multiply-adds)."""
    for scale, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if abs(flops) >= scale:
            return f"{flops / scale:.3g} {prefix}FLOPs"
    return f"{flops:,.0f} FLOPs"
