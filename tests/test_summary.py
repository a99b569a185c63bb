"""report.md starts with the answer: a summary of each verdict in words with its numbers,
and a warning when the study is a smoke run."""

import re
import shutil
from pathlib import Path

from conftest import RESOLUTION_SWEEP, WIDTH_SWEEP, study_toml
from typer.testing import CliRunner

from effscale.cli import app
from effscale.report import plots
from effscale.report.report import write_report
from effscale.report.summary import summary_lines

runner = CliRunner()
STORED = Path(__file__).resolve().parent.parent / "docs" / "results"


def test_a_report_opens_with_its_summary_and_a_smoke_warning(tmp_path):
    f = tmp_path / "tiny.toml"
    f.write_text(study_toml(WIDTH_SWEEP.replace("1.5]", "1.5, 2.0]"), RESOLUTION_SWEEP,
                            seeds=2, samples=128))  # fmt: skip
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(f), "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    sections = [
        line for line in (out / "report.md").read_text().splitlines() if line.startswith("## ")
    ]
    assert sections[0] == "## Summary"
    text = (out / "report.md").read_text()
    summary = text.split("## Summary")[1].split("\n## ")[0]
    assert "a smoke run, not evidence" in summary
    assert "width alone" in summary and "p " in summary  # a verdict line with its numbers


def test_summary_lines_word_each_verdict_with_its_numbers():
    class P:  # a point of a long study
        class recipe:
            samples = 100_000

    class S:
        points = [P]

    compound = [{"phi": 2.0, "model": "b0", "budget": 100_000, "best_single": "resolution",
                 "compound_minus_best": -1.12, "ci_low": -2.72, "ci_high": 0.48, "p": 0.19,
                 "seeds": 3, "verdict": "not resolved: 6 seeds would resolve it"}]  # fmt: skip
    lines = summary_lines([], compound, [], [], S)
    assert lines[0] == "## Summary"
    (line,) = [x for x in lines if x.startswith("- ")]
    assert "phi = 2" in line and "-1.12" in line and "-2.72 to +0.48" in line
    assert "p Holm 0.19" in line and "not resolved: 6 seeds" in line
    assert not any("smoke" in x for x in lines)
    assert summary_lines([], [], [], [], S) == []


def test_report_tables_read_as_words_with_one_number_format(tmp_path, monkeypatch):
    """Issue 32: 15-19-column snake_case tables (`first_minus_last_std`), `d 2.333` in one
    table and `d=2.33333` in the next, compound rows out of phi order, a timing table before
    the figures, CSVs with float32 noise (`d=2.3333332538604736`)."""
    run = tmp_path / "imagenette"
    shutil.copytree(STORED / "imagenette", run, ignore=shutil.ignore_patterns("figures"))
    monkeypatch.setattr(plots, "all_plots", lambda *a, **k: [])  # the tables are the test
    write_report(run)
    text = (run / "report.md").read_text()
    lines = text.splitlines()
    headers = [lines[i - 1] for i, line in enumerate(lines) if line.startswith("|---")]
    assert headers and not [h for h in headers if "_" in h]
    assert "75.91 ± 0.71" in text and "-2.72 to +0.48" in text  # mean ± std, an interval
    assert "d=2.33333" not in text and "d=2.333," in text
    assert text.index("## Figures") < text.index("## Time")
    figure8 = text.split("(paper Figure 8)")[1].split("\n\n")[2].splitlines()[2:]
    at = [tuple(c.strip() for c in row.strip("|").split("|")[1:3]) for row in figure8]
    assert at == sorted(at, key=lambda a: (int(a[0].replace(",", "")), float(a[1])))
    csv = (run / "results.csv").read_text()
    assert not re.search(r"\d\.\d{7,}", csv)  # no float32 noise
    assert ",3869472," in csv  # FLOPs exact
