"""A run's checkpoint: saved after every epoch, resumed from, and read as weights to
initialise another run from (fine-tuning, transfer)."""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from effscale.errors import EffscaleError
from effscale.rundir import CHECKPOINT, PointDir, load_file, weights


def load_weights(model, path: str | Path, new_head: bool) -> str:
    """Load a checkpoint (its EMA weights if it kept some) or a plain state-dict file.

    A class-count mismatch needs ``new_head``: the classifier is then left freshly
    initialised. Any other difference means the weights belong to another variant.
    """
    path = Path(path)
    hint = f"give a {CHECKPOINT} or a state dict"
    if not path.is_file():
        raise EffscaleError(f"no weights file at {path}", hint)
    if path.stat().st_size == 0:
        raise EffscaleError(f"{path} is empty, not weights", hint)
    try:
        blob = load_file(path)
    except Exception as e:
        why = unloadable(e, path)
        raise EffscaleError(f"cannot read weights from {path}: {why}", hint) from None
    state = weights(blob)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, dict) else "dict of other things"
        raise EffscaleError(f"{path} holds a {what}, not a checkpoint or a state dict", hint)
    head = state.get("fc.weight")
    replaced = head is not None and head.shape[0] != model.num_classes
    if replaced:
        if not new_head:
            raise EffscaleError(
                f"{path} has {head.shape[0]} classes but the data has {model.num_classes}",
                "pass `new_head` to fine-tune with a fresh classifier",
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
    # Inside an epoch (a checkpoint written before its end): the steps done, the epoch's
    # running figures (Epoch's fields) and the augmentation generator's state, so a resumed
    # run draws the batches and crops the uninterrupted one would have drawn.
    epoch_steps: int = 0
    epoch_partial: dict = field(default_factory=dict)
    aug_state: torch.Tensor | None = None


def save_checkpoint(point: PointDir, model, optimizer, ema, at: Progress, variant, data, prep):
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
        "epoch_steps": at.epoch_steps,
        "epoch_partial": at.epoch_partial,
        "aug_state": at.aug_state,
        "variant": variant.to_dict(),
        "classes": data.classes,
        "mean": data.mean,  # the preprocessing the weights expect (CAM, inference)
        "std": data.std,
        "eval_crop": prep.eval_crop,
        # dropout and stochastic depth draw from the global generator: resume it too
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    point.save_checkpoint(state)


def load_checkpoint(point: PointDir, model, optimizer, ema, device) -> Progress:
    """Restore a run saved by save_checkpoint (PointDir.load_checkpoint: weights only)."""
    try:
        state = point.load_checkpoint(device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        at = Progress(state["batch_size"], state["epoch"], state["samples"], state["seconds"])
        at.metrics, at.notes = list(state["metrics"]), list(state["notes"])
        # a checkpoint written at an epoch's end (or before mid-epoch ones existed) has none
        at.epoch_steps = int(state.get("epoch_steps", 0))
        partial = state.get("epoch_partial") or {}
        at.epoch_partial = {  # only the running figures an Epoch holds, as numbers
            k: v for k, v in partial.items()
            if k in ("seen", "loss_sum", "loss_n", "lr", "seconds") and isinstance(v, int | float)
        }  # fmt: skip
        at.aug_state = state.get("aug_state")
        torch.set_rng_state(state["rng"].cpu())
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    except Exception as e:
        raise EffscaleError(
            f"cannot resume from {point.checkpoint}: {unloadable(e, point.checkpoint)}",
            "delete the checkpoint to train the run from the start",
        ) from None
    return at


def unloadable(e: Exception, path=None) -> str:
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
