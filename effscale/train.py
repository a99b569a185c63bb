"""One training run: fit a variant briefly, evaluate it, checkpoint each epoch, resume.

Read top to bottom, in nanoGPT's order: setup, the run directory, model and weights,
optimizer and schedule, resume, then one loop with evaluation and an atomic checkpoint per
epoch. Everything a result depends on (variant, recipe, data, seed) is in config.json;
metrics.jsonl has one line per epoch; result.json is written last, so its presence means
the run finished (or diverged, which it says).
"""

import copy
import json
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

import effscale
from effscale import io
from effscale.cost import count_cost
from effscale.data.augment import eval_transform, policy_for, train_transform
from effscale.data.dataset import ImageDataset
from effscale.errors import EffscaleError
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
    """Evidence that travels with results: versions and hardware."""
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "effscale": effscale.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "hardware": hw or platform.machine(),
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


@torch.no_grad()
def evaluate(model, data: ImageDataset, size: int, recipe: Recipe, device) -> dict:
    """Top-1, top-5 (percent) and mean cross-entropy on the test split."""
    model.eval()
    n, loss, top1, top5 = 0, 0.0, 0, 0
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
        x = eval_transform(x.to(device), size, data.mean, data.std)
        y = y.to(device)
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, recipe):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
        n += len(y)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n}


def _autocast(device, recipe: Recipe):
    if device.type == "cuda" and recipe.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


# ---------------------------------------------------------------------------------------
# Schedule
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
    """EMA of every floating tensor, BN running statistics included (timm's ModelEmaV2)."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1.0 - decay)
        else:
            e.copy_(m)


# ---------------------------------------------------------------------------------------
# Weights from elsewhere (fine-tuning)
# ---------------------------------------------------------------------------------------


def load_weights(model, path: str | Path, new_head: bool) -> str:
    """Load a checkpoint (its EMA weights if it kept some) or a plain state-dict file.

    A class-count mismatch needs ``new_head``: the classifier is then left freshly
    initialised. Any other difference means the weights belong to another variant.
    """
    path = Path(path)
    if not path.is_file():
        raise EffscaleError(f"no weights file at {path}", "give a checkpoint.pt or a state dict")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EffscaleError(f"cannot read weights from {path}: {e}") from None
    state = (blob.get("ema") or blob["model"]) if "model" in blob else blob
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


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


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
    progress=None,
) -> dict:
    """Train one variant briefly and return its final metrics (also in out/result.json)."""
    recipe = recipe.validate()
    device = resolve_device(device)
    out = Path(out)
    identity = run_identity(variant, recipe, data, seed, init_from)
    ckpt_path, result_path = out / "checkpoint.pt", out / "result.json"

    # -- the run directory: new, resumable, or someone else's --------------------------
    if (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        if saved.get("identity") != identity:
            raise EffscaleError(
                f"{out} holds a different run (other variant, recipe, data or seed)",
                "choose another --out",
            )
        if result_path.exists():
            return json.loads(result_path.read_text())  # finished: never retrained
        if not resume and ckpt_path.exists():
            raise EffscaleError(
                f"{out} holds an interrupted run",
                "pass --resume to continue it, or choose another --out",
            )
    torch.manual_seed(seed)
    cost = count_cost(variant, data.num_classes)
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

    # -- model -------------------------------------------------------------------------
    base = replace(variant, d=1.0, w=1.0, r=1.0, resolution=variant.base_resolution)
    base_cost = count_cost(base, data.num_classes)
    dropout = paper_dropout(cost.flops / base_cost.flops) * recipe.regularization
    spec = resolve_spec(variant)
    model = build_model(
        variant,
        data.num_classes,
        dropout=dropout if spec.dropout > 0 else 0.0,
        drop_path=DROP_PATH * recipe.regularization if spec.drop_path else 0.0,
    )
    notes = list(data.notes)
    if init_from:
        notes.append(f"initialised from {init_from} ({load_weights(model, init_from, new_head)})")
    model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval() if recipe.ema > 0 else None
    step_model = torch.compile(model) if recipe.compile else model

    # -- optimizer, budget, resume -------------------------------------------------------
    optimizer = make_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(
        enabled=device.type == "cuda" and recipe.amp and not torch.cuda.is_bf16_supported()
    )
    batch_size, epoch, seen, metrics = recipe.batch_size, 0, 0, []
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        batch_size, epoch, seen = state["batch_size"], state["epoch"], state["samples"]
        metrics = state["metrics"]
        notes = state["notes"]
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    data = _to_device(data, device)
    size = variant.resolution
    policy = policy_for(data.resolution) if recipe.aug == "auto" else recipe.aug
    total = planned_samples(
        recipe.samples, steps_per_epoch(data, recipe.batch_size) * recipe.batch_size
    )
    ema_halflife = recipe.ema * total  # in samples, so a halved batch keeps it
    n_train = len(data.train_labels)
    task = (
        progress.add_task(variant.label, total=total, completed=seen, info="") if progress else None
    )
    train_seconds = sum(m["seconds"] for m in metrics)

    # -- the loop ------------------------------------------------------------------------
    status = "done"
    while seen < total:
        model.train()
        for p in model.parameters():  # frozen backbone for the first epochs of a fine-tune
            p.requires_grad_(epoch >= freeze_epochs or p is model.fc.weight or p is model.fc.bias)
        aug = torch.Generator(device).manual_seed(seed * 7_919 + epoch)
        t0, epoch_seen, loss_sum, loss_n, oom = time.perf_counter(), 0, 0.0, 0, False
        for x, y in train_batches(data, epoch, batch_size, seed, device):
            if seen >= total:
                break
            lr = get_lr(recipe, seen / total, seen / n_train) * batch_size / recipe.batch_size
            for g in optimizer.param_groups:
                g["lr"] = lr
            x = train_transform(x, size, data.mean, data.std, aug, policy)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            try:
                with _autocast(device, recipe):
                    loss = F.cross_entropy(step_model(x), y, label_smoothing=recipe.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            except torch.OutOfMemoryError:
                if batch_size == 1:
                    raise EffscaleError(
                        f"{variant.label} does not fit on {device} even at batch 1",
                        "use a smaller variant or another device",
                    ) from None
                optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                batch_size //= 2  # the lr follows (linear scaling), the budget does not change
                notes.append(
                    f"out of memory at epoch {epoch + 1}: batch size halved to {batch_size}"
                )
                if progress:
                    progress.console.print(notes[-1], style="yellow", markup=False)
                oom = True
                break
            if ema is not None:
                update_ema(ema, model, 0.5 ** (len(y) / max(ema_halflife, len(y))))
            seen += len(y)
            epoch_seen += len(y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                status = "diverged"
                break
            loss_sum, loss_n = loss_sum + loss_value, loss_n + 1
            if progress:
                rate = epoch_seen / (time.perf_counter() - t0)
                progress.update(
                    task,
                    completed=seen,
                    info=f"epoch {epoch + 1} · {rate:,.0f} img/s · loss {loss_sum / loss_n:.3f}",
                )
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        if oom:
            continue  # the epoch restarts at the smaller batch; samples seen still count
        if status == "diverged":
            metrics.append(
                {
                    "epoch": epoch + 1,
                    "samples": seen,
                    "status": "diverged",
                    "lr": lr,
                    "seconds": seconds,
                }
            )
            io.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
            break
        epoch += 1
        scores = evaluate(ema if ema is not None else model, data, size, recipe, device)
        metrics.append(
            {
                "epoch": epoch,
                "samples": seen,
                "train_loss": loss_sum / max(1, loss_n),
                "lr": lr,
                "seconds": seconds,
                "images_per_s": epoch_seen / seconds,
                **scores,
            }
        )
        io.write_text(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
        _save_checkpoint(
            ckpt_path, model, optimizer, ema, batch_size, epoch, seen, metrics, notes, variant, data
        )
    if progress:
        progress.remove_task(task)

    final = metrics[-1] if metrics else {}
    result = {
        "status": status,
        **{k: (final.get(k) if status == "done" else None) for k in ("top1", "top5", "loss")},
        "epochs": epoch,
        "samples": seen,
        "batch_size": batch_size,
        "train_seconds": round(train_seconds, 2),
        "images_per_s": round(seen / train_seconds, 1) if train_seconds else None,
        "eval_model": "ema" if ema is not None else "final weights",
        "flops": cost.flops,
        "params": cost.params,
        "activations": cost.activations,
        "notes": notes,
    }
    io.write_json(result_path, result)
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


def _save_checkpoint(
    path, model, optimizer, ema, batch_size, epoch, seen, metrics, notes, variant, data
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "batch_size": batch_size,
        "epoch": epoch,
        "samples": seen,
        "metrics": metrics,
        "notes": notes,
        "variant": variant.to_dict(),
        "classes": data.classes,
        "mean": data.mean,  # the normalisation the weights expect (CAM, inference)
        "std": data.std,
        # dropout and stochastic depth draw from the global generator: resume it too
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    with io.atomic_path(path) as tmp:
        torch.save(state, tmp)
