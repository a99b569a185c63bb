"""A trained network: loaded from a run for inference, and exported.

A run is a train() run directory, a study point directory or its checkpoint.pt. Loading
builds the recorded variant and loads the weights it was evaluated with (the EMA's when it
kept one). Exporting writes the weights as a plain state dict, a TorchScript module or an
ONNX graph, with the preprocessing beside it (preprocess.json: the resolution, the centre
crop, the per-channel mean and std, the class names), so the network can be used without
effscale.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from effscale import io
from effscale.errors import EffscaleError
from effscale.rundir import CHECKPOINT, PointDir, StudyDir, load_file, weights
from effscale.scaling import Variant
from effscale.training.checkpoint import unloadable
from effscale.zoo import build_model

FORMATS = ("state_dict", "torchscript", "onnx")
PREPROCESS = "preprocess.json"
EVAL_CROP = 0.875  # the recipe's default, for a checkpoint whose run recorded none


@dataclass
class TrainedRun:
    """A trained network, in eval mode, and what using it needs."""

    model: nn.Module
    variant: Variant
    classes: list[str]
    stats: tuple[list, list] | None  # the training data's mean and std (0..1), when kept
    eval_crop: float = EVAL_CROP  # the central share of the image's side evaluation keeps


def load_trained(path: str | Path, variant: Variant | None = None) -> nn.Module:
    """The trained network of a run, ready for inference (eval mode, on the CPU); its inputs
    as preprocess.json says (export) or load_run's record has them."""
    return load_run(path, variant).model


def checkpoint_path(path: Path) -> Path:
    """The checkpoint file a run path names, or an EffscaleError saying what to give."""
    if path.is_dir():
        if StudyDir(path).plan.exists():
            raise EffscaleError(
                f"{path} is a study's run directory, which holds many trained points",
                f"give the points you want: {path}/points/<key> (`effscale status {path}` "
                "lists them)",
            )
        path = PointDir(path).checkpoint
    if not path.is_file():
        raise EffscaleError(
            f"no checkpoint at {path}",
            f"give a train run directory, a study point directory or a {CHECKPOINT}",
        )
    return path


def load_run(path: str | Path, variant: Variant | None = None) -> TrainedRun:
    """A trained run from a train() run directory, a study point directory or its checkpoint.

    The checkpoint's EMA weights are used when it kept some (they are what was evaluated).
    ``variant``, when given, must be the checkpoint's variant; a plain state-dict file needs
    it (and has numbered classes).

    Raises:
        EffscaleError: no checkpoint there, another variant than the one named, or weights
            that do not fit the variant.
    """
    ckpt = checkpoint_path(Path(path))
    try:
        blob = load_file(ckpt)
    except Exception as e:  # a file torch cannot read, or one weights_only refuses: one line
        raise EffscaleError(f"cannot read {ckpt}: {unloadable(e, ckpt)}") from None
    if not isinstance(blob, dict):
        raise EffscaleError(f"{ckpt} holds no state dict")
    state = weights(blob)
    if not isinstance(state.get("fc.weight") if isinstance(state, dict) else None, torch.Tensor):
        raise EffscaleError(
            f"{ckpt} has no classifier weights (fc.weight)",
            "give an effscale checkpoint or a state dict of an effscale model",
        )
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise EffscaleError(f"{ckpt} is damaged: its weights are not all tensors")
    variant = _recorded_variant(ckpt, blob.get("variant"), variant)
    n_classes = state["fc.weight"].shape[0]
    classes = blob.get("classes") or [str(i) for i in range(n_classes)]
    if not (isinstance(classes, list | tuple) and len(classes) == n_classes
            and all(isinstance(c, str) for c in classes)):  # fmt: skip
        raise EffscaleError(f"{ckpt} is damaged: its class names do not match its classifier")
    classes = list(classes)
    model = build_model(variant, n_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # size mismatch, missing or unexpected tensors: name the first
        first = (str(e).split("\n\t")[1:] or [str(e)])[0].strip()
        first = first if len(first) <= 120 else first[:117] + "..."
        raise EffscaleError(
            f"the weights in {ckpt} do not fit {variant.label} ({first})",
            "name the variant they were trained as",
        ) from None
    stats = (blob.get("mean"), blob.get("std"))
    stats = stats if all(_three_numbers(x) for x in stats) else None  # damaged: not recorded
    return TrainedRun(model.eval(), variant, classes, stats, _eval_crop(ckpt))


def _three_numbers(x) -> bool:
    return (
        isinstance(x, list | tuple)
        and len(x) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in x)
    )


def _recorded_variant(ckpt: Path, saved: dict | None, named: Variant | None) -> Variant:
    """The checkpoint's variant (``named`` must agree), or ``named`` for a bare state dict."""
    if saved is None:
        if named is None:
            raise EffscaleError(
                f"{ckpt} is a plain state dict with no variant recorded",
                "name its variant (`model` and the scaling flags)",
            )
        return named
    try:
        saved = Variant.from_dict(saved)
        numbers = (saved.d, saved.w, saved.r, saved.base_depth, saved.base_width,
                   saved.resolution, saved.base_resolution)  # fmt: skip
        if not isinstance(saved.backbone, str) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in numbers
        ):
            raise TypeError("wrong types")
    except (AttributeError, KeyError, TypeError, ValueError, EffscaleError):
        raise EffscaleError(f"{ckpt} is damaged: the variant it records cannot be read") from None
    if named is not None and named != saved:
        diff = [
            f"{k} {a} there, {b} named"
            for (k, a), b in zip(saved.to_dict().items(), named.to_dict().values())
            if a != b
        ]
        raise EffscaleError(
            f"{ckpt} holds {saved.label}, not {named.label} ({'; '.join(diff)})",
            "name the variant it was trained as, or leave the variant out",
        )
    return saved


def _eval_crop(ckpt: Path) -> float:
    """The eval crop of the run's recipe (its config.json), else the recipe's default."""
    config, _ = PointDir(ckpt.parent).config()  # absent or damaged: the default
    recipe = ((config or {}).get("identity") or {}).get("recipe") or {}
    crop = recipe.get("eval_crop")
    return float(crop) if isinstance(crop, int | float) and 0 < crop <= 1 else EVAL_CROP


def export(path: str | Path, out: str | Path, fmt: str = "torchscript") -> list[Path]:
    """Write a run's network to the folder ``out`` as ``fmt`` (state_dict: model.pt, a
    state dict for effscale.build_model of the variant; torchscript: model.torchscript.pt,
    runnable with torch.jit.load alone; onnx: model.onnx, through the optional onnx
    package), with preprocess.json beside it. Returns the files written."""
    if fmt not in FORMATS:
        raise EffscaleError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    run = load_run(path)
    if fmt == "onnx":
        _needs_onnx()
    out = io.writable_dir(out, what="`out`")
    example = torch.zeros(1, 3, run.variant.resolution, run.variant.resolution)
    if fmt == "state_dict":
        target = out / "model.pt"
        with io.atomic_path(target) as tmp:
            torch.save(run.model.state_dict(), tmp)
    elif fmt == "torchscript":
        target = out / "model.torchscript.pt"
        with torch.no_grad():
            traced = torch.jit.trace(run.model, example)
        with io.atomic_path(target) as tmp:
            traced.save(str(tmp))
    else:
        target = out / "model.onnx"
        with io.atomic_path(target) as tmp:
            names = {"input_names": ["image"], "output_names": ["logits"]}
            batch = {"dynamic_axes": {"image": {0: "batch"}}}
            torch.onnx.export(run.model, (example,), str(tmp), **names, **batch)
    io.write_json(out / PREPROCESS, preprocess(run, fmt))
    return [target, out / PREPROCESS]


def preprocess(run: TrainedRun, fmt: str) -> dict:
    """What an exported network expects, as data: effscale's evaluation transform."""
    mean, std = run.stats or (None, None)  # an older checkpoint: its training data's
    return {
        "format": fmt,
        "variant": run.variant.to_dict(),
        "input": "float32 [N, 3, H, W], RGB",
        "resolution": run.variant.resolution,
        "steps": [
            f"keep the central {run.eval_crop:g} of the image's side (a square image)",
            f"resize to {run.variant.resolution} x {run.variant.resolution} px, bilinear, "
            "antialiased when shrinking",
            "scale pixels to 0..1, subtract mean and divide by std per channel",
        ],
        "eval_crop": run.eval_crop,
        "mean": list(mean) if mean is not None else None,  # None: not recorded, use the
        "std": list(std) if std is not None else None,  # training data's (effscale data)
        "classes": run.classes,
    }


def _needs_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise EffscaleError(
            "`format`=onnx needs the onnx package, which is not installed",
            'pip install "effscale[onnx]"',
        ) from None
