"""Tables on screen: never a number cut or a column dropped, at 80 columns or in a pipe."""

import io
import re

import pytest
from rich.console import Console
from test_estimate import SPEED, SWEEP
from typer.testing import CliRunner

from effscale import output
from effscale.cli import app
from effscale.output import Format, fmt_value
from effscale.study import estimate

runner = CliRunner()
WIDE = [
    {"model": f"efficientnet-b{i}", "params": 66_347_960 + i, "paper_params_m": 66.0,
     "gflops": 37.75, "paper_gflops": 37.0, "deviation_pct": 2.0, "torchvision_gflops": 37.746,
     "realised_flops_ratio": 1.0123, "activations": 1_234_567_890 + i}
    for i in range(3)
]  # fmt: skip


def _screen(monkeypatch, width: int, terminal: bool) -> io.StringIO:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(output, "console", console)
    return buf


def _cells(rows):
    return {fmt_value(v) for r in rows for v in r.values()}


def test_a_wide_table_at_80_columns_keeps_every_number_in_parts(monkeypatch):
    buf = _screen(monkeypatch, 80, terminal=True)
    output.rows(WIDE, Format.table, title="wide")
    text = buf.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text
    for cell in _cells(WIDE):
        assert cell in text, cell
    assert "wide (1 of 2)" in text and "wide (2 of 2)" in text
    assert text.count("efficientnet-b2") == 2  # what a row is, repeated in each part


def test_a_table_into_a_pipe_is_one_table_at_its_natural_width(monkeypatch):
    buf = _screen(monkeypatch, 80, terminal=False)
    output.rows(WIDE, Format.table)
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) > 80  # not folded to a terminal's 80
    assert text.count("efficientnet-b2") == 1 and "…" not in text
    header = text.splitlines()[1]
    assert "realised_flops_ratio" in header and "torchvision_gflops" in header  # unfolded
    for cell in _cells(WIDE):
        assert cell in text, cell


def test_the_dry_run_at_80_columns_keeps_its_estimate(tmp_path, monkeypatch):
    monkeypatch.setattr(estimate, "measure_speed", lambda *a, **k: SPEED)
    buf = _screen(monkeypatch, 80, terminal=True)
    r = runner.invoke(app, [*SWEEP, "--dry-run", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    table = buf.getvalue().split("Dry run")[0]  # the note below may run on: a terminal wraps it
    assert "est" in table.splitlines()[2] and "…" not in table  # the first part, whole
    assert all(len(line) <= 80 for line in table.splitlines())
    assert re.search(r"│ \d+ s\s+│", table)  # a short text cell (the estimate) is never wrapped


@pytest.mark.parametrize("width", [40, 60, 100])
def test_no_width_cuts_a_number(monkeypatch, width):
    buf = _screen(monkeypatch, width, terminal=True)
    output.rows(WIDE, Format.table)
    text = buf.getvalue()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    for cell in _cells(WIDE):
        assert cell in text, cell
