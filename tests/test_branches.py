"""Every budget of a study from one run: the warmup-stable-decay schedule and its branches
(issue 27)."""

import json
from dataclasses import replace

import pytest
import torch

from effscale.data import load_dataset
from effscale.recipe import budget
from effscale.rundir import PointDir
from effscale.scaling import make_variant
from effscale.training.loop import train
from effscale.training.optim import get_lr

SMALL = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)
WSD = budget("smoke", samples=600, batch_size=32, schedule="wsd", warmup_samples=100,
             cooldown=0.3, ema=0.1)  # fmt: skip


def test_the_rate_before_a_cool_down_does_not_depend_on_the_budget():
    short, long = replace(WSD, samples=300), WSD
    for s in range(0, 210, 10):  # 210: where the 300-sample run's cool-down starts
        assert get_lr(short, s, 300, 100) == get_lr(long, s, 600, 100)
    assert get_lr(short, 50, 300, 100) == pytest.approx(WSD.lr / 2)  # warm-up, in samples
    assert get_lr(short, 255, 300, 100) == pytest.approx(WSD.lr / 2)  # halfway down
    assert get_lr(short, 300, 300, 100) == 0 and get_lr(long, 300, 600, 100) == WSD.lr


def test_a_branch_trains_what_a_run_to_its_budget_alone_trains(tmp_path):
    """The run to 600 samples seeds the 300-sample budget where its cool-down starts; that
    budget then trains its cool-down alone, and ends where a run to 300 alone ends."""
    torch.set_num_threads(1)
    data = load_dataset("synthetic:10")  # 100 training images: 4 batches of 25 an epoch
    short = replace(WSD, samples=300)
    alone = train(SMALL, data, short, tmp_path / "alone", device="cpu", compile=False)
    heard = []
    train(SMALL, data, WSD, tmp_path / "trunk", device="cpu", compile=False,
          branches=[(short, tmp_path / "branch")])  # fmt: skip
    assert (tmp_path / "branch" / "checkpoint.pt").exists()
    seeded = PointDir(tmp_path / "branch")  # what status shows of it: where it stands
    assert seeded.progress() == {"samples": 225, "total": 300}
    assert [m["epoch"] for m in seeded.epochs()] == [1, 2]  # the trunk's, before 225
    branched = train(SMALL, data, short, tmp_path / "branch", device="cpu", compile=False,
                     resume=True, on_event=lambda kind, p: heard.append((kind, p)))  # fmt: skip
    said = [p for kind, p in heard if kind == "message" and "resuming" in str(p)]
    assert said and "sample 225 of 300" in said[0]  # the first step at or past 0.7 x 300
    for k in ("top1", "loss", "samples", "epochs"):
        assert branched[k] == pytest.approx(alone[k], rel=1e-4, abs=1e-4), k
    lines = [
        [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
        for d in ("alone", "branch")
    ]
    for a, b in zip(*lines, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["top1"] == pytest.approx(b["top1"], abs=1e-6)
    weights = [torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["ema"]
               for d in ("alone", "branch")]  # fmt: skip
    for name, tensor in weights[0].items():
        assert torch.allclose(tensor.float(), weights[1][name].float(), atol=1e-5), name


def _wsd_study():
    from effscale.study.plan import Base, Study, plan_sweep

    study = Study("wsd", {"kind": "test"})
    base = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
    for samples in (300, 600):
        study.add_all(plan_sweep(base, "width", [1.5], [0], replace(WSD, samples=samples),
                                 "synthetic:10"))  # fmt: skip
    return study


def test_a_study_trains_one_trunk_per_shape_and_a_cool_down_per_shorter_budget(tmp_path):
    """Done means of issue 27: budgets [300, 600] with schedule wsd train one run per shape
    and seed to 600 and, for 300, its cool-down alone; every budget keeps its row; the dry
    run counts that and what separate runs would cost."""
    from effscale.study.branches import trunk_of
    from effscale.study.engine import run_study
    from effscale.study.estimate import Speed, estimate_study

    study = _wsd_study()
    branches = trunk_of(study.points)
    assert len(study.points) == 4 and len(branches) == 2  # base and width, each 300 -> 600
    plan = estimate_study(study, tmp_path / "none", speed=Speed(1e9, "cpu", "test", 1, "fixed"))
    s = plan.summary()
    assert s["separate_compute_flops"] > 1.25 * s["compute_flops"]  # 900 samples vs 600 + 90
    assert "as separate runs" in plan.sentence()
    first = {}

    def on_event(kind, key, payload):
        if kind == "progress" and key not in first:
            first[key] = payload.get("completed", 0)

    df = run_study(study, tmp_path / "run", device="cpu", on_event=on_event, compile=False)
    assert sorted(df["budget"]) == [300, 300, 600, 600] and set(df["status"]) == {"done"}
    for branch in branches:
        assert first[branch] == 225  # it started where its cool-down does, not at 0
    for trunk in set(branches.values()):
        assert first[trunk] == 0
