"""Class activation maps of trained variants side by side (paper Figure 7).

Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016: for a net
ending in global average pooling and a linear classifier, the logit of class c is
sum_k w_{c,k} * mean_xy f_k(x, y), so M_c(x, y) = sum_k w_{c,k} f_k(x, y) says how much each
place in the last feature map counts towards c. Tan & Le (2019, Figure 7) draw it for B0
scaled by depth, width, resolution and compound: the compound model attends to more
relevant regions with more object detail.

Here: load trained runs (a train run directory, a study point directory, or a checkpoint.pt),
take images from a folder or a dataset's test split, map the predicted class of each image
and draw a grid: the image at its stored size, then per run its map (computed at the run's
resolution, upsampled over the image) under its FLOPs and top-1. The paper only describes
its maps; measure() gives numbers: their share in the image's centre, agreement between runs.
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
from effscale.cost import count_cost  # noqa: E402
from effscale.data import load_dataset  # noqa: E402
from effscale.data.augment import eval_transform  # noqa: E402
from effscale.data.decode import decode_all, own_size  # noqa: E402
from effscale.data.folder import IMAGE_EXTENSIONS, class_label  # noqa: E402
from effscale.data.pixels import channel_stats  # noqa: E402
from effscale.errors import EffscaleError  # noqa: E402
from effscale.rundir import CHECKPOINT, PointDir  # noqa: E402
from effscale.scaling import Variant  # noqa: E402
from effscale.text import fmt_flops  # noqa: E402
from effscale.trained import checkpoint_path, load_run  # noqa: E402

FOLDER_PX = 224  # folder images not all of one square size are centre-cropped to this


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
    low, high = cams.amin((1, 2), keepdim=True), cams.amax((1, 2), keepdim=True)
    cams = (cams - low) / (high - low).clamp_min(1e-12)
    return cams.cpu(), labels.cpu()


# ---------------------------------------------------------------------------------------
# Trained runs
# ---------------------------------------------------------------------------------------


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


def folder_images(path: str | Path, count: int = 6, size: int | None = None) -> Images:
    """The first ``count`` image files of a folder (by name), square, at ``size`` px.

    By default at their own size when all are of one square size up to 512 px (as an
    ImageFolder's stored images are: Imagenette's 224 px), else centre-cropped to FOLDER_PX.
    """
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
    srcs = [str(f) for f in files]
    size = size or own_size(srcs) or FOLDER_PX
    pixels, _ = decode_all(srcs, srcs, size, fail=True)
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
    names = [class_label(data.classes[c]) for c in true.tolist()]
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


@dataclass
class RunMaps:
    """One run's column of the grid: what it is, what it costs and scored, and its maps."""

    label: str  # the column's name: --label, else the variant's label
    path: str
    variant: str
    flops: int  # counted, as every study reports them (multiply-adds at its resolution)
    top1: float | None  # test top-1 in percent from its result.json; None when it has none
    cams: torch.Tensor  # float [N, H, W] in 0..1, at the images' own size
    predictions: list[str]  # predicted class name per image
    hits: list[bool] | None  # per image: predicted the true class (None: classes unknown)


def map_run(path, images: Images, label=None, variant=None, notes=None) -> RunMaps:
    """One trained run's maps of ``images`` at its own input resolution, its FLOPs and top-1
    (run_facts); notes on guessed normalisation statistics go to ``notes``."""
    run = load_run(path, variant)
    model, v, classes, saved = run.model, run.variant, run.classes, run.stats
    check_cam_head(model, v.label)
    mean, std = _stats(path, saved, images, [] if notes is None else notes)
    cams, pred = class_activation_maps(model, images.pixels, mean, std, v.resolution)
    hits = (pred == images.labels).tolist() if images.classes == classes else None
    names = [class_label(classes[i]) for i in pred.tolist()]
    return RunMaps(
        label or v.label, str(path), v.label, *run_facts(path, v, len(classes)), cams, names, hits
    )


def run_facts(path: str | Path, variant: Variant, num_classes: int) -> tuple[int, float | None]:
    """A run's FLOPs and top-1 (percent) from the result.json and config.json beside its
    checkpoint, else FLOPs counted (count_cost) and no top-1. The files count only when they
    name no other variant: a checkpoint copied into another run's folder is not that run."""
    path = Path(path)
    point = PointDir(path if path.is_dir() else path.parent)
    config, result = (point.config()[0] or {}), (point.result()[0] or {})  # damaged: absent
    named = (config.get("identity") or {}).get("variant")
    if not (path.is_dir() or path.name == CHECKPOINT) or named not in (None, variant.to_dict()):
        config, result = {}, {}
    flops = result.get("flops") or (config.get("cost") or {}).get("flops")
    flops = flops if type(flops) is int and flops > 0 else count_cost(variant, num_classes).flops
    return flops, result.get("top1")  # read_result checked top1: a number or None


CENTRE_AREA = 0.5  # the centre box covers this share of the image's area


def centre_box(h: int, w: int, area: float = CENTRE_AREA) -> torch.Tensor:
    """float64 [h, w]: the part of each pixel inside the centred box of ``area`` of the image's
    area (same aspect), edges in part: a uniform map puts exactly ``area`` in it, at any size."""

    def cover(n: int) -> torch.Tensor:  # overlap of pixel [i, i+1) with the box's [lo, hi)
        lo, hi = n * (1 - area**0.5) / 2, n * (1 + area**0.5) / 2
        edges = torch.arange(n + 1.0, dtype=torch.float64)
        return (edges[1:].clamp(max=hi) - edges[:-1].clamp(min=lo)).clamp(min=0)

    return cover(h)[:, None] * cover(w)[None, :]


def centre_share(cams: torch.Tensor, area: float = CENTRE_AREA) -> torch.Tensor:
    """float64 [N]: the share of each map's mass (negatives clipped, scaled to sum to 1) in
    the centre box: 1 wholly inside, ``area`` for a uniform map or any upsampled from 2x2
    cells (B0 at 64 px: no centre to favour), NaN for all zeros. On the object only if objects
    are centred, as assumed here: true of most Imagenette photos, not of every one."""
    mass = cams.double().clamp_min(0)
    return (mass * centre_box(*cams.shape[-2:], area)).sum((-2, -1)) / mass.sum((-2, -1))


def map_agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """float64 [N]: Pearson correlation of maps a[i] and b[i], b resized bilinearly to a's
    size if it differs; NaN where either map is flat."""
    if b.shape[-2:] != a.shape[-2:]:
        b = F.interpolate(b[:, None].float(), size=a.shape[-2:], mode="bilinear")[:, 0]
    a, b = a.double().flatten(1), b.double().flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def measure(runs: list[RunMaps], area: float = CENTRE_AREA) -> list[dict]:
    """A row per run: label, variant, flops (and flops_ratio to the first run's), top1,
    centre_share and agreement_with_first (means over the images where they are defined),
    right (images classified correctly; None for images of unknown class), predictions, path."""
    first = runs[0]
    return [
        {
            "label": r.label,
            "variant": r.variant,
            "flops": r.flops,
            "flops_ratio": round(r.flops / first.flops, 4),
            "top1": None if r.top1 is None else round(r.top1, 2),
            "centre_share": _mean(centre_share(r.cams, area)),
            "agreement_with_first": _mean(map_agreement(r.cams, first.cams)),
            "right": None if r.hits is None else sum(r.hits),
            "predictions": r.predictions,
            "path": r.path,
        }
        for r in runs
    ]


def _mean(values: torch.Tensor) -> float | None:
    finite = values[torch.isfinite(values)]
    return round(float(finite.mean()), 4) if len(finite) else None


# ---------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------

DPI = 100
TITLE_ROOM = 1.3  # a cell this much taller and wider than its image leaves room for titles
MAP_STYLE = dict(cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
HEAD_STYLE = dict(xytext=(0, 6), textcoords="offset points", ha="center", va="bottom")
HEAD_STYLE |= dict(fontsize=9, fontweight="bold")
SCALE_INCHES = 0.75  # below the grid: the maps' colour bar and its label


def cam_grid(
    runs: list[tuple[str | None, str | Path]],
    images: Images,
    out_png: str | Path,
    *,
    variant: Variant | None = None,
    alpha: float = 0.5,
    cell_inches: float = 1.8,
) -> dict:
    """Draw Figure 7 (draw_grid), measure its maps (measure), write both atomically: the
    PNG and, beside it as JSON (cam.png -> cam.json), the result: out, measures (that JSON's
    path), images (how many), image_names, columns, centre_area, width_px, height_px, runs
    (measure's rows) and notes. ``runs``: (label, path) per column, None for the variant's
    label; every run must hold ``variant`` when given (load_trained)."""
    if not runs:
        raise EffscaleError("no trained runs given", "name one or more run directories")
    notes = []
    columns = [map_run(path, images, label, variant, notes) for label, path in runs]
    fig = draw_grid(images, columns, alpha, cell_inches)
    with io.atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    with Image.open(out_png) as im:
        width, height = im.size
    measures = Path(out_png).with_suffix(".json")
    result = {
        "out": str(Path(out_png)),
        "measures": str(measures),
        "images": len(images.pixels),
        "image_names": images.names,
        "columns": 1 + len(columns),
        "centre_area": CENTRE_AREA,
        "width_px": width,
        "height_px": height,
        "runs": measure(columns),
        "notes": notes,
    }
    io.write_json(measures, result)
    return result


def column_title(run: RunMaps, first_flops: int, n_runs: int) -> str:
    """A column head: the run's label, its FLOPs (as a ratio to the first run's when there
    are several, since Figure 7 compares models of similar cost) and its top-1."""
    ratio = run.flops / first_flops
    cost = fmt_flops(run.flops) if n_runs == 1 else f"{ratio:.{1 if ratio >= 1 else 2}f}x FLOPs"
    top1 = [] if run.top1 is None else [f"top-1 {run.top1:.1f}%"]
    return "\n".join([_wrap(run.label), cost, *top1])


def draw_grid(images: Images, columns: list[RunMaps], alpha: float = 0.5, cell_inches=1.8):
    """The grid as a matplotlib Figure: the image, then each run's map over it, the predicted
    class above (green right, red wrong), each column's head (column_title) on top, and
    under the maps their colour scale (colour_scale).

    Images keep their stored size (a cell is at least that many pixels at DPI, and at least
    ``cell_inches``); each map, upsampled to that size already, covers the whole image.
    """
    n, cols = len(images.pixels), 1 + len(columns)
    cell = max(cell_inches, TITLE_ROOM * max(images.pixels.shape[-2:]) / DPI)
    height = cell * n + 0.6 + SCALE_INCHES
    fig, axes = plt.subplots(n, cols, figsize=(cell * cols, height), squeeze=False)
    for i in range(n):
        img = images.pixels[i].permute(1, 2, 0).numpy()
        axes[i][0].imshow(img, interpolation="bilinear")
        axes[i][0].set_title(_wrap(images.names[i]), fontsize=8)
        for ax, col in zip(axes[i][1:], columns):
            ax.imshow(img, interpolation="bilinear")
            ax.imshow(col.cams[i].numpy(), alpha=alpha, **MAP_STYLE)
            color = "black" if col.hits is None else "green" if col.hits[i] else "red"
            ax.set_title(_wrap(col.predictions[i]), fontsize=8, color=color)
    for ax in axes.flat:
        ax.set(xticks=[], yticks=[])
    heads = ["image"] + [column_title(c, columns[0].flops, len(columns)) for c in columns]
    for ax, head in zip(axes[0], heads):
        ax.annotate(head, (0.5, 1.0), xycoords=ax.title, **HEAD_STYLE)  # above a long title
    fig.tight_layout(rect=(0, SCALE_INCHES / height, 1, 1))  # the scale's room kept free
    colour_scale(fig, axes[-1][1], axes[-1][-1], SCALE_INCHES / height)
    return fig


def colour_scale(fig, first, last, room: float):
    """A horizontal colour bar under the map columns (axes ``first`` to ``last`` of the
    bottom row), in the bottom ``room`` of the figure: what a map's colours mean. Each map
    is scaled per image from its minimum (0) to its maximum (1) (class_activation_maps)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    left, right = first.get_position().x0, last.get_position().x1
    width = min(right - left, max(0.5 * (right - left), 3.5 / fig.get_figwidth()))
    bar = fig.add_axes((left + (right - left - width) / 2, room * 0.55, width,
                        0.12 / fig.get_figheight()))  # fmt: skip
    scale = ScalarMappable(Normalize(MAP_STYLE["vmin"], MAP_STYLE["vmax"]), MAP_STYLE["cmap"])
    cbar = fig.colorbar(scale, cax=bar, orientation="horizontal", ticks=[0, 0.5, 1])
    cbar.set_label("class activation, scaled per image: 0 = the map's minimum, 1 = its maximum",
                   fontsize=9)  # fmt: skip
    cbar.ax.tick_params(labelsize=8)
    return cbar


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
    """What `effscale cam` does: check the runs, pick the images, draw and measure the grid
    (cam_grid).

    Images come from ``images_dir``, else the test split of ``data``, else of the dataset
    the first run was trained on (embedded when unknown).
    """
    if not runs:
        raise EffscaleError("no trained runs given", "name one or more run directories")
    if labels and len(labels) != len(runs):
        raise EffscaleError(
            f"{len(labels)} `label` values for {len(runs)} runs", "give one `label` per run"
        )
    if images_dir and data:
        raise EffscaleError("`images` and `data` both choose the images", "give one of them")
    if count < 1:
        raise EffscaleError(f"`count` must be at least 1, got {count}")
    for path in runs:
        checkpoint_path(Path(path))  # a wrong path fails before any image is loaded
    if images_dir:
        images = folder_images(images_dir, count)
    else:
        images = dataset_images(data or training_data(runs[0]) or "embedded", count)
    return cam_grid(list(zip(labels or [None] * len(runs), runs)), images, out_png, variant=variant)


def _wrap(text: str, width: int = 24) -> str:
    return textwrap.fill(text, width)
