"""One training run: fit a variant briefly, evaluate it, checkpoint each epoch, resume.

Read top to bottom, in nanoGPT's order: setup (batches: training.batches), then ``train``:
the run directory (effscale.rundir.PointDir), the model (build_for_training), and ``fit``,
one loop with evaluation (training.evaluation) and an atomic checkpoint
(training.checkpoint) per epoch; the optimizer, schedule and EMA are training.optim's.
Everything a result depends on (variant, recipe, data, seed) is in config.json;
metrics.jsonl has one line per epoch; result.json is written last, so its presence means
the run finished (or diverged, which it says).

Progress goes out through one callback, ``on_event(kind, payload)``: "progress" (first with
the run's description and total samples, then samples completed and an info line), "message"
(a line of text) and "epoch" (the epoch's metrics, once its checkpoint is written). Nothing
here draws on a screen.
"""

import copy
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from effscale import io
from effscale.cost import count_cost
from effscale.data.augment import train_transform
from effscale.data.dataset import ImageDataset
from effscale.errors import EffscaleError, Interrupted
from effscale.recipe import DROP_PATH, Recipe, cooldown_start, paper_dropout
from effscale.rundir import PointDir
from effscale.scaling import Variant
from effscale.training.batches import to_device, total_samples, train_batches
from effscale.training.branches import Branch, seed_branch
from effscale.training.checkpoint import Progress, load_checkpoint, load_weights, save_checkpoint
from effscale.training.compiling import CompiledOrEager
from effscale.training.compiling import decide as decide_compile
from effscale.training.compiling import mode_for as compile_mode
from effscale.training.device import environment, resolve_device
from effscale.training.evaluation import (
    Preprocess,
    autocast,
    bn_batches,
    bn_image_count,
    evaluate,
    prepared_test_set,
    recompute_bn,
)
from effscale.training.optim import get_lr, make_optimizer, update_ema
from effscale.zoo import build_model, resolve_spec

# ---------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------


def run_identity(
    variant: Variant, recipe: Recipe, data: ImageDataset, seed: int, init_from: str | None
) -> dict:
    """What makes two runs the same run: resuming is only allowed when this matches."""
    return {
        "variant": variant.to_dict(),
        "recipe": recipe.to_dict(),
        "data": {k: v for k, v in data.describe().items() if k != "streaming"},
        "seed": seed,
        "init_from": str(init_from) if init_from else None,
    }


def late_gain(metrics: list[dict]) -> tuple[float | None, int | None]:
    """Top-1 gained since the last evaluation at or before 3/4 of the samples, and the
    samples that evaluation was at: a point still improving at its end shows a gain."""
    evals = [m for m in metrics if m.get("top1") is not None]
    if len(evals) < 2:
        return None, None
    cut = 0.75 * evals[-1]["samples"]
    before = [m for m in evals[:-1] if m["samples"] <= cut] or evals[:1]
    return evals[-1]["top1"] - before[-1]["top1"], before[-1]["samples"]


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def build_for_training(variant: Variant, data: ImageDataset, recipe: Recipe):
    """The model with the paper's dropout and stochastic depth for its size (off in brief
    budgets, whose ``regularization`` is 0), and its cost."""
    cost = count_cost(variant, data.num_classes)
    base = replace(variant, d=1.0, w=1.0, r=1.0, resolution=variant.base_resolution)
    dropout = paper_dropout(cost.flops / count_cost(base, data.num_classes).flops)
    spec = resolve_spec(variant)
    model = build_model(
        variant,
        data.num_classes,
        dropout=dropout * recipe.regularization if spec.dropout > 0 else 0.0,
        drop_path=DROP_PATH * recipe.regularization if spec.drop_path else 0.0,
    )
    return model, cost


def _check_protocol(recipe: Recipe) -> None:
    from effscale.recipe import TRAINABLE_PROTOCOLS

    if recipe.protocol not in TRAINABLE_PROTOCOLS:
        raise EffscaleError(
            f"this run was planned with training protocol {recipe.protocol}; this effscale "
            f"trains protocols {', '.join(map(str, TRAINABLE_PROTOCOLS))} (effscale.recipe)",
            "its stored results can be reported; plan the study again to train it",
        )


def train(
    variant: Variant,
    data: ImageDataset,
    recipe: Recipe,
    out: str | Path,
    *,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    init_from: str | Path | None = None,
    new_head: bool = False,
    freeze_epochs: int = 0,
    compile: bool | None = None,
    on_event=None,
    should_stop=None,
    branches: list | None = None,
) -> dict:
    """Train one variant briefly and return its final metrics (also in out/result.json).

    ``compile``: torch.compile the training step (True), not (False), or decide from what was
    measured on this device (None: effscale.training.compiling.decide). ``should_stop()``:
    asked after every step; when it says so, the run writes a checkpoint where it stands
    and raises effscale.errors.Interrupted (a study's clean stop on Ctrl-C). ``branches``:
    (recipe, directory) of shorter budgets of this WSD run; each directory gets this run's
    checkpoint where its budget's cool-down starts, and then trains only its cool-down.
    """
    recipe = recipe.validate()
    device = resolve_device(device)
    point = PointDir(io.writable_dir(out))
    io.remove_orphans(point.path)  # temporary files of a killed run
    emit = on_event or (lambda kind, payload: None)
    identity = run_identity(variant, recipe, data, seed, init_from)
    finished = point.open(identity, resume, emit)
    if finished is not None:
        return finished
    _check_protocol(recipe)
    torch.manual_seed(seed)
    model, cost = build_for_training(variant, data, recipe)
    point.write_config(_config(identity, cost, variant, data, device))
    notes = _notes(variant, data, model, init_from, new_head)
    model, ema, optimizer = _on_device(model, recipe, device)
    at = Progress(recipe.batch_size, notes=notes)
    if resume and point.checkpoint.exists():
        at = load_checkpoint(point, model, optimizer, ema, device)
        emit("message", f"resuming {variant.label} at epoch {at.epoch + 1}, sample "
                        f"{at.samples:,} of {total_samples(data, recipe):,}")  # fmt: skip
    data = to_device(data, device)
    compiled, why = decide_compile(device, 6 * cost.flops * recipe.samples, compile, emit)
    if not any(n.startswith("torch.compile") for n in at.notes):
        at.notes.append(f"torch.compile {'on' if compiled else 'off'}: {why}")
    step_model = CompiledOrEager(model, emit, compile_mode(device)) if compiled else model
    saved = [at.samples if point.checkpoint.exists() else 0]  # samples in checkpoint.pt
    total, noted = total_samples(data, recipe), [0.0]

    def on_epoch(kind, payload):
        if kind == "saved":  # a checkpoint was written (at an epoch's end or inside one)
            saved[0] = payload
            return
        if kind == "progress" and time.monotonic() - noted[0] >= PROGRESS_SECONDS:
            noted[0] = time.monotonic()  # for `effscale status`, finer than an epoch
            point.write_progress(payload["completed"], total)
        emit(kind, payload)

    seeds = [
        _branch(r, out, variant, data, seed, init_from, cost, device) for r, out in branches or []
    ]
    run = Run(model, ema, optimizer, variant, data, recipe, point, seed, device, step_model,
              on_epoch, should_stop or _never, seeds)  # fmt: skip
    try:
        status = fit(run, at, freeze_epochs)
    except KeyboardInterrupt:  # files are replaced whole: the last checkpoint is intact
        raise _interrupted(variant, at, recipe, point, saved[0]) from None
    if status == "stopped":  # asked to (should_stop), with a checkpoint where it stood
        raise _interrupted(variant, at, recipe, point, saved[0])
    return _finish(run, status, at, cost)


def _never() -> bool:
    return False


def _branch(recipe: Recipe, out, variant, data, seed, init_from, cost, device) -> Branch:
    point = PointDir(io.writable_dir(out))
    identity = run_identity(variant, recipe, data, seed, init_from)
    total = total_samples(data, recipe)
    return Branch(
        cooldown_start(recipe, total), point, _config(identity, cost, variant, data, device), total
    )


def _config(identity: dict, cost, variant: Variant, data: ImageDataset, device) -> dict:
    """config.json: what the run is, what it costs, and where it ran."""
    return {
        "identity": identity,
        "cost": cost.to_dict(),
        "num_classes": data.num_classes,
        "environment": environment(device),
        "spec": resolve_spec(variant).to_dict(),
    }


def _on_device(model, recipe: Recipe, device):
    """The model on its device (channels-last when the recipe says), the EMA copy of it that
    is evaluated, and its optimizer."""
    model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval() if recipe.ema > 0 else None
    return model, ema, make_optimizer(model, recipe)


def _notes(variant: Variant, data: ImageDataset, model, init_from, new_head: bool) -> list:
    """What a result should say about how it was trained (and initialise from init_from)."""
    notes = list(data.notes)
    if variant.resolution > data.resolution:
        notes.append(
            f"upsampled: images stored at {data.resolution} px, trained at {variant.resolution} px"
        )
    if init_from:
        notes.append(f"initialised from {init_from} ({load_weights(model, init_from, new_head)})")
    return notes


def _interrupted(variant, at: Progress, recipe: Recipe, point: PointDir, saved: int):
    """What a Ctrl-C leaves, read from the checkpoint on disk: the signal may land between
    a checkpoint's atomic rename and the event that reports it (``saved``)."""
    if point.checkpoint.exists():
        try:
            saved = int(point.load_checkpoint()["samples"])
        except Exception:  # unreadable: what the events said
            pass
    else:
        saved = 0
    return Interrupted(
        f"{variant.label} stopped after {at.samples:,} of {recipe.samples:,} samples; "
        + (
            f"{point.checkpoint} holds its first {saved:,} samples"
            if saved
            else "no checkpoint had been written yet"
        ),
        "rerun with `resume` to continue" if saved else "rerun to start again",
    )


@dataclass
class Run:
    """What the loop trains with, set up once (train); where it stands is ``Progress``."""

    model: torch.nn.Module
    ema: torch.nn.Module | None  # the averaged copy that is evaluated
    optimizer: torch.optim.Optimizer
    variant: Variant
    data: ImageDataset
    recipe: Recipe
    point: PointDir
    seed: int
    device: torch.device
    step_model: torch.nn.Module  # the model, or its compiled form, for training steps
    emit: object  # on_event(kind, payload)
    should_stop: object = _never  # asked after every step (train's should_stop)
    branches: list = field(default_factory=list)  # Branch: shorter WSD budgets to seed


def fit(run: Run, at: Progress, freeze_epochs: int = 0) -> str:
    """The loop: epochs of shuffled batches, one evaluation and checkpoint per epoch.
    Returns "done" or "diverged"; ``at`` is advanced in place."""
    model, ema, optimizer = run.model, run.ema, run.optimizer
    variant, data, recipe, point, seed, device = (
        run.variant, run.data, run.recipe, run.point, run.seed, run.device
    )  # fmt: skip
    emit = run.emit
    prep = Preprocess.of(variant, data, recipe)
    scaler = torch.amp.GradScaler(
        enabled=device.type == "cuda" and recipe.amp and not torch.cuda.is_bf16_supported()
    )
    total = total_samples(data, recipe)
    bn_set = bn_batches(data, prep, recipe, seed, device)
    test_set = prepared_test_set(data, prep, recipe, device)
    emit(
        "progress",
        {"description": variant.label, "total": total, "completed": at.samples, "info": ""},
    )
    while at.samples < total:
        model.train()
        fc = getattr(model, "fc", None)  # a register_module network may name it otherwise
        head = {id(p) for p in fc.parameters()} if isinstance(fc, torch.nn.Module) else set()
        for p in model.parameters():  # frozen backbone for the first epochs of a fine-tune
            p.requires_grad_(at.epoch >= freeze_epochs or id(p) in head)

        def save():  # a checkpoint inside the epoch: at holds where it stands
            save_checkpoint(point, model, optimizer, ema, at, variant, data, prep)
            emit("saved", at.samples)

        epoch = _epoch(run, at, Steps(scaler, prep, total, save))
        at.seconds += epoch.seconds  # this epoch's, over every session that trained it
        at.epoch_steps, at.epoch_partial, at.aug_state = 0, {}, None  # the epoch is over
        if epoch.status == "oom":
            continue  # the epoch restarts at the smaller batch; samples seen still count
        if epoch.status == "stopped":
            return "stopped"  # its checkpoint was written where it stopped
        if epoch.status == "diverged":
            at.metrics.append(
                {"epoch": at.epoch + 1, "samples": at.samples, "status": "diverged",
                 "lr": epoch.lr, "seconds": epoch.seconds}
            )  # fmt: skip
            point.write_metrics(at.metrics)
            return "diverged"
        at.epoch += 1
        evaluated = ema if ema is not None else model
        t_eval = time.perf_counter()
        recompute_bn(evaluated, bn_set, recipe, device)
        scores = evaluate(evaluated, data, prep, recipe, device, test_set)
        at.metrics.append(
            {
                "epoch": at.epoch,
                "samples": at.samples,
                "train_loss": epoch.loss_sum / max(1, epoch.loss_n),
                "lr": epoch.lr,
                "seconds": epoch.seconds,
                "eval_seconds": round(time.perf_counter() - t_eval, 3),
                "images_per_s": epoch.seen / epoch.seconds,
                **scores,
            }
        )
        point.write_metrics(at.metrics)
        save_checkpoint(point, model, optimizer, ema, at, variant, data, prep)
        emit("saved", at.samples)
        emit("epoch", at.metrics[-1])
    return "done"


@dataclass
class Epoch:
    """How one pass over the training batches went."""

    status: str = "done"  # done, oom (restart it at half the batch), diverged or stopped
    seen: int = 0  # samples
    loss_sum: float = 0.0
    loss_n: int = 0
    lr: float = 0.0  # the last step's
    seconds: float = 0.0


@dataclass
class Steps:
    """What fit hands each epoch besides the run: the AMP scaler, the preprocessing, the
    budget in samples, and ``save()``, which writes a checkpoint where the run stands."""

    scaler: object
    prep: Preprocess
    total: int
    save: object


def _epoch(run: Run, at: Progress, steps: Steps) -> Epoch:
    """One epoch of steps (until the budget's end): lr schedule, augmentation, step, EMA;
    ``save()`` writes a checkpoint every CHECKPOINT_SECONDS inside it, and a run resumed
    from one continues the epoch where it stood (its batches, crops and running figures)."""
    model, ema, optimizer, variant, data, recipe = (
        run.model, run.ema, run.optimizer, run.variant, run.data, run.recipe
    )  # fmt: skip
    seed, device, step_model, emit = run.seed, run.device, run.step_model, run.emit
    scaler, prep, total, save = steps.scaler, steps.prep, steps.total, steps.save
    ema_halflife = recipe.ema * total  # in samples, so a halved batch keeps it
    wsd = recipe.schedule == "wsd"
    aug = torch.Generator(device).manual_seed(seed * 7_919 + at.epoch)
    e = Epoch(**at.epoch_partial)  # the figures of the part trained before a resume
    if at.aug_state is not None:
        aug.set_state(at.aug_state)
    start, t0, session = at.epoch_steps, time.perf_counter(), 0
    last_save = t0
    for x, y in train_batches(data, at.epoch, at.batch_size, seed, recipe, device, start):
        if at.samples >= total:
            break
        e.lr = get_lr(recipe, at.samples, total, len(data.train_labels))
        before = at.samples  # where this step starts
        for g in optimizer.param_groups:
            g["lr"] = e.lr * at.batch_size / recipe.batch_size
        x = train_transform(x, prep.size, data.mean, data.std, aug, prep.policy, prep.min_area)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = _step(step_model, optimizer, scaler, x, y, recipe, device)
        if loss is None:  # CUDA out of memory: halve the batch, restart the epoch
            _halve_batch(at, variant, device, emit)
            e.status = "oom"
            break
        if ema is not None:  # WSD: the EMA follows the model until the cool-down starts
            stable = wsd and before < cooldown_start(recipe, total)
            update_ema(ema, model, 0.0 if stable else 0.5 ** (len(y) / max(ema_halflife, len(y))))
        at.samples += len(y)
        e.seen += len(y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            e.status = "diverged"
            break
        e.loss_sum, e.loss_n = e.loss_sum + loss_value, e.loss_n + 1
        now, session = time.perf_counter(), session + len(y)
        at.epoch_steps += 1
        rate = session / (now - t0)  # this session's samples only
        info = f"epoch {at.epoch + 1} · {rate:,.0f} img/s · loss {e.loss_sum / e.loss_n:.3f}"
        emit("progress", {"completed": at.samples, "info": info})
        stop = run.should_stop() and at.samples < total
        timed = now - last_save >= CHECKPOINT_SECONDS and at.samples < total
        branches = [b for b in run.branches if before < b.start <= at.samples]
        if stop or timed or branches:
            at.epoch_partial = {**e.__dict__, "seconds": e.seconds + now - t0}
            at.aug_state = aug.get_state()
            for b in branches:  # a shorter budget's cool-down starts here
                seed_branch(b, model, optimizer, ema, at, variant, data, prep)
        if stop or timed:
            save()
            last_save = time.perf_counter()
        if stop:
            e.status = "stopped"
            break
    e.seconds += time.perf_counter() - t0
    return e


# A checkpoint is also written inside an epoch once this many seconds have passed since the
# last one: an ImageNet epoch takes hours, and a kill in it lost them all (a few MB written
# every few minutes costs well under 1 % of the time).
CHECKPOINT_SECONDS = 300.0
# How often a running point's progress.json is rewritten (a few bytes).
PROGRESS_SECONDS = 10.0


def _step(step_model, optimizer, scaler, x, y, recipe, device):
    """One SGD step; the loss, or None when CUDA ran out of memory."""
    try:
        with autocast(device, recipe):
            loss = F.cross_entropy(step_model(x), y, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss
    except torch.OutOfMemoryError:
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        return None


def _halve_batch(at: Progress, variant, device, emit) -> None:
    if at.batch_size == 1:
        raise EffscaleError(
            f"{variant.label} does not fit on {device} even at batch 1",
            "use a smaller variant or another device",
        )
    at.batch_size //= 2  # the lr follows (linear scaling), the budget does not change
    at.notes.append(f"out of memory at epoch {at.epoch + 1}: batch size halved to {at.batch_size}")
    emit("message", at.notes[-1])


def _finish(run: Run, status: str, at: Progress, cost) -> dict:
    """result.json: the last evaluation, what was evaluated, whether it was still improving."""
    point, ema, recipe = run.point, run.ema, run.recipe
    final = at.metrics[-1] if at.metrics and status == "done" else {}
    train_seconds = at.seconds
    gain, since = late_gain(at.metrics) if status == "done" else (None, None)
    bn_images = bn_image_count(len(run.data.train_labels), recipe)
    bn = f", BN statistics recomputed on {bn_images:,} training images" * bool(bn_images)
    result = {
        "status": status,
        **{k: final.get(k) for k in ("top1", "top5", "loss")},
        "epochs": at.epoch,
        "samples": at.samples,
        "batch_size": at.batch_size,
        "train_seconds": round(train_seconds, 2),
        "images_per_s": round(at.samples / train_seconds, 1) if train_seconds else None,
        "eval_model": ("ema" if ema is not None else "final weights") + bn,
        "late_gain": gain,  # top-1 points gained after `late_from` samples
        "late_from": since,
        "flops": cost.flops,
        "params": cost.params,
        "activations": cost.activations,
        "notes": at.notes,
    }
    point.write_result(result)
    return result
