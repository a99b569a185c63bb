"""report.md's first section: the answer in a few lines, each verdict in words with the
numbers it stands on, before the tables that back it (issue 32: reports opened with 15-column
tables)."""

import math

from effscale.report.verdicts import NOT_A_TEST


def _num(x, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def _p(p) -> str:
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.2g}"


def _where(row: dict) -> str:
    budget = f" at {row['budget']:,} samples" if row.get("budget") else ""
    return f"{row.get('model', '')}{budget}".strip()


def summary_lines(dims, compound, pooled, transfer_question, study) -> list[str]:
    """The summary's lines (empty when no verdict has numbers yet)."""
    lines = []
    for r in dims:
        lines.append(
            f"- {r['dimension']} alone ({_where(r)}): gain per doubling of FLOPs, first step "
            f"minus last {_num(r.get('first_minus_last'))} points (CI {_num(r.get('ci_low'))} to "
            f"{_num(r.get('ci_high'))}, p {_p(r.get('p'))}): {r['verdict']}"
        )
    for r in compound:
        if str(r["verdict"]).startswith(NOT_A_TEST):
            continue
        lines.append(
            f"- compound at phi = {r['phi']:g} ({_where(r)}) minus the best dimension alone "
            f"({r['best_single']}): {_num(r.get('compound_minus_best'))} points (CI "
            f"{_num(r.get('ci_low'))} to {_num(r.get('ci_high'))}, p Holm {_p(r.get('p'))}, "
            f"{r['seeds']} seeds): {r['verdict']}"
        )
    for r in pooled:
        lines.append(
            f"- over the study's cells, compound minus {r['dimension']} alone: "
            f"{_num(r.get('compound_minus'))} points (CI {_num(r.get('ci_low'))} to "
            f"{_num(r.get('ci_high'))}, p Holm {_p(r.get('p'))}): {r['verdict']}"
        )
    if transfer_question:
        diffs = ", ".join(
            f"{r['against']} {_num(r['compound_minus'])} (p Holm {_p(r['p_holm'])})"
            for r in transfer_question
        )
        lines.append(
            f"- transfer: compound's fine-tuned top-1 minus each dimension alone's: {diffs}: "
            f"{transfer_question[0]['verdict']} (about {transfer_question[0]['scope']})"
        )
    smoke = {p.recipe.samples for p in study.points} and max(
        p.recipe.samples for p in study.points
    ) <= SMOKE_SAMPLES
    if smoke:
        lines.insert(0, f"- **a smoke run, not evidence**: at most {SMOKE_SAMPLES:,} samples a "
                        "point; it shows the tool works, not what scaling does")  # fmt: skip
    if not lines:
        return []
    return [
        "## Summary",
        "",
        *lines,
        "",
        "The sections below hold the tables behind each line.",
        "",
    ]


# A study whose points train this little is a smoke run (the smoke budget, the quick study).
SMOKE_SAMPLES = 20_000
