"""Reports from a run directory: tables, plots and the paper's two verdicts."""

from effscale.report.report import write_report

__all__ = ["write_report"]
