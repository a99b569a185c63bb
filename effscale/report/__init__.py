"""Reports from a run directory: tables, plots and the paper's two verdicts."""

from effscale.report.report import redraw, write_report

__all__ = ["redraw", "write_report"]
