"""effscale verify: a recommendation tested against the networks at its FLOPs, by seed."""

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import error_lines
from typer.testing import CliRunner

from effscale.cli import app
from effscale.errors import EffscaleError
from effscale.report import recommendation

runner = CliRunner()
BASE = {"samples": 100_000, "protocol": 2, "model": "efficientnet-b0", "base_width": 0.25,
        "base_depth": 1.0, "base_resolution": 64, "status": "done"}  # fmt: skip


def net(key, d, w, r, px, flops, top1s, roles, **over):
    return [
        {**BASE, "key": f"{key}{s}", "d": d, "w": w, "r": r, "resolution": px, "flops": flops,
         "roles": roles, "seed": s, "top1": t, **over}
        for s, t in enumerate(top1s)
    ]  # fmt: skip


RECOMMENDED = net("rec", 1.0, 1.74, 1.44, 92, 1000, [80.0, 81.0, 79.0], "recommended")
STORED = (
    net("wid", 1.0, 2.75, 1.0, 64, 980, [77.2, 77.9, 76.1], "match-width")  # 2.8, 3.1, 2.9
    + net("res", 1.0, 1.0, 2.5, 160, 970, [79.9, 79.8, 79.3], "match-resolution")
    + net("cmp", 1.44, 1.21, 1.32, 84, 1030, [76.8, 77.2, 77.9], "compound")
    + net("big", 1.0, 1.0, 3.0, 192, 1500, [90.0, 90.0, 90.0], "match-resolution")  # 1.5x
    + net("old", 1.0, 3.0, 1.0, 64, 1000, [60.0, 60.0, 60.0], "width", protocol=1)
    + net("long", 1.0, 3.0, 1.0, 64, 1000, [90.0, 90.0, 90.0], "width", samples=200_000)
)


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    frames = {"verify": pd.DataFrame(RECOMMENDED), "stored": pd.DataFrame(STORED)}
    for name in frames:
        (tmp_path / name).mkdir()
    real = recommendation._rows

    def rows(d):
        name = Path(d).name
        return frames[name] if name in frames else real(d)

    monkeypatch.setattr(recommendation, "_rows", rows)
    return tmp_path / "verify", tmp_path / "stored"


def test_only_equal_flops_networks_of_the_same_budget_protocol_and_base_are_compared(dirs):
    result = recommendation.check_recommendation(*dirs[:1], [dirs[1]])
    names = {row["network"] for row in result["comparisons"]}
    assert names == {"width alone", "resolution alone", "compound"}
    assert result["recommended"]["top1_mean"] == pytest.approx(80.0)


def test_a_clear_lead_is_a_verdict_and_a_small_one_says_the_seeds_it_needs(dirs):
    rows = {r["network"]: r for r in recommendation.check_recommendation(dirs[0], [dirs[1]])[
        "comparisons"]}  # fmt: skip
    assert rows["width alone"]["difference"] == pytest.approx(2.9333, abs=1e-3)
    assert rows["width alone"]["verdict"] == "recommended better"
    assert rows["width alone"]["p_holm"] >= rows["width alone"]["p"]  # corrected upwards
    assert rows["resolution alone"]["verdict"].startswith("not resolved (seeds to resolve")


def test_no_recommended_point_or_no_comparison_is_one_line(dirs, tmp_path):
    with pytest.raises(EffscaleError, match="no finished point of role 'recommended'"):
        recommendation.check_recommendation(dirs[1], [dirs[1]])
    with pytest.raises(EffscaleError, match="no finished network within 1%"):
        recommendation.check_recommendation(dirs[0], [dirs[1]], tolerance=0.01)
    r = runner.invoke(app, ["verify", str(dirs[0]), "--against", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and len(error_lines(r.stderr)) == 1


def test_the_command_prints_json(dirs):
    r = runner.invoke(app, ["verify", str(dirs[0]), "--against", str(dirs[1]), "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["recommended"]["seeds"] == 3 and len(out["comparisons"]) == 3
