"""The grid search (paper Step 1): the grid, the realised-FLOPs filter, a tiny search end to
end, its reuse by `compound --from-search` (Step 2), and resuming a partial search."""

import json
import math
from fractions import Fraction

import pandas as pd
import pytest
from typer.testing import CliRunner

from effscale.cli import app
from effscale.cost import describe
from effscale.errors import EffscaleError
from effscale.recipe import budget
from effscale.report.search import search_report
from effscale.rundir import StudyDir
from effscale.scaling import Variant
from effscale.study import search
from effscale.study.engine import run_search
from effscale.study.executors import Executor, InProcess
from effscale.study.plan import Base, Study
from effscale.zoo import resolve_spec

runner = CliRunner()
BASE = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
RECIPE = budget("smoke", samples=256, batch_size=64)
# A grid of five triples on which the tiny base keeps two (see test_filter_*).
SMALL = dict(target=2.0, step=0.2, max_=1.4, tolerance=0.05)
SEARCH_ARGS = [
    "search",
    "--model",
    "resnet18",
    "--base-width",
    "0.25",
    "--base-depth",
    "0.5",
    "--step",
    "0.2",
    "--max",
    "1.4",
    "--data",
    "synthetic",
    "--budget",
    "smoke",
    "--samples",
    "256",
    "--batch-size",
    "64",
    "--device",
    "cpu",
    "--seeds",
    "2",
]


def _variant(row: dict) -> Variant:
    v = dict(row["variant"])
    return Variant(backbone=v.pop("model"), **v)


# -- the grid ----------------------------------------------------------------------------


def test_grid_is_exactly_the_brute_force_set():
    got = search.grid(2.0, 0.05, 1.5, 0.05)
    hundredths = [Fraction(100 + 5 * i, 100) for i in range(11)]  # 1.00 ... 1.50, exact
    want = [
        (float(a), float(b), float(g))
        for a in hundredths
        for b in hundredths
        for g in hundredths
        if abs(a * b * b * g * g - 2) <= Fraction(1, 10)
    ]
    assert got == want and len(got) == 85
    assert (1.2, 1.1, 1.15) in got  # the paper's choice for B0
    assert all(1 <= x <= 1.5 for t in got for x in t)


def test_grid_tolerance_is_relative_and_robust_to_float_noise():
    # 1.05^2 = 1.1025 exactly, though 1.05 * 1.05 is 1.1025000000000003 in floats
    assert search.grid(1.1025, 0.05, 1.05, 0.0) == [(1.0, 1.0, 1.05), (1.0, 1.05, 1.0)]
    # relative: 10 % of a target of 4 is 0.4 either side
    got = search.grid(4.0, 0.1, 1.5, 0.1)
    assert (1.0, 1.3, 1.5) in got  # 3.8025
    assert (1.5, 1.2, 1.2) not in got  # 3.1104
    assert all(abs(search.product(*t) - 4.0) <= 0.4 + 1e-9 for t in got)


@pytest.mark.parametrize(
    "args, says",
    [
        ((9.0, 0.05, 1.5, 0.05), ["nearest reachable target is 7.594", "`max`=1.56"]),
        ((2.0, 0.5, 1.5, 0.01), ["nearest reachable target is 2.25", "`tolerance`=0.125"]),
    ],
)
def test_an_empty_grid_names_the_nearest_reachable_target(args, says):
    with pytest.raises(EffscaleError) as e:
        search.grid(*args)
    for text in says:
        assert text in str(e.value)


def test_an_empty_grid_on_the_command_line_is_one_line():
    r = runner.invoke(app, ["search", "--step", "0.5", "--tolerance", "0.01", "--cost-only"])
    assert r.exit_code == 2, r.output
    assert "nearest reachable target is 2.25" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- candidates: realised FLOPs, the filter, one network trained once --------------------


def test_filter_keeps_exactly_the_candidates_whose_counted_ratio_is_on_target():
    rows = search.candidates(BASE, 1.0, num_classes=10, **SMALL)
    assert len(rows) == 5
    for row in rows:
        counted = describe(_variant(row), 10)["realised_flops_ratio"]  # an independent count
        assert row["realised_flops_ratio"] == pytest.approx(counted, abs=1e-4)
        assert row["kept"] == (abs(counted - 2.0) <= 0.05 * 2.0)
    kept = {(r["alpha"], r["beta"], r["gamma"]) for r in rows if r["kept"]}
    # depth 1.4 makes every one-block stage two blocks (ceil): far above 2x, dropped
    assert kept == {(1.0, 1.0, 1.4), (1.0, 1.4, 1.0)}
    assert "5 candidates on the grid; 3 dropped" in search.dropped_note(rows, 0.05)
    loose = search.candidates(BASE, 1.0, num_classes=10, flops_tolerance=1.0, **SMALL)
    assert all(r["kept"] for r in loose)


def test_all_candidates_dropped_says_how_close_the_nearest_came():
    rows = search.candidates(BASE, 1.0, num_classes=10, flops_tolerance=0.001, **SMALL)
    with pytest.raises(EffscaleError, match="all 5 candidates were dropped.*nearest: 1.97"):
        search.survivors(rows, 0.001)
    with pytest.raises(EffscaleError, match="`flops_tolerance`=0.014"):
        search.survivors(rows, 0.001)


def test_triples_that_round_to_one_network_are_trained_once():
    study = Study("s", {})
    grid = dict(target=2.0, step=0.1, max_=1.4, tolerance=0.05)
    points, record = search.plan_search(
        BASE, 1.0, [0, 1], RECIPE, "synthetic", flops_tolerance=1.0, **grid
    )
    study.add_all(points)
    kept = [r for r in record["candidates"] if r["kept"]]
    networks = {r["network"] for r in kept}
    assert len(networks) < len(kept)  # some triples share a network at this small base
    for n in networks:
        group = [r for r in kept if r["network"] == n]
        built = {json.dumps([resolve_spec(_variant(r)).to_dict(), r["resolution"]]) for r in group}
        assert len(built) == 1  # the same network, whatever the triple
        assert sum(r["trained"] for r in group) == 1
        assert len({tuple(r["keys"]) for r in group}) == 1  # every triple maps to the points
        assert len({r["flops"] for r in group}) == 1
    assert len(study.points) == 2 * (1 + len(networks))  # base and one point per network
    assert {p.roles for p in study.points} == {("base",), ("search",)}


# -- a tiny search end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    r = runner.invoke(app, [*SEARCH_ARGS, "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_search_ranks_the_candidates_and_saves_the_choice(searched):
    out, table = searched
    record = json.loads((out / "search.json").read_text())
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 6 and (results["status"] == "done").all()  # 2 networks + base, x2
    assert [r["rank"] for r in table] == [1, 2]
    assert [(r["alpha"], r["beta"], r["gamma"]) for r in table] in (
        [(1.0, 1.0, 1.4), (1.0, 1.4, 1.0)],
        [(1.0, 1.4, 1.0), (1.0, 1.0, 1.4)],
    )
    for row in table:  # each mean is that of its points' top-1 in results.csv
        abg = (row["alpha"], row["beta"], row["gamma"])
        cand = next(c for c in record["candidates"] if (c["alpha"], c["beta"], c["gamma"]) == abg)
        top1 = results.set_index("key").loc[cand["keys"], "top1"]
        assert row["top1_mean"] == pytest.approx(top1.mean())
        assert row["top1_std"] == pytest.approx(top1.std(ddof=1))
        assert row["seeds"] == 2
    chosen = record["chosen"]
    best = table[0]
    assert (chosen["alpha"], chosen["beta"], chosen["gamma"]) == (
        best["alpha"],
        best["beta"],
        best["gamma"],
    )
    assert chosen["top1_mean"] >= table[1]["top1_mean"]
    assert chosen["phi"] == 1.0 and chosen["target"] == 2.0 and record["finished"]
    for ext in ("png", "svg"):
        assert (out / "figures" / f"search.{ext}").stat().st_size > 1000


def test_compound_from_search_uses_the_chosen_coefficients(searched):
    out, _ = searched
    chosen = json.loads((out / "search.json").read_text())["chosen"]
    args = ["compound", "--model", "resnet18", "--phi", "1,2", "--base-resolution", "32"]
    r = runner.invoke(app, [*args, "--from-search", str(out), "--cost-only", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [row["phi"] for row in rows] == [1.0, 2.0]
    for row in rows:
        for dim, coef in (("d", "alpha"), ("w", "beta"), ("r", "gamma")):
            assert row[dim] == pytest.approx(chosen[coef] ** row["phi"])
    assert f"chosen by the search in {out}" in r.stderr
    both = runner.invoke(app, [*args, "--from-search", str(out), "--alpha", "1.3", "--cost-only"])
    assert both.exit_code == 2 and "--from-search and --alpha" in both.stderr


def test_report_of_a_search_shows_the_ranked_candidates_and_the_plot(searched):
    out, table = searched
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    best = table[0]
    assert f"chosen: alpha={best['alpha']:g}, beta={best['beta']:g}, gamma={best['gamma']:g}" in (
        report
    )
    assert "(base: " in report and "![search](figures/search.png)" in report
    # How far the choice is ahead of the runner-up, paired by seed, and whether that is noise.
    margin = json.loads((out / "search.json").read_text())["chosen"]["margin"]
    second = table[1]
    assert margin["runner_up"] == [second["alpha"], second["beta"], second["gamma"]]
    results = pd.read_csv(out / "results.csv").set_index(["key"])
    record = json.loads((out / "search.json").read_text())
    keys = {r["network"]: r["keys"] for r in record["candidates"] if r["kept"] and r["trained"]}
    top1 = {n: results.loc[k].set_index("seed")["top1"] for n, k in keys.items()}
    paired = top1[best["network"]] - top1[second["network"]]
    assert margin["seeds"] == 2  # results.csv holds 6 significant digits: approx to 1e-4
    assert margin["top1_mean"] == pytest.approx(paired.mean(), rel=1e-4, abs=1e-4)
    assert margin["top1_std"] == pytest.approx(paired.std(ddof=1), rel=1e-4, abs=1e-4)
    assert f"ahead of the runner-up (alpha={second['alpha']:g}" in report
    assert ("not resolved (paired t" not in report) == margin["resolved"]
    search_part = report.split("![search]")[0]  # the candidate table comes before the plot
    ranks = [line.split("|")[-2].strip() for line in search_part.splitlines() if line[:2] == "| "]
    assert ranks == ["rank"] + [str(row["rank"]) for row in table]  # best first


def test_rerunning_a_finished_search_trains_nothing(searched, monkeypatch):
    out, table = searched
    before = (out / "search.json").read_text()
    monkeypatch.setattr(
        "effscale.training.loop.make_optimizer", lambda *a: pytest.fail("retrained")
    )
    r = runner.invoke(app, [*SEARCH_ARGS, "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == table
    assert json.loads((out / "search.json").read_text())["chosen"] == json.loads(before)["chosen"]


def test_another_search_in_the_same_directory_needs_force(searched):
    out, _ = searched
    r = runner.invoke(app, [*SEARCH_ARGS, "--tolerance", "0.06", "--out", str(out)])
    assert r.exit_code == 2 and "different study" in r.stderr


# -- a partial search ----------------------------------------------------------------------


class FirstTwo(Executor):
    """An executor that trains the first two tasks it is given and stops (a killed run)."""

    def run(self, tasks, events):
        InProcess().run(tasks[:2], events)


def test_a_partial_search_reports_a_leader_then_trains_only_the_rest(tmp_path, monkeypatch):
    study = Study("partial", {"kind": "search test"})
    points, record = search.plan_search(BASE, 1.0, [0], RECIPE, "synthetic", **SMALL)
    study.add_all(points)
    run_search(study, record, tmp_path, executor=FirstTwo(), device="cpu")
    partial = search_report(tmp_path)
    assert not partial["finished"] and partial["chosen"] is None
    assert partial["leader"]["seeds"] == 1  # the base and the cheaper network ran first
    assert partial["points"] == {"planned": 3, "finished": 2}
    with pytest.raises(EffscaleError, match="not finished \\(2 of 3 points done\\)"):
        search.chosen_coefficients(tmp_path)
    r = runner.invoke(app, ["compound", "--from-search", str(tmp_path), "--cost-only"])
    assert r.exit_code == 2 and "not finished" in r.stderr

    done_before = {k for k in StudyDir(tmp_path).status()["states"] if StudyDir(tmp_path).result(k)}
    import effscale.training.loop

    trained, train = [], effscale.training.loop.train

    def counting(variant, data, recipe, out, **kw):
        trained.append(out.name)
        return train(variant, data, recipe, out, **kw)

    monkeypatch.setattr(effscale.training.loop, "train", counting)
    run_search(study, record, tmp_path, device="cpu")
    final = search_report(tmp_path)
    planned = {p.key for p in study.points}
    assert set(trained) == planned - done_before and len(trained) == 1
    assert final["finished"] and final["chosen"] is not None
    assert search.chosen_coefficients(tmp_path) == tuple(
        final["chosen"][k] for k in ("alpha", "beta", "gamma")
    )
    assert not math.isnan(final["base_top1"]["top1_mean"])


@pytest.mark.parametrize("command", ["sweep", "search"])
def test_search_takes_the_executor_options_as_sweep_does(command, tmp_path):
    args = [command, *SEARCH_ARGS[1:], "--out", str(tmp_path / "out")]
    if command == "sweep":  # sweep has no grid: drop --step and --max
        args = [a for i, a in enumerate(args) if a not in ("--step", "--max", "0.2", "1.4")]
    r = runner.invoke(app, [*args, "--partition", "gpu"])
    assert r.exit_code == 2
    assert "--partition does not apply to --executor local (it is for --executor slurm)" in r.output
    r = runner.invoke(app, [*args, "--executor", "ray", "--workers", "2"])
    assert r.exit_code == 2
    assert "--workers does not apply to --executor ray (it is for --executor local)" in r.output
    r = runner.invoke(app, [*args, "--executor", "nowhere"])
    assert r.exit_code == 2 and "unknown executor 'nowhere'" in r.output
    r = runner.invoke(app, [*args, "--workers", "2", "--dry-run"])
    assert r.exit_code == 0, r.output  # accepted: two local worker processes


def test_a_search_that_keeps_few_candidates_says_what_tolerance_keeps_more():
    """Issue 32: the default 5 % kept 4 of 85 candidates and said nothing of the way out."""
    import re

    args = ["search", "--model", "efficientnet-b0", "--base-width", "0.25", "--data",
            "embedded", "--samples", "1000", "--dry-run"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    m = re.search(r"--flops-tolerance ([0-9.]+) would keep about 5 candidates", r.output)
    assert m, r.output
    wider = runner.invoke(app, [*args, "--flops-tolerance", m.group(1)])
    kept = re.search(r"; (\d+) kept", wider.output)
    assert kept and int(kept.group(1)) >= 5, wider.output
