"""The report's "Fitted law" section: a scaling law fitted to the study's own points.

Under the default rule only (a form needs three distinct configurations per parameter,
effscale.law.fit.CONFIGS_PER_PARAM): a report is no place to lower it, since a reader cannot
see that a law was fitted to fewer points than it can pin down. When the study is too small,
the section says so in one line, with the count it has and the count it needs.

The report must never fail because of the law: anything the fit raises becomes one line in
the section. A small bootstrap (DRAWS) keeps the report fast; `effscale fit` gives the full
picture (more draws, the extrapolation check, the plots' options).
"""

import math
from pathlib import Path

from effscale.text import to_markdown

HEADING = "## Fitted law"
DRAWS = 100  # bootstrap refits: intervals good to about a tenth of their width, in seconds
SEED = 0


def _too_few(points) -> dict | None:
    """The 'not enough' record when no candidate form passes the size rule, else None."""
    from effscale.law.fit import CONFIGS_PER_PARAM
    from effscale.law.forms import make_form
    from effscale.law.validate import candidates

    n_budgets = len(points.budgets)
    forms = [make_form(name, n_budgets) for name in candidates(points)]
    small = min(forms, key=lambda f: f.n_params)
    need = math.ceil(small.n_params * CONFIGS_PER_PARAM)
    if points.n_configs >= need:
        return None
    return {"status": "too few configurations", "configs": points.n_configs, "needs": need,
            "smallest_form": small.name, "parameters": small.n_params}  # fmt: skip


def _fit(run_dir: Path) -> tuple[dict, object, object]:
    """(record, points, bootstrap); the bootstrap is None when the study is too small."""
    from effscale.errors import EffscaleError
    from effscale.law import bootstrap, fit_form, load_points
    from effscale.law.fit import CONFIGS_PER_PARAM
    from effscale.law.shape import optimal_shares, saturation
    from effscale.law.split import compute_split, split_line
    from effscale.law.validate import select

    try:
        points = load_points([run_dir])
    except EffscaleError:  # nothing finished yet: zero configurations
        return {"status": "too few configurations", "configs": 0}, None, None
    few = _too_few(points)
    if few:
        return few, points, None
    selection = select(points, CONFIGS_PER_PARAM)
    boot = bootstrap(points, fit_form(points, selection.chosen, CONFIGS_PER_PARAM), DRAWS, SEED)
    budget = max(points.budgets)
    split = compute_split(boot, points)
    return {
        "status": "fitted", "form": boot.fit.form.name, "chosen_by": selection.reason,
        "candidates": selection.scores, "configs": points.n_configs, "points": len(points),
        "budgets": points.budgets, "excluded": points.excluded,
        "bootstrap": {"draws": boot.draws, "failed": boot.failures, "seed": SEED},
        "parameters": boot.parameters(), "saturation": saturation(boot, budget),
        "step1": optimal_shares(boot, budget), "compute_split": split,
        "compute_split_note": split_line(points, split, boot.fit.form.name),
    }, points, boot  # fmt: skip


def _fmt_rows(rows: list[dict]) -> list[dict]:
    """Numbers to four significant digits (exponents and amplitudes span decades)."""

    def cell(v):
        if isinstance(v, bool):
            return "yes" if v else "no"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return [{k: cell(v) for k, v in r.items()} for r in rows]


def _lines(record: dict, figures: list[Path]) -> list[str]:
    if record["status"] != "fitted":
        if "needs" not in record:
            return [HEADING, "", "No finished configurations yet: no law to fit.", ""]
        return [HEADING, "", f"Not enough configurations for a fitted law: the study has "
                f"{record['configs']} distinct configurations (shape and budget), the smallest "
                f"law ({record['smallest_form']}, {record['parameters']} parameters) needs "
                f"{record['needs']} (3 per parameter; `effscale fit --configs-per-param` can "
                "lower the rule, knowingly).", ""]  # fmt: skip
    s = record["step1"]
    shares = [{"dimension": k, "share": s[f"share_{k}"][0], "lo": s[f"share_{k}"][1],
               "hi": s[f"share_{k}"][2], "p_optimum_beats_alone": s[f"p_beats_{k}"]}
              for k in ("d", "w", "r")]  # fmt: skip
    eq = ", ".join(f"{n} = {s[n][0]:.3f} ({s[n][1]:.3f}-{s[n][2]:.3f})"
                   for n in ("alpha", "beta", "gamma"))  # fmt: skip
    b = record["bootstrap"]
    lines = [
        HEADING, "",
        f"{record['form']} ({record['chosen_by']}) on {record['points']} runs, "
        f"{record['configs']} configurations; 80 % intervals from {b['draws']} bootstrap refits "
        f"over configurations ({b['failed']} failed). `effscale fit` gives more draws and the "
        "extrapolation check (`effscale fit --holdout-above X`).", "",
        to_markdown(_fmt_rows(record["parameters"])), "",
        "Each dimension alone: its exponent and the top-1 it saturates at (finding 1, "
        "diminishing returns, as numbers):", "",
        to_markdown(_fmt_rows(record["saturation"])), "",
        "Optimal FLOP shares at 2x FLOPs (the paper's Step 1, from every point), and the "
        f"probability the optimum beats each dimension alone: equivalent {eq}.", "",
        to_markdown(_fmt_rows(shares)), "",
        f"{record['compute_split_note'][0].upper()}{record['compute_split_note'][1:]}.", "",
    ]  # fmt: skip
    return lines + [f"![{p.stem}](figures/{p.name})" for p in figures if p.suffix == ".png"] + [""]


def law_section(run_dir: str | Path, lines: list[str]) -> dict:
    """Append the "Fitted law" section to a report's ``lines``; return its record for the
    report's JSON (``fitted_law``). Never raises: a failure is one line in the section."""
    run_dir = Path(run_dir)
    figures: list[Path] = []
    try:
        record, points, boot = _fit(run_dir)
        if boot is not None:
            figures = _figures(run_dir, points, boot)
        section = _lines(record, figures)
    except Exception as e:  # broad on purpose: the report outlives any failure of the law
        reason = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        record = {"status": "failed", "reason": str(reason)}
        section = [HEADING, "", f"The law could not be fitted: {reason}", ""]
    lines += section
    return record


def _figures(run_dir: Path, points, boot) -> list[Path]:
    """The parity plot (in-sample: the report runs no holdout) and the law's curves."""
    from effscale.law.validate import score
    from effscale.report.lawplots import law_figures

    table = score(boot, points)[0].assign(held=False)
    law = f"parity: law {boot.fit.form.name} on its {points.n_configs} configurations, in-sample"
    return law_figures(boot, points, run_dir / "figures", table, law)
