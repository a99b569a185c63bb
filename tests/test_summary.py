"""report.md starts with the answer: a summary of each verdict in words with its numbers,
and a warning when the study is a smoke run."""

from conftest import RESOLUTION_SWEEP, WIDTH_SWEEP, study_toml
from typer.testing import CliRunner

from effscale.cli import app
from effscale.report.summary import summary_lines

runner = CliRunner()


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
