"""Class activation maps of trained variants side by side (paper Figure 7).

Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016: for a net
ending in global average pooling and a linear classifier, the logit of class c is
sum_k w_{c,k} * mean_xy f_k(x, y), so M_c(x, y) = sum_k w_{c,k} f_k(x, y) says how much each
place in the last feature map counts towards c. Tan & Le (2019, Figure 7) draw it for B0
scaled by depth, width, resolution and compound: the compound model attends to more
relevant regions with more object detail.

Here: load trained runs (a train run directory, a study point directory, or a checkpoint.pt),
take images from a folder or a dataset's test split, map the predicted class of each image
and draw a grid: the image, then one column per run with its map over the image.
"""

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from effscale import io  # noqa: E402
from effscale.data import load_dataset  # noqa: E402
from effscale.data.augment import eval_transform  # noqa: E402
from effscale.data.decode import decode_all  # noqa: E402
from effscale.data.folder import IMAGE_EXTENSIONS  # noqa: E402
from effscale.data.pixels import channel_stats  # noqa: E402
from effscale.errors import EffscaleError  # noqa: E402
from effscale.rundir import CHECKPOINT, PointDir, StudyDir, load_file, weights  # noqa: E402
from effscale.scaling import Variant  # noqa: E402
from effscale.zoo import build_model  # noqa: E402

FOLDER_PX = 224  # folder images are centre-cropped and stored at this size


# ---------------------------------------------------------------------------------------
# The maps
# ---------------------------------------------------------------------------------------


def check_cam_head(model: nn.Module, name: str = "this model") -> None:
    """CAM needs forward_features, then global average pooling, then one linear layer."""
    pool, fc = getattr(model, "pool", None), getattr(model, "fc", None)
    if not (
        hasattr(model, "forward_features")
        and isinstance(pool, nn.AdaptiveAvgPool2d)
        and pool.output_size in (1, (1, 1))
        and isinstance(fc, nn.Linear)
    ):
        raise EffscaleError(
            f"{name} has no global-average-pooling + linear head, so CAM does not apply",
            "class activation maps need features -> global average pool -> one Linear layer",
        )


@torch.no_grad()
def class_activation_maps(
    model: nn.Module, images: torch.Tensor, mean, std, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps of the predicted class for uint8 images [N, 3, H, W], resized to ``size`` for the net.

    Returns:
        cams: float [N, H, W], each scaled to 0..1, at the images' own size (so it overlays
            them), upsampled bilinearly from the last feature map.
        labels: int64 [N], the predicted class of each image.
    """
    check_cam_head(model)
    model.eval()
    device = model.fc.weight.device
    x = eval_transform(images.to(device), size, mean, std)
    features = model.forward_features(x)  # [N, K, h, w]
    logits = model.fc(torch.flatten(model.pool(features), 1))
    labels = logits.argmax(1)
    weights = model.fc.weight[labels]  # [N, K]: each image's predicted-class row
    cams = torch.einsum("nk,nkhw->nhw", weights, features.float())
    cams = F.interpolate(cams[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]
    low = cams.amin((1, 2), keepdim=True)
    high = cams.amax((1, 2), keepdim=True)
    cams = (cams - low) / (high - low).clamp_min(1e-12)
    return cams.cpu(), labels.cpu()


# ---------------------------------------------------------------------------------------
# Trained runs
# ---------------------------------------------------------------------------------------


def load_trained(
    path: str | Path, variant: Variant | None = None
) -> tuple[nn.Module, Variant, list[str]]:
    """A trained model from a train() run directory, a study point directory or its checkpoint.

    The checkpoint's EMA weights are used when it kept some (they are what was evaluated).
    ``variant``, when given, must be the checkpoint's variant; a plain state-dict file needs
    it (and has numbered classes).

    Raises:
        EffscaleError: no checkpoint there, another variant than the one named, or weights
            that do not fit the variant.
    """
    return _load(path, variant)[:3]


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


def _load(path: str | Path, variant: Variant | None = None):
    """load_trained, plus the checkpoint's normalisation statistics when it kept them."""
    ckpt = checkpoint_path(Path(path))
    try:
        blob = load_file(ckpt)
    except Exception as e:
        raise EffscaleError(f"cannot read {ckpt}: {e}") from None
    if not isinstance(blob, dict):
        raise EffscaleError(f"{ckpt} holds no state dict")
    state = weights(blob)
    saved = blob.get("variant")
    if saved is not None:
        saved = Variant.from_dict(saved)
        if variant is not None and variant != saved:
            diff = [
                f"{k} {a} there, {b} named"
                for (k, a), b in zip(saved.to_dict().items(), variant.to_dict().values())
                if a != b
            ]
            raise EffscaleError(
                f"{ckpt} holds {saved.label}, not {variant.label} ({'; '.join(diff)})",
                "name the variant it was trained as, or leave the variant out",
            )
        variant = saved
    elif variant is None:
        raise EffscaleError(
            f"{ckpt} is a plain state dict with no variant recorded",
            "name its variant (--model and the scaling flags)",
        )
    if "fc.weight" not in state:
        raise EffscaleError(
            f"{ckpt} has no classifier weights (fc.weight)",
            "give an effscale checkpoint or a state dict of an effscale model",
        )
    n_classes = state["fc.weight"].shape[0]
    classes = list(blob.get("classes") or [str(i) for i in range(n_classes)])
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
    stats = (blob["mean"], blob["std"]) if "mean" in blob and "std" in blob else None
    return model.eval(), variant, classes, stats


def training_data(path: str | Path) -> str | None:
    """The dataset spec a run was trained on, from its config.json (None if unknown)."""
    path = Path(path)
    saved, _ = PointDir(path if path.is_dir() else path.parent).config()  # absent or damaged
    data = (saved or {})["identity"].get("data") if saved else None
    return data.get("dataset") if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


@dataclass
class Images:
    """Images to map, with what is known about them."""

    pixels: torch.Tensor  # uint8 [N, 3, S, S]
    names: list[str]  # the first column's titles: true class or file name
    labels: torch.Tensor | None = None  # true classes (dataset images)
    classes: list[str] | None = None  # the dataset's class names
    data: str | None = None  # the dataset spec they came from
    mean: tuple | None = None  # that dataset's statistics
    std: tuple | None = None


def folder_images(path: str | Path, count: int = 6, size: int = FOLDER_PX) -> Images:
    """The first ``count`` image files of a folder (by name), centre-cropped to ``size`` px."""
    path = Path(path)
    if not path.is_dir():
        raise EffscaleError(f"{path} is not a directory", "give a folder of jpg or png images")
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )[:count]
    if not files:
        raise EffscaleError(
            f"{path} has no image files",
            f"images are files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}",
        )
    pixels, _ = decode_all([str(f) for f in files], [str(f) for f in files], size, fail=True)
    return Images(pixels, [f.name for f in files])


def dataset_images(spec: str, count: int = 6) -> Images:
    """Test images of a dataset: the first of each class in class order, then the second ..."""
    data = load_dataset(spec)
    labels = data.test_labels
    by_class = [torch.nonzero(labels == c).flatten().tolist() for c in range(data.num_classes)]
    picked, rank = [], 0
    while len(picked) < count and any(rank < len(ix) for ix in by_class):
        picked += [ix[rank] for ix in by_class if rank < len(ix)]
        rank += 1
    picked = picked[:count]
    if data.streaming:
        pixels = torch.stack([data.test_images[i][0] for i in picked])
    else:
        pixels = data.test_images[picked]
    true = labels[picked]
    names = [data.classes[c] for c in true.tolist()]
    return Images(pixels, names, true, data.classes, spec, data.mean, data.std)


def _stats(path, saved, images: Images, notes: list[str]):
    """The normalisation a run was trained with: saved, else its training set's, else a guess."""
    if saved is not None:
        return saved
    spec = training_data(path)
    if spec is not None and spec == images.data:
        return images.mean, images.std
    if spec is not None:
        try:
            data = load_dataset(spec, download=False)
            return data.mean, data.std
        except EffscaleError:
            pass
    if images.mean is not None:
        notes.append(f"{path}: training data unknown, normalised with {images.data}'s statistics")
        return images.mean, images.std
    notes.append(f"{path}: training data unknown, normalised with the shown images' statistics")
    return channel_stats(images.pixels)


# ---------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------


def cam_grid(
    runs: list[tuple[str | None, str | Path]],
    images: Images,
    out_png: str | Path,
    *,
    variant: Variant | None = None,
    alpha: float = 0.5,
    cell_inches: float = 1.8,
) -> dict:
    """Draw Figure 7: a row per image; the image, then each run's map over it (jet).

    Args:
        runs: (label, path) per column; a None label becomes the run's variant label.
        images: what to map (folder_images or dataset_images).
        out_png: the PNG to write (atomically).
        variant: when given, every run must hold this variant (see load_trained).
        alpha: opacity of the map over the image.
        cell_inches: side of one cell.

    Returns:
        out, images, columns, the PNG's pixel size, and per run its label, variant,
        predictions and (for dataset images) how many of them are right; notes.
    """
    if not runs:
        raise EffscaleError("no trained runs given", "name one or more run directories")
    notes, columns = [], []
    for label, path in runs:
        model, v, classes, saved = _load(path, variant)
        check_cam_head(model, v.label)
        mean, std = _stats(path, saved, images, notes)
        cams, pred = class_activation_maps(model, images.pixels, mean, std, v.resolution)
        same_classes = images.classes is not None and images.classes == classes
        correct = int((pred == images.labels).sum()) if same_classes else None
        columns.append(
            {
                "label": label or v.label,
                "path": str(path),
                "variant": v.label,
                "predictions": [classes[i] for i in pred.tolist()],
                "correct": correct,
                "cams": cams,
                "right": (pred == images.labels).tolist() if same_classes else None,
            }
        )

    px = _draw(images, columns, Path(out_png), alpha, cell_inches)
    return {
        "out": str(Path(out_png)),
        "images": len(images.pixels),
        "columns": 1 + len(columns),
        "width_px": px[0],
        "height_px": px[1],
        "runs": [{k: v for k, v in c.items() if k not in ("cams", "right")} for c in columns],
        "notes": notes,
    }


def _draw(images: Images, columns: list[dict], out_png: Path, alpha, cell_inches) -> tuple:
    """The grid as a PNG (written atomically): the image, then each run's map over it, the
    predicted class above (green right, red wrong). Returns the PNG's pixel size."""
    n, cols = len(images.pixels), 1 + len(columns)
    fig, axes = plt.subplots(
        n, cols, figsize=(cell_inches * cols, cell_inches * n + 0.4), squeeze=False
    )
    for i in range(n):
        img = images.pixels[i].permute(1, 2, 0).numpy()
        axes[i][0].imshow(img, interpolation="bilinear")
        axes[i][0].set_title(_wrap(images.names[i]), fontsize=8)
        for j, col in enumerate(columns, 1):
            ax = axes[i][j]
            ax.imshow(img, interpolation="bilinear")
            ax.imshow(
                col["cams"][i].numpy(),
                cmap="jet",
                alpha=alpha,
                vmin=0,
                vmax=1,
                interpolation="bilinear",
            )
            color = "black" if col["right"] is None else "green" if col["right"][i] else "red"
            ax.set_title(_wrap(col["predictions"][i]), fontsize=8, color=color)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for j, head in enumerate(["image"] + [c["label"] for c in columns]):
        axes[0][j].annotate(
            _wrap(head),
            (0.5, 1.0),
            xycoords="axes fraction",
            xytext=(0, 18),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
    fig.tight_layout()
    with io.atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    with Image.open(out_png) as im:
        return im.size


def cam_figure(
    runs: list[str | Path],
    out_png: str | Path,
    *,
    labels: list[str] | None = None,
    images_dir: str | Path | None = None,
    data: str | None = None,
    count: int = 6,
    variant: Variant | None = None,
) -> dict:
    """What `effscale cam` does: check the runs, pick the images, draw the grid (cam_grid).

    Images come from ``images_dir``, else the test split of ``data``, else of the dataset
    the first run was trained on (embedded when unknown).
    """
    if not runs:
        raise EffscaleError("no trained runs given", "name one or more run directories")
    if labels and len(labels) != len(runs):
        raise EffscaleError(
            f"{len(labels)} --label values for {len(runs)} runs", "give one --label per run"
        )
    if images_dir and data:
        raise EffscaleError("--images and --data both choose the images", "give one of them")
    if count < 1:
        raise EffscaleError(f"--count must be at least 1, got {count}")
    for path in runs:
        checkpoint_path(Path(path))  # a wrong path fails before any image is loaded
    if images_dir:
        images = folder_images(images_dir, count)
    else:
        images = dataset_images(data or training_data(runs[0]) or "embedded", count)
    return cam_grid(list(zip(labels or [None] * len(runs), runs)), images, out_png, variant=variant)


def _wrap(text: str, width: int = 24) -> str:
    return textwrap.fill(text, width)
