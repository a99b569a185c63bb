"""One training run: it learns, it resumes exactly, it never half-writes a checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from conftest import TINY_TRAIN

from effscale import io
from effscale.data import load_dataset
from effscale.data.augment import eval_transform, random_crop, train_transform
from effscale.errors import EffscaleError, Interrupted
from effscale.recipe import batch_bounds, budget
from effscale.scaling import make_variant
from effscale.training.loop import get_lr, train

SMALL = make_variant("resnet18", w=0.25, d=0.5, base_resolution=32)


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def quick(**kw):
    return budget("smoke", samples=kw.pop("samples", 1024), batch_size=64, **kw)


def test_learns_the_synthetic_set_well_above_chance(synthetic, tmp_path):
    result = train(SMALL, synthetic, quick(samples=2048), tmp_path, device="cpu")
    assert result["status"] == "done"
    assert result["top1"] > 100 / synthetic.num_classes + 30
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, len(lines) + 1))
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["identity"]["seed"] == 0 and cfg["environment"]["torch"] == torch.__version__


def test_finished_run_is_not_retrained(synthetic, tmp_path, monkeypatch):
    first = train(SMALL, synthetic, quick(), tmp_path, device="cpu")
    monkeypatch.setattr(
        "effscale.training.loop.make_optimizer", lambda *a: pytest.fail("retrained")
    )
    assert train(SMALL, synthetic, quick(), tmp_path, device="cpu") == first


def test_other_run_in_the_same_directory_is_refused(synthetic, tmp_path):
    train(SMALL, synthetic, quick(), tmp_path, device="cpu")
    with pytest.raises(EffscaleError, match="different run"):
        train(SMALL, synthetic, quick(), tmp_path, seed=1, device="cpu")


def test_resume_continues_where_it_stopped_and_matches(synthetic, tmp_path, monkeypatch):
    """Stopped after epoch 2 of 4 and resumed: the same metrics as a run never stopped."""
    recipe = quick(samples=4 * len(synthetic.train_labels))
    whole = train(SMALL, synthetic, recipe, tmp_path / "whole", device="cpu")

    import effscale.training.loop as t

    real_evaluate, calls = t.evaluate, []

    def stop_after_two(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed during epoch 3 (after its checkpoint 2)
        return real_evaluate(*a, **k)

    monkeypatch.setattr(t, "evaluate", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(SMALL, synthetic, recipe, tmp_path / "cut", device="cpu")
    monkeypatch.setattr(t, "evaluate", real_evaluate)
    with pytest.raises(EffscaleError, match="interrupted"):
        train(SMALL, synthetic, recipe, tmp_path / "cut", device="cpu")
    resumed = train(SMALL, synthetic, recipe, tmp_path / "cut", device="cpu", resume=True)
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "cut/metrics.jsonl").open()]
    assert epochs == [1, 2, 3, 4]
    assert resumed["top1"] == pytest.approx(whole["top1"], abs=1e-6)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)


def test_sigkill_mid_run_then_resume_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "effscale",
        "train",
        *TINY_TRAIN,
        "--epochs",
        "6",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--format",
        "json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill during epoch 3, after two checkpoints
        if (out / "metrics.jsonl").exists() and len(
            (out / "metrics.jsonl").read_text().splitlines()
        ) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len((out / "metrics.jsonl").read_text().splitlines())
    assert 2 <= done < 6 and not (out / "result.json").exists()
    r = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "done" and result["epochs"] == 6
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").open()]
    assert epochs == list(range(1, 7))


def test_checkpoint_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    with io.atomic_path(path) as tmp:
        torch.save({"epoch": 1}, tmp)

    def torn_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoi")
        raise OSError("disk full")

    with pytest.raises(OSError):
        with io.atomic_path(path) as tmp:
            torn_save({"epoch": 2}, tmp)
    assert torch.load(path)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_nan_loss_stops_and_marks_the_run_diverged(synthetic, tmp_path):
    result = train(SMALL, synthetic, quick(lr=1e30), tmp_path, device="cpu")
    assert result["status"] == "diverged" and result["top1"] is None
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"
    assert "diverged" in (tmp_path / "metrics.jsonl").read_text()


def test_fine_tune_needs_a_new_head_when_classes_differ(synthetic, tmp_path):
    train(SMALL, synthetic, quick(), tmp_path / "pre", device="cpu")
    fewer = load_dataset("synthetic:8")
    fewer.classes = fewer.classes[:5]
    keep = fewer.train_labels < 5
    fewer.train_images, fewer.train_labels = fewer.train_images[keep], fewer.train_labels[keep]
    keep = fewer.test_labels < 5
    fewer.test_images, fewer.test_labels = fewer.test_images[keep], fewer.test_labels[keep]
    with pytest.raises(EffscaleError, match="`new_head`"):
        train(
            SMALL,
            fewer,
            quick(),
            tmp_path / "ft",
            device="cpu",
            init_from=tmp_path / "pre/checkpoint.pt",
        )
    result = train(
        SMALL,
        fewer,
        quick(),
        tmp_path / "ft2",
        device="cpu",
        new_head=True,
        init_from=tmp_path / "pre/checkpoint.pt",
        freeze_epochs=1,
    )
    assert result["status"] == "done" and "new head" in " ".join(result["notes"])


def test_weights_of_another_variant_are_refused(synthetic, tmp_path):
    train(SMALL, synthetic, quick(), tmp_path / "pre", device="cpu")
    other = make_variant("resnet18", w=0.5, d=0.5, base_resolution=32)
    with pytest.raises(EffscaleError, match="does not match"):
        train(
            other,
            synthetic,
            quick(),
            tmp_path / "ft",
            device="cpu",
            init_from=tmp_path / "pre/checkpoint.pt",
        )


def test_schedule_warms_up_then_decays_to_zero():
    r = budget("short", warmup=0.1)  # get_lr(recipe, samples, total, images an epoch)
    assert get_lr(r, 0, 100, 10) == 0 and get_lr(r, 5, 100, 10) == pytest.approx(r.lr / 2)
    assert get_lr(r, 10, 100, 10) == pytest.approx(r.lr)
    assert get_lr(r, 100, 100, 10) == pytest.approx(0, abs=1e-9)
    lrs = [get_lr(r, t, 100, 10) for t in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_augmentation_is_batched_seeded_and_shape_preserving():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = train_transform(x, 48, (0.5,) * 3, (0.25,) * 3, g1)
    b = train_transform(x, 48, (0.5,) * 3, (0.25,) * 3, g2)
    assert a.shape == (8, 3, 48, 48) and torch.equal(a, b)
    crop = random_crop(x, 4, torch.Generator().manual_seed(0))
    assert crop.shape == x.shape and crop.dtype == torch.uint8
    e = eval_transform(x, 32, (0.5,) * 3, (0.25,) * 3)
    assert torch.allclose(e, (x.float() / 255 - 0.5) / 0.25, atol=1e-5)


def test_cuda_out_of_memory_halves_the_batch_and_says_so(synthetic, tmp_path, monkeypatch):
    """Simulated: a model that runs out of memory above 32 images per batch."""
    import effscale.training.loop as t

    real_build = t.build_model

    def build_oom_above_32(*a, **k):
        model = real_build(*a, **k)
        forward = model.forward

        def guarded(x):
            if model.training and x.shape[0] > 32:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return forward(x)

        model.forward = guarded
        return model

    monkeypatch.setattr(t, "build_model", build_oom_above_32)
    result = train(SMALL, synthetic, quick(samples=1000), tmp_path, device="cpu")
    assert result["status"] == "done" and result["batch_size"] == 32
    assert any("batch size halved to 32" in n for n in result["notes"])


@pytest.mark.parametrize(
    "args, says",
    [
        (["--data", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--budget", "huge"], "unknown budget"),
        (["--lr", "-1"], "lr must be positive"),
        (["--device", "tpu"], "unknown device"),
        (["--from", "/nonexistent/ckpt.pt"], "no weights file"),
    ],
)
def test_train_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    from typer.testing import CliRunner

    from effscale.cli import app

    r = CliRunner().invoke(
        app,
        [
            "train",
            "resnet18",
            "--width",
            "0.25",
            "--data",
            "synthetic",
            "--budget",
            "smoke",
            "--samples",
            "64",
            "--out",
            str(tmp_path / "o"),
            *args,
        ],
    )
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_train_command_prints_the_final_metrics(tmp_path):
    from typer.testing import CliRunner

    from effscale.cli import app

    r = CliRunner().invoke(
        app,
        [
            "train",
            *TINY_TRAIN,
            "--samples",
            "512",
            "--out",
            str(tmp_path),
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["status"] == "done" and 0 <= result["top1"] <= 100
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "result.json").exists()


class _Stop(Exception):
    pass


def test_evaluation_fits_the_weights_at_every_epoch_on_large_images(tmp_path):
    """An EMA model's averaged BN statistics do not fit its averaged weights early in a run
    (Imagenette: chance-level top-1 for three epochs). The top-1 a run reports at an
    intermediate epoch must be that of its evaluated weights with BN statistics recomputed
    on training images (images stored at 96 px, trained at 40 px, EMA on)."""
    from effscale.training.loop import Preprocess, build_for_training, evaluate

    data = load_dataset("synthetic:60", storage_size=96)
    variant = make_variant("efficientnet-b0", base_width=0.25, base_resolution=40)
    recipe = budget("smoke", samples=6 * len(data.train_labels), batch_size=64, lr=0.1, ema=0.2)
    reported = {}

    def at_epoch(kind, payload):
        if kind == "epoch" and payload["epoch"] == 2:
            reported.update(payload)
            raise _Stop  # the checkpoint of epoch 2 is written: it holds what was evaluated

    with pytest.raises(_Stop):
        train(variant, data, recipe, tmp_path, device="cpu", on_event=at_epoch)
    model, _ = build_for_training(variant, data, recipe)
    model = model.to(memory_format=torch.channels_last)
    model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["ema"])
    prep = Preprocess.of(variant, data, recipe)
    assert prep.eval_crop == 0.875  # large images: evaluated on the official centre crop
    # BN statistics from scratch, by hand: a cumulative average over eval-preprocessed
    # training images, everything else in eval mode
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    model.eval()
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    shuffled = data.train_images[torch.randperm(len(data.train_labels))]  # classes mixed
    with torch.no_grad():
        for i in range(0, len(shuffled), 100):
            x = eval_transform(shuffled[i : i + 100], prep.size, data.mean, data.std, 0.875)
            model(x.contiguous(memory_format=torch.channels_last))
    fitted = evaluate(model, data, prep, recipe, torch.device("cpu"))
    assert fitted["top1"] > 100 / data.num_classes + 20  # the weights have learnt something
    assert reported["top1"] >= fitted["top1"] - 5


def test_compiled_training_matches_eager(synthetic):
    """torch.compile changes the float order of a step, not what it computes: the same
    model, batches and optimizer give the same first loss to float precision, and losses
    within a few percent after some steps (float-order differences grow as SGD goes)."""
    import torch.nn.functional as F

    from effscale.training.loop import build_for_training, make_optimizer

    recipe = quick()
    x = torch.randn(4, 32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (4, 32), generator=torch.Generator().manual_seed(1))

    def losses(compiled: bool) -> list[float]:
        torch.manual_seed(0)
        model, _ = build_for_training(SMALL, synthetic, recipe)
        step_model = torch.compile(model) if compiled else model
        optimizer = make_optimizer(model, recipe)
        out = []
        for xb, yb in zip(x, y):
            loss = F.cross_entropy(step_model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            out.append(loss.item())
        return out

    eager, compiled = losses(False), losses(True)
    assert compiled[0] == pytest.approx(eager[0], rel=1e-4)
    assert compiled == pytest.approx(eager, rel=0.03)


def test_a_failing_compile_falls_back_to_eager_and_says_so(synthetic, tmp_path, monkeypatch):
    def broken(model, *a, **k):
        def fail(x):
            raise RuntimeError("inductor exploded")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    said = []
    result = train(
        SMALL, synthetic, quick(samples=256), tmp_path, device="cpu", compile=True,
        on_event=lambda kind, payload: said.append(payload) if kind == "message" else None,
    )  # fmt: skip
    assert result["status"] == "done"
    assert said == ["torch.compile failed (RuntimeError: inductor exploded); training eagerly"]


def test_compile_is_decided_from_the_device_probe(tmp_path, monkeypatch):
    from effscale.training import compiling

    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    cpu = torch.device("cpu")
    assert compiling.decide(cpu, 1e9, None) == (
        False, "no probe of this device yet, and the run is short"
    )  # fmt: skip
    probe = {"speedup": 0.83, "compile_seconds": 100.0, "eager_flop_per_s": 1e10}
    (tmp_path / "compile").mkdir()
    compiling._path(cpu).write_text(json.dumps(probe))
    assert compiling.decide(cpu, 1e15, None)[0] is False  # slower compiled: never
    compiling._path(cpu).write_text(json.dumps({**probe, "speedup": 1.9}))
    assert compiling.decide(cpu, 1e12, None)[0] is False  # 100 s eager: saves < a compile
    assert compiling.decide(cpu, 1e14, None)[0] is True  # hours eager: pays
    assert compiling.decide(cpu, 1e14, False) == (False, "`compile`=False")


def test_the_environment_names_the_cpu_model(monkeypatch):
    import builtins

    from effscale import hardware
    from effscale.training.loop import environment

    real_open = builtins.open
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core\n"

    def fake_open(path, *a, **k):
        if path == "/proc/cpuinfo":
            import io

            return io.StringIO(cpuinfo)
        return real_open(path, *a, **k)

    hardware.cpu_name.cache_clear()
    monkeypatch.setattr(builtins, "open", fake_open)
    try:
        env = environment(torch.device("cpu"))
    finally:
        monkeypatch.undo()
        hardware.cpu_name.cache_clear()
    assert env["hardware"] == "AMD EPYC 7B13 64-Core"
    assert env["machine"]  # the architecture, e.g. x86_64, beside it


# Per epoch (train loss, top-1) of two fixed runs per trainable protocol (torch 2.13.0, CPU,
# one thread). Stored points can only be compared with new ones if training still computes
# the same thing: a change that moves these numbers must bump Recipe.protocol (so old points
# are kept apart) and record the new ones. The tolerance allows another CPU's float order.
RECORDED = {
    (2, "large images"): [(2.17619706524743, 33.333333333333336), (1.7379117144478693, 57.5)],
    (2, "small images"): [(1.5859314997990925, 99.5), (0.687368377049764, 100.0)],
    (3, "large images"): [(2.1726182818412783, 41.666666666666664), (1.674759864807129, 95.0)],
    (3, "small images"): [(1.533398199826479, 99.5), (0.6762852482497692, 100.0)],
}


@pytest.mark.parametrize("protocol", [2, 3])
def test_training_still_computes_what_the_stored_points_were_trained_with(tmp_path, protocol):
    from effscale.recipe import PROTOCOL, TRAINABLE_PROTOCOLS

    assert (PROTOCOL, TRAINABLE_PROTOCOLS) == (3, (2, 3)), "a new protocol: record it here"
    torch.set_num_threads(1)
    runs = {
        "large images": (  # antialiased random-resized crops, centre-crop eval, precise BN
            load_dataset("synthetic:60", storage_size=96),
            make_variant("efficientnet-b0", base_width=0.25, base_resolution=40),
        ),
        "small images": (load_dataset("synthetic"), SMALL),  # pad-and-crop
    }
    for name, (data, variant) in runs.items():
        recipe = budget("smoke", samples=2 * len(data.train_labels), batch_size=64, ema=0.2,
                        protocol=protocol)  # fmt: skip
        train(variant, data, recipe, tmp_path / name, device="cpu")
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        got = [(m["train_loss"], m["top1"]) for m in map(json.loads, lines)]
        assert len(got) == len(RECORDED[protocol, name]), name
        for (loss, top1), (want_loss, want_top1) in zip(got, RECORDED[protocol, name]):
            assert loss == pytest.approx(want_loss, rel=1e-3), name
            assert top1 == pytest.approx(want_top1, abs=2.5), name  # 3 of 120 test images


def test_an_epoch_is_a_full_pass_and_epochs_give_that_many(tmp_path):
    """Issue 32: 240 images at batch 128 trained 128 per "epoch" (the rest was dropped), so
    --epochs 2 trained 4 such epochs and 512 samples, and the BN note said 512 images.
    Protocol 3: two passes of 240 in batches of 120, and every number says so."""
    from effscale.recipe import samples_for_epochs

    data = load_dataset("synthetic:24")  # 240 training images
    recipe = budget("smoke", samples=samples_for_epochs(2, 240), batch_size=128)
    result = train(SMALL, data, recipe, tmp_path, device="cpu")
    assert (result["epochs"], result["samples"]) == (2, 480)
    epochs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["samples"] for m in epochs] == [240, 480]
    assert "BN statistics recomputed on 240 training images" in result["eval_model"]
    old = train(SMALL, data, replace(recipe, protocol=2), tmp_path / "p2", device="cpu")
    assert (old["epochs"], old["samples"]) == (4, 512)  # what protocol 2 did, kept for its points


def test_a_run_killed_inside_an_epoch_resumes_inside_it_and_matches(
    synthetic, tmp_path, monkeypatch
):
    """Issue 32: checkpoints were written at epoch ends only, so a kill in the first epoch
    lost everything. Now one is written every CHECKPOINT_SECONDS (here: every step), and a
    run resumed from one continues the epoch: the same result as a run never stopped."""
    import effscale.training.loop as t

    recipe = quick(samples=2 * len(synthetic.train_labels))
    whole = train(SMALL, synthetic, recipe, tmp_path / "whole", device="cpu")
    monkeypatch.setattr(t, "CHECKPOINT_SECONDS", 0.0)
    n = len(synthetic.train_labels)
    bounds = batch_bounds(n, recipe.batch_size)  # where each batch of an epoch ends
    assert len(bounds) > 4

    def stop_mid_epoch(kind, payload):
        if kind == "progress" and payload.get("completed") == n + bounds[3]:
            raise KeyboardInterrupt  # in epoch 2, after its third step

    with pytest.raises(Interrupted, match=f"holds its first {n + bounds[2]:,}"):
        train(SMALL, synthetic, recipe, tmp_path / "cut", device="cpu", on_event=stop_mid_epoch)
    heard = []
    resumed = train(SMALL, synthetic, recipe, tmp_path / "cut", device="cpu", resume=True,
                    on_event=lambda kind, p: heard.append((kind, p)))  # fmt: skip
    said = [p for kind, p in heard if kind == "message" and "resuming" in str(p)]
    assert said and f"epoch 2, sample {n + bounds[2]:,}" in said[0]
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "cut/metrics.jsonl").open()]
    assert epochs == [1, 2]
    assert resumed["top1"] == pytest.approx(whole["top1"], abs=1e-6)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)
    assert resumed["samples"] == whole["samples"]


def test_a_budget_inside_an_epoch_trains_whole_batches_and_says_how_many(tmp_path):
    """Protocol 3's batches are of near-equal size (10,000 images at batch 64: 157 of 63 or
    64), so a budget of 4,096 falls inside one: 65 batches, 4,140 samples, in every number
    (the bar said 4,140 of 4,096)."""
    from effscale.recipe import batch_bounds
    from effscale.training.batches import samples_trained

    recipe = budget("smoke", samples=4096, batch_size=64)
    bounds = batch_bounds(10_000, 64)
    assert samples_trained(10_000, recipe) == 4140 == bounds[65]
    data = load_dataset("synthetic:10")  # 100 images at batch 32: batches of 25
    heard = []
    result = train(SMALL, data, budget("smoke", samples=60, batch_size=32), tmp_path,
                   device="cpu", on_event=lambda kind, p: heard.append((kind, p)))  # fmt: skip
    totals = [p["total"] for kind, p in heard if kind == "progress" and "total" in p]
    assert result["samples"] == totals[0] == 75  # three batches of 25
