"""One training run: fit a variant briefly, evaluate it, checkpoint each epoch, resume.

Read top to bottom, in nanoGPT's order: setup, batches, evaluation, optimizer and schedule,
checkpoints, then ``train``: the run directory, the model, and one loop with evaluation and
an atomic checkpoint per epoch. Everything a result depends on (variant, recipe, data, seed)
is in config.json; metrics.jsonl has one line per epoch; result.json is written last, so its
presence means the run finished (or diverged, which it says).

Progress goes out through one callback, ``on_event(kind, payload)``: "progress" (first with
the run's description and total samples, then samples completed and an info line), "message"
(a line of text) and "epoch" (the epoch's metrics, once its checkpoint is written). Nothing
here draws on a screen.
"""

import copy
import json
import math
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

import effscale
from effscale import io
from effscale.compiling import CompiledOrEager
from effscale.compiling import decide as decide_compile
from effscale.compiling import mode_for as compile_mode
from effscale.cost import count_cost
from effscale.data.augment import eval_transform, policy_for, train_transform
from effscale.data.dataset import ImageDataset
from effscale.errors import EffscaleError, Interrupted
from effscale.hardware import device_name
from effscale.recipe import DROP_PATH, Recipe, paper_dropout
from effscale.scaling import Variant
from effscale.zoo import build_model, resolve_spec

# ---------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EffscaleError(
            "--device cuda was asked for but no CUDA device is visible", "use --device cpu or auto"
        )
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise EffscaleError(f"unknown device {name!r}", "use cpu, cuda, cuda:N or auto")
    return torch.device(name)


def environment(device: torch.device) -> dict:
    """Evidence that travels with results: versions and hardware (the GPU's name, or the
    CPU model's, with the machine's architecture beside it)."""
    return {
        "effscale": effscale.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "hardware": device_name(device),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }


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


# ---------------------------------------------------------------------------------------
# Batches on the device
# ---------------------------------------------------------------------------------------


def train_batches(data: ImageDataset, epoch: int, batch_size: int, seed: int, device):
    """This epoch's shuffled uint8 batches (full batches only), the same order on resume."""
    order = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if data.streaming:
        from effscale.data import stream_batches

        for x, y in stream_batches(
            data.train_images, batch_size, shuffle=True, seed=seed * 100_003 + epoch, drop_last=True
        ):
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return
    perm = torch.randperm(len(data.train_labels), generator=order).to(device)
    for i in range(steps_per_epoch(data, batch_size)):  # one short batch if the set is tiny
        idx = perm[i * batch_size : (i + 1) * batch_size]
        yield data.train_images[idx], data.train_labels[idx]


def steps_per_epoch(data: ImageDataset, batch_size: int) -> int:
    return max(1, len(data.train_labels) // batch_size)


def planned_samples(budget: int, per_epoch: int) -> int:
    """A budget longer than an epoch is rounded to whole epochs (no stub epoch at the end,
    so ``--epochs 4`` is four passes); a shorter one is trained as a partial epoch."""
    return budget if budget < per_epoch else max(1, round(budget / per_epoch)) * per_epoch


@dataclass(frozen=True)
class Preprocess:
    """How images reach the model: the train policy and the evaluation centre crop."""

    size: int  # the variant's resolution
    policy: str  # crop, rrc, flip or none (effscale.data.augment)
    min_area: float  # smallest random-resized crop
    eval_crop: float  # central fraction of the image evaluated (1: all of it)

    @classmethod
    def of(cls, variant: Variant, data: ImageDataset, recipe: Recipe) -> "Preprocess":
        policy = policy_for(data.resolution) if recipe.aug == "auto" else recipe.aug
        crop = recipe.eval_crop if policy == "rrc" else 1.0  # small images: keep it all
        return cls(variant.resolution, policy, recipe.crop_area, crop)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


def _autocast(device, recipe: Recipe):
    if device.type == "cuda" and recipe.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _model_input(x, data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    x = eval_transform(x.to(device), prep.size, data.mean, data.std, prep.eval_crop)
    return x.contiguous(memory_format=torch.channels_last) if recipe.channels_last else x


def test_batches(data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    """The test split as model inputs and labels, batch by batch (deterministic)."""
    if data.streaming:
        from effscale.data import stream_batches

        batches = stream_batches(data.test_images, recipe.eval_batch_size, shuffle=False)
    else:
        batches = (
            (
                data.test_images[i : i + recipe.eval_batch_size],
                data.test_labels[i : i + recipe.eval_batch_size],
            )
            for i in range(0, len(data.test_labels), recipe.eval_batch_size)
        )
    for x, y in batches:
        yield _model_input(x, data, prep, recipe, device), y.to(device)


def prepared_test_set(data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    """The test inputs, resized once for the whole run when they fit in EVAL_CACHE_BYTES
    (resizing 224 px images is a third of an evaluation's time); else None."""
    nbytes = len(data.test_labels) * 3 * prep.size**2 * 4
    if data.streaming or nbytes > EVAL_CACHE_BYTES:
        return None
    return list(test_batches(data, prep, recipe, device))


EVAL_CACHE_BYTES = 1 << 30


@torch.no_grad()
def evaluate(model, data: ImageDataset, prep: Preprocess, recipe: Recipe, device, inputs=None):
    """Top-1, top-5 (percent) and mean cross-entropy on the test split (``inputs``: the
    batches of prepared_test_set, to skip the preprocessing)."""
    model.eval()
    n, loss, top1, top5 = 0, 0.0, 0, 0
    for x, y in inputs if inputs is not None else test_batches(data, prep, recipe, device):
        with _autocast(device, recipe):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
        n += len(y)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n}


def bn_batches(data: ImageDataset, prep: Preprocess, recipe: Recipe, seed: int, device):
    """A fixed, seeded sample of ``recipe.bn_images`` training images, as model inputs with
    evaluation preprocessing, in equal batches (each weighs the same in recompute_bn)."""
    n = len(data.train_labels)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    idx = idx[: min(recipe.bn_images, n)]  # shuffled: a batch of one class has its own stats
    if data.streaming:
        images = torch.stack([data.train_images[i][0] for i in idx.tolist()])
    else:
        images = data.train_images[idx.to(data.train_images.device)]
    b = recipe.batch_size
    return [
        _model_input(images[i * b : (i + 1) * b], data, prep, recipe, device)
        for i in range(max(1, len(images) // b) if len(images) else 0)
    ]


@torch.no_grad()
def recompute_bn(model, batches: list, recipe: Recipe, device) -> None:
    """Set every BN layer's running statistics to their average over ``batches`` (training
    images with evaluation preprocessing, bn_batches), the rest of the model in eval mode:
    pycls's precise BN.

    Why: an EMA of the weights averages the BN statistics too, and early in a run those
    averages do not fit the averaged weights (Imagenette, B0: chance-level top-1 for three
    epochs, 51 % with recomputed statistics); and the statistics gathered on train crops do
    not fit test images. Cost: one forward pass over the batches per evaluation.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    momenta = [bn.momentum for bn in norms]
    model.eval()  # dropout and stochastic depth off: statistics of the network evaluated
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches below
        bn.train()
    for x in batches:
        with _autocast(device, recipe):
            model(x)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()


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
# Optimizer, schedule, EMA
# ---------------------------------------------------------------------------------------


def get_lr(recipe: Recipe, done: float, epoch: float) -> float:
    """Learning rate at a fraction ``done`` of all samples (robust to batch-size changes).

    1) linear warm-up from 0 over the first ``warmup`` fraction; 2) then cosine or linear
    (one-cycle) decay to 0, or the paper's 0.97 every 2.4 epochs.
    """
    if done < recipe.warmup:
        return recipe.lr * done / recipe.warmup
    t = (done - recipe.warmup) / max(1e-12, 1 - recipe.warmup)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if recipe.schedule == "onecycle":
        return recipe.lr * max(0.0, 1 - t)
    return recipe.lr * 0.97 ** (epoch / 2.4)


def make_optimizer(model, recipe: Recipe) -> torch.optim.Optimizer:
    """Weight decay on conv / linear weights only: BN scales and biases are not shrunk."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "rmsprop":  # the paper's: decay 0.9, momentum 0.9, eps 1e-3
        return torch.optim.RMSprop(
            groups, lr=recipe.lr, alpha=0.9, momentum=recipe.momentum, eps=1e-3
        )
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


@torch.no_grad()
def update_ema(ema, model, decay: float) -> None:
    """EMA of every floating tensor, BN running statistics included (timm's ModelEmaV2);
    the statistics are recomputed before the EMA is evaluated (recompute_bn)."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1.0 - decay)
        else:
            e.copy_(m)


# ---------------------------------------------------------------------------------------
# Weights and checkpoints
# ---------------------------------------------------------------------------------------


def load_weights(model, path: str | Path, new_head: bool) -> str:
    """Load a checkpoint (its EMA weights if it kept some) or a plain state-dict file.

    A class-count mismatch needs ``new_head``: the classifier is then left freshly
    initialised. Any other difference means the weights belong to another variant.
    """
    path = Path(path)
    hint = "give a checkpoint.pt or a state dict"
    if not path.is_file():
        raise EffscaleError(f"no weights file at {path}", hint)
    if path.stat().st_size == 0:
        raise EffscaleError(f"{path} is empty, not weights", hint)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = _unloadable(e, path)
        raise EffscaleError(f"cannot read weights from {path}: {why}", hint) from None
    checkpoint = isinstance(blob, dict) and "model" in blob  # else a plain state dict
    state = (blob.get("ema") or blob["model"]) if checkpoint else blob
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, dict) else "dict of other things"
        raise EffscaleError(f"{path} holds a {what}, not a checkpoint or a state dict", hint)
    head = state.get("fc.weight")
    replaced = head is not None and head.shape[0] != model.num_classes
    if replaced:
        if not new_head:
            raise EffscaleError(
                f"{path} has {head.shape[0]} classes but the data has {model.num_classes}",
                "pass --new-head to fine-tune with a fresh classifier",
            )
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatch
        first = str(e).split("size mismatch for ")[-1].split(":")[0]
        raise EffscaleError(
            f"{path} does not match this variant (shapes differ at {first})",
            "fine-tune the variant the weights came from",
        ) from None
    bad = [k for k in missing if not (replaced and k.startswith("fc."))] + list(unexpected)
    if bad:
        raise EffscaleError(
            f"{path} does not match this variant ({len(bad)} tensors differ, e.g. {bad[0]})",
            "fine-tune the variant the weights came from",
        )
    return "new head" if replaced else "all weights"


@dataclass
class Progress:
    """Where a run stands: what a checkpoint holds besides the weights."""

    batch_size: int
    epoch: int = 0
    samples: int = 0
    seconds: float = 0.0  # training time so far, epochs restarted after an OOM included
    metrics: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def save_checkpoint(path, model, optimizer, ema, at: Progress, variant, data, prep) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "batch_size": at.batch_size,
        "epoch": at.epoch,
        "samples": at.samples,
        "seconds": at.seconds,
        "metrics": at.metrics,
        "notes": at.notes,
        "variant": variant.to_dict(),
        "classes": data.classes,
        "mean": data.mean,  # the preprocessing the weights expect (CAM, inference)
        "std": data.std,
        "eval_crop": prep.eval_crop,
        # dropout and stochastic depth draw from the global generator: resume it too
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, model, optimizer, ema, device) -> Progress:
    """Restore a run saved by save_checkpoint. Only tensors and plain data are read
    (``weights_only``): a checkpoint replaced by a crafted pickle cannot run code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        at = Progress(state["batch_size"], state["epoch"], state["samples"], state["seconds"])
        at.metrics, at.notes = list(state["metrics"]), list(state["notes"])
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    except Exception as e:
        raise EffscaleError(
            f"cannot resume from {path}: {_unloadable(e, path)}",
            "delete the checkpoint to train the run from the start",
        ) from None
    return at


def _unloadable(e: Exception, path=None) -> str:
    """Why torch.load (weights only) of ``path``, or reading the checkpoint it holds, failed,
    in a few words."""
    text = str(e).strip()
    try:
        head = Path(path).open("rb").read(4) if path is not None else b"\x80"
    except OSError:
        head = b""
    if "Weights only load failed" in text and (head[:1] == b"\x80" or head[:2] == b"PK"):
        return (
            "it is not a file of tensors and plain data (anything else is refused: "
            "unpickling it could run code)"
        )
    if isinstance(e, EOFError):
        return "the file ends early (truncated?)"
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        return f"it lacks {text}, so it is not a checkpoint effscale wrote"
    first = text.splitlines()[0] if text else ""
    first = f"{type(e).__name__}: {first}" if first else type(e).__name__
    return f"it is not a file torch.save wrote ({first[:150]})"


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def open_run_dir(out: Path, identity: dict, resume: bool, emit=None) -> dict | None:
    """The result of a finished run in ``out``; None when the run is to be trained (new, or
    interrupted and resumed). A directory of another run, or one whose config.json is
    damaged (so whose run it holds is unknown), is refused. A damaged result.json means
    finishing the run again from its checkpoint (``emit`` hears it)."""
    from effscale.runfiles import read_config, read_result

    saved, problem = read_config(out / "config.json")
    if problem:
        raise EffscaleError(
            f"{out}/config.json {problem}, so the run it holds is unknown",
            "delete that directory to train the run again, or choose another --out",
        )
    if saved is None:
        return None
    if saved.get("identity") != identity:
        raise EffscaleError(
            f"{out} holds a different run (other variant, recipe, data or seed)",
            "choose another --out",
        )
    result, problem = read_result(out / "result.json")
    if result is not None:
        return result  # finished: never retrained
    if problem and emit:
        emit("message", f"{out}/result.json {problem}: finishing the run again")
    if not resume and (out / "checkpoint.pt").exists():
        raise EffscaleError(
            f"{out} holds an interrupted run",
            "pass --resume to continue it, or choose another --out",
        )
    return None


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
    from effscale.recipe import PROTOCOL

    if recipe.protocol != PROTOCOL:
        raise EffscaleError(
            f"this run was planned with training protocol {recipe.protocol}; this effscale "
            f"trains protocol {PROTOCOL} (see effscale.recipe.PROTOCOL)",
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
) -> dict:
    """Train one variant briefly and return its final metrics (also in out/result.json).

    ``compile``: torch.compile the training step (True), not (False), or decide from what was
    measured on this device (None: effscale.compiling.decide).
    """
    recipe = recipe.validate()
    device = resolve_device(device)
    out = io.writable_dir(out)
    io.remove_orphans(out)  # temporary files of a killed run
    emit = on_event or (lambda kind, payload: None)
    identity = run_identity(variant, recipe, data, seed, init_from)
    finished = open_run_dir(out, identity, resume, emit)
    if finished is not None:
        return finished
    _check_protocol(recipe)
    torch.manual_seed(seed)
    model, cost = build_for_training(variant, data, recipe)
    io.write_json(
        out / "config.json",
        {
            "identity": identity,
            "cost": cost.to_dict(),
            "num_classes": data.num_classes,
            "environment": environment(device),
            "spec": resolve_spec(variant).to_dict(),
        },
    )
    notes = list(data.notes)
    if variant.resolution > data.resolution:
        notes.append(
            f"upsampled: images stored at {data.resolution} px, trained at {variant.resolution} px"
        )
    if init_from:
        notes.append(f"initialised from {init_from} ({load_weights(model, init_from, new_head)})")
    model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval() if recipe.ema > 0 else None
    optimizer = make_optimizer(model, recipe)
    at = Progress(recipe.batch_size, notes=notes)
    if resume and (out / "checkpoint.pt").exists():
        at = load_checkpoint(out / "checkpoint.pt", model, optimizer, ema, device)
    data = _to_device(data, device)
    compiled, why = decide_compile(device, 6 * cost.flops * recipe.samples, compile, emit)
    if not any(n.startswith("torch.compile") for n in at.notes):
        at.notes.append(f"torch.compile {'on' if compiled else 'off'}: {why}")
    step_model = CompiledOrEager(model, emit, compile_mode(device)) if compiled else model
    saved = [at.epoch]  # epochs in checkpoint.pt: fit says "epoch" once one is written

    def on_epoch(kind, payload):
        if kind == "epoch":
            saved[0] = payload["epoch"]
        emit(kind, payload)

    try:
        status = fit(
            model, ema, optimizer, at, variant, data, recipe, out, seed, device,
            freeze_epochs, step_model, on_epoch,
        )  # fmt: skip
    except KeyboardInterrupt:  # files are replaced whole: the last checkpoint is intact
        raise Interrupted(
            f"{variant.label} stopped after {at.samples:,} of {recipe.samples:,} samples; "
            + (
                f"{out}/checkpoint.pt holds its first {saved[0]} epoch(s)"
                if saved[0]
                else "no epoch had finished, so there is no checkpoint yet"
            ),
            "rerun with --resume to continue" if saved[0] else "rerun to start again",
        ) from None
    return _finish(out, status, at, cost, ema, recipe)


def fit(
    model, ema, optimizer, at: Progress, variant, data, recipe, out, seed, device,
    freeze_epochs, step_model, emit,
) -> str:  # fmt: skip
    """The loop: epochs of shuffled batches, one evaluation and checkpoint per epoch.
    Returns "done" or "diverged"; ``at`` is advanced in place."""
    prep = Preprocess.of(variant, data, recipe)
    scaler = torch.amp.GradScaler(
        enabled=device.type == "cuda" and recipe.amp and not torch.cuda.is_bf16_supported()
    )
    total = planned_samples(
        recipe.samples, steps_per_epoch(data, recipe.batch_size) * recipe.batch_size
    )
    ema_halflife = recipe.ema * total  # in samples, so a halved batch keeps it
    bn_set = bn_batches(data, prep, recipe, seed, device)
    test_set = prepared_test_set(data, prep, recipe, device)
    emit(
        "progress",
        {"description": variant.label, "total": total, "completed": at.samples, "info": ""},
    )
    while at.samples < total:
        model.train()
        head = {id(model.fc.weight), id(model.fc.bias)}
        for p in model.parameters():  # frozen backbone for the first epochs of a fine-tune
            p.requires_grad_(at.epoch >= freeze_epochs or id(p) in head)
        aug = torch.Generator(device).manual_seed(seed * 7_919 + at.epoch)
        t0, epoch_seen, loss_sum, loss_n = time.perf_counter(), 0, 0.0, 0
        status = "done"
        for x, y in train_batches(data, at.epoch, at.batch_size, seed, device):
            if at.samples >= total:
                break
            done = at.samples / total
            lr = get_lr(recipe, done, at.samples / len(data.train_labels))
            for g in optimizer.param_groups:
                g["lr"] = lr * at.batch_size / recipe.batch_size
            x = train_transform(x, prep.size, data.mean, data.std, aug, prep.policy, prep.min_area)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss = _step(step_model, optimizer, scaler, x, y, recipe, device)
            if loss is None:  # CUDA out of memory: halve the batch, restart the epoch
                _halve_batch(at, variant, device, emit)
                status = "oom"
                break
            if ema is not None:
                update_ema(ema, model, 0.5 ** (len(y) / max(ema_halflife, len(y))))
            at.samples += len(y)
            epoch_seen += len(y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                status = "diverged"
                break
            loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
            rate = epoch_seen / (time.perf_counter() - t0)
            info = f"epoch {at.epoch + 1} · {rate:,.0f} img/s · loss {loss_sum / loss_n:.3f}"
            emit("progress", {"completed": at.samples, "info": info})
        seconds = time.perf_counter() - t0
        at.seconds += seconds
        if status == "oom":
            continue  # the epoch restarts at the smaller batch; samples seen still count
        if status == "diverged":
            at.metrics.append(
                {"epoch": at.epoch + 1, "samples": at.samples, "status": "diverged",
                 "lr": lr, "seconds": seconds}
            )  # fmt: skip
            io.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in at.metrics))
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
                "train_loss": loss_sum / max(1, loss_n),
                "lr": lr,
                "seconds": seconds,
                "eval_seconds": round(time.perf_counter() - t_eval, 3),
                "images_per_s": epoch_seen / seconds,
                **scores,
            }
        )
        io.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in at.metrics))
        save_checkpoint(out / "checkpoint.pt", model, optimizer, ema, at, variant, data, prep)
        emit("epoch", at.metrics[-1])
    return "done"


def _step(step_model, optimizer, scaler, x, y, recipe, device):
    """One SGD step; the loss, or None when CUDA ran out of memory."""
    try:
        with _autocast(device, recipe):
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


def _finish(out: Path, status: str, at: Progress, cost, ema, recipe: Recipe) -> dict:
    """result.json: the last evaluation, what was evaluated, whether it was still improving."""
    final = at.metrics[-1] if at.metrics and status == "done" else {}
    train_seconds = at.seconds
    gain, since = late_gain(at.metrics) if status == "done" else (None, None)
    bn = f", BN statistics recomputed on {recipe.bn_images} training images" * bool(
        recipe.bn_images
    )
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
    io.write_json(out / "result.json", result)
    return result


def _to_device(data: ImageDataset, device) -> ImageDataset:
    """In-memory sets move to the training device once, as uint8."""
    if data.streaming or device.type == "cpu":
        return data
    return replace(
        data,
        **{
            k: getattr(data, k).to(device)
            for k in ("train_images", "train_labels", "test_images", "test_labels")
        },
    )
