"""What the study commands print: a dry run's plan, and a study's results."""

from effscale import output
from effscale.output import Format

# the estimate before the long text (roles): at 80 columns it stays in the first part
PLAN_SCREEN = ["point", "est", "gflops", "mparams", "samples", "seed", "covered", "roles"]
SUMMARY_SCREEN = ["d", "w", "r", "resolution", "roles", "flops", "seeds", "top1_mean", "top1_std"]


def print_plan(plan, fmt) -> None:
    """A dry run's output: one row per point, then the totals and the estimate."""
    if fmt is Format.json:
        output.record({**plan.summary(), "plan": plan.rows}, fmt)
        return
    output.rows(plan.rows, fmt, title=f"{plan.study}: plan (dry run)", screen=PLAN_SCREEN)
    output.note(f"Dry run, nothing trained: {plan.sentence()}", fmt)


def print_summary(study, df, out, fmt) -> None:
    """A finished study: its points' mean over seeds, and where the results are."""
    from effscale.report.verdicts import summarise

    rows = summarise(df).to_dict("records")
    output.rows(rows, fmt, title=f"{study.name}: mean over seeds", screen=SUMMARY_SCREEN)
    output.note(f"results: {out}/results.csv; report and plots: effscale report {out}", fmt)
