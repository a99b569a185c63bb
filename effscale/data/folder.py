"""ImageFolder trees, ``root/{train,test or val}/<class>/<image>``, on disk or in a zip.

A tree is listed and fingerprinted (paths, sizes, mtimes; for a zip, its sha256), decoded once
at the storage size and cached as uint8 tensors in cache_dir()/folders/<key>.pt, where the key
covers the fingerprint, so any change to the files means a fresh decode. Sets too big for memory
become StreamingImages instead. Nothing is ever written into the user's directory.
"""

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import torch

from effscale.data.dataset import ImageDataset
from effscale.data.decode import BAD_IMAGE_HINT, decode_all, mixed_size, own_size
from effscale.data.pixels import channel_stats
from effscale.data.streaming import StreamingImages
from effscale.errors import EffscaleError
from effscale.io import atomic_path, cache_dir, write_json

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
SPLITS = ("train", "test")
LAYOUT = "expected ROOT/train/<class>/*.jpg and ROOT/test/<class>/*.jpg (or val/ for test)"
CACHE_VERSION = 2  # bump when decoding or the cache layout changes: no stale tensors reused
STATS_SAMPLE = 2000  # training images that estimate the mean and std of a streamed set
# ImageNet subsets name their class folders by WordNet id; a figure shows the word. These are
# Imagenette's ten (its README, fast.ai); other ids are shown as they are.
WORDNET_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888605": "parachute",
}  # fmt: skip


def class_label(name: str) -> str:
    """A class folder's name for people: the word for a known WordNet id, else the name."""
    return WORDNET_NAMES.get(name, name)


@dataclass
class Tree:
    """An ImageFolder tree, listed but not decoded."""

    name: str  # ImageDataset.name: the absolute path, or "embedded"
    source: str
    classes: list[str]
    files: dict[str, list[str]]  # split -> image paths, or member names of zip_path
    labels: dict[str, list[int]]
    fingerprint: str  # changes whenever any image does
    zip_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def sources(self, split: str, idx: list[int] | None = None) -> list[str | bytes]:
        """What decode_image takes: file paths, or the members' bytes read from the zip."""
        files = self.files[split] if idx is None else [self.files[split][i] for i in idx]
        if self.zip_path is None:
            return files
        return [self._zip.read(m) for m in files]

    @cached_property
    def _zip(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.zip_path)  # open once: reading its directory takes a while

    def names(self, split: str) -> list[str]:
        if self.zip_path is None:
            return self.files[split]
        return [f"{self.zip_path}:{m}" for m in self.files[split]]


# ---------------------------------------------------------------------------------------
# Listing
# ---------------------------------------------------------------------------------------


def scan_folder(path: Path) -> Tree:
    """List an ImageFolder tree on disk, or raise EffscaleError saying what is wrong with it."""
    root = path.expanduser().resolve()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise EffscaleError(
            f"dataset {path} {what}",
            hint="pass embedded, synthetic, cifar10, cifar100, or a directory: " + LAYOUT,
        )
    entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
    if not entries:
        raise EffscaleError(f"dataset directory {path} is empty", hint=LAYOUT)
    dirs = {e.name for e in entries if e.is_dir()}
    test = "test" if "test" in dirs else "val" if "val" in dirs else None
    if "train" not in dirs or test is None:
        if dirs and not dirs & {"train", "test", "val"}:
            raise EffscaleError(
                f"{path} holds class folders ({_few(dirs)}) but no train/ and test/ split",
                hint=LAYOUT + "; move the class folders into train/ and hold some images "
                "out in test/",
            )
        missing = "train/" if "train" not in dirs else "test/ (or val/)"
        raise EffscaleError(f"{path} has no {missing} folder", hint=LAYOUT)

    found, stats = {}, []
    for split, folder in zip(SPLITS, ("train", test)):
        found[split] = {}
        classes = sorted(e.name for e in os.scandir(root / folder) if _is_class(e))
        if not classes:
            raise EffscaleError(f"{root / folder} has no class folders", hint=LAYOUT)
        for c in classes:
            found[split][c] = _images_under(root / folder / c)
            stats += [(os.path.relpath(p, root), *_stat(p)) for p in found[split][c]]
    tree = _tree(str(root), str(root), found, _sha256(json.dumps(stats)), test)
    if test == "val":
        tree.notes.append("test split: val/")
    return tree


def scan_zip(zip_path: Path, name: str, source: str) -> Tree:
    """List a zip holding train/<class>/<image> and test/<class>/<image>."""
    found = {split: {} for split in SPLITS}
    with zipfile.ZipFile(zip_path) as zf:
        for member in sorted(zf.namelist()):
            parts = member.split("/")
            if len(parts) >= 3 and parts[0] in found and _is_image(parts[-1]):
                found[parts[0]].setdefault(parts[1], []).append(member)
    fingerprint = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    return _tree(name, source, found, fingerprint, "test", zip_path)


def _tree(name, source, found, fingerprint, test, zip_path=None) -> Tree:
    """Check that both splits have the same classes and some images; number the classes."""
    train_only = sorted(found["train"].keys() - found["test"].keys())
    test_only = sorted(found["test"].keys() - found["train"].keys())
    if train_only or test_only:
        diff = [f"only in train/: {_few(train_only)}"] if train_only else []
        diff += [f"only in {test}/: {_few(test_only)}"] if test_only else []
        raise EffscaleError(
            f"{name}: train/ and {test}/ have different classes ({'; '.join(diff)})",
            hint="give every class a folder in both splits",
        )
    classes = sorted(found["train"])
    for split, folder in zip(SPLITS, ("train", test)):
        if not any(found[split].values()):
            raise EffscaleError(
                f"{name}: {folder}/ has class folders but no images",
                hint=f"images are files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}",
            )
    files = {s: [f for c in classes for f in found[s][c]] for s in SPLITS}
    labels = {s: [y for y, c in enumerate(classes) for _ in found[s][c]] for s in SPLITS}
    tree = Tree(name, source, classes, files, labels, fingerprint, zip_path)
    if empty := [c for c in classes if not found["train"][c]]:
        tree.notes.append(f"no training images for class {_few(empty)}")
    return tree


def _images_under(folder: Path) -> list[str]:
    """Image files below ``folder`` (any depth, hidden files skipped) in a stable order.

    Symbolic links to folders are followed (a dataset assembled from links), each real
    folder once: walking top-down, a folder met again is a link back up the tree (a loop,
    which os.walk would descend forever) or the same images twice, refused in one line."""
    out, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            raise EffscaleError(
                f"{dirpath} is {real} again: a symbolic link to a folder already listed "
                "(a loop, or the same images twice)",
                "remove that link from the dataset folder",
            )
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if _is_image(f)]
    return out


def _is_image(filename: str) -> bool:
    return not filename.startswith(".") and Path(filename).suffix.lower() in IMAGE_EXTENSIONS


def _is_class(entry: os.DirEntry) -> bool:
    return entry.is_dir() and not entry.name.startswith(".")


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _few(names, n: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# Decoding, caching, streaming
# ---------------------------------------------------------------------------------------


def load_tree(
    tree: Tree,
    *,
    storage_size: int | None,
    stream: bool | None,
    on_bad_image: str,
    min_size: int | None = None,
) -> ImageDataset:
    """Decoded tensors of a tree (from the cache when its files have not changed), or streams.

    Stored at ``storage_size``; by default at the images' own size when they share one, else
    at mixed_size(min_size)."""
    key = _sha256(f"{CACHE_VERSION}\n{tree.name}\n{storage_size or 'auto'}\n{tree.fingerprint}")
    meta_path = cache_dir() / "folders" / f"{key[:32]}.json"
    meta = _read_json(meta_path)
    size, resized = storage_size, True
    if size is None:
        own = meta.get("own")
        if not (isinstance(own, int) and not isinstance(own, bool) and own >= 0):
            meta["own"] = own_size(tree.sources("train") + tree.sources("test")) or 0
            write_json(meta_path, meta)
        size, resized = meta["own"] or mixed_size(min_size), not meta["own"]
    n = len(tree.files["train"]) + len(tree.files["test"])
    nbytes, limit = n * 3 * size * size, stream_limit()
    if stream or (stream is None and nbytes > limit):
        why = "as asked" if stream else f"{nbytes / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB"
        return replace(_streaming(tree, size, meta_path, meta, on_bad_image, why), resized=resized)

    pt_path = meta_path.with_name(f"{meta_path.stem}-{size}px.pt")
    data = _read_pt(pt_path)
    if data is None:
        data = _decode(tree, size, on_bad_image == "fail")
        with atomic_path(pt_path) as tmp:
            torch.save(data, tmp)
    bad = data["bad"]
    if bad and on_bad_image == "fail":
        raise EffscaleError(f"unreadable image {bad[0][0]}: {bad[0][1]}", hint=BAD_IMAGE_HINT)
    notes = list(tree.notes)
    if bad:
        notes.append(f"skipped {len(bad)} unreadable images, first: {bad[0][0]}")
    return ImageDataset(
        name=tree.name,
        classes=tree.classes,
        train_images=data["train_images"],
        train_labels=data["train_labels"],
        test_images=data["test_images"],
        test_labels=data["test_labels"],
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
        source=tree.source,
        notes=notes,
        resized=resized,
    )


def stream_limit() -> int:
    """Bytes of uint8 images above which a set streams: $EFFSCALE_STREAM_BYTES, else RAM / 4."""
    if env := os.environ.get("EFFSCALE_STREAM_BYTES"):
        try:
            return int(float(env))
        except ValueError:
            raise EffscaleError(f"EFFSCALE_STREAM_BYTES={env!r} is not a number of bytes") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a 16 GiB machine
        return 4 * 2**30


def _decode(tree: Tree, size: int, fail: bool) -> dict:
    data = {"version": CACHE_VERSION, "size": size, "bad": []}
    for split in SPLITS:
        what = f"decoding {len(tree.files[split])} {split} images"
        images, bad = decode_all(tree.sources(split), tree.names(split), size, fail, what)
        labels = torch.tensor(tree.labels[split], dtype=torch.int64)
        if bad:
            keep = torch.ones(len(labels), dtype=torch.bool)
            keep[[i for i, _ in bad]] = False
            labels = labels[keep]
            data["bad"] += [(tree.names(split)[i], reason) for i, reason in bad]
        data[f"{split}_images"], data[f"{split}_labels"] = images, labels
    if not len(data["train_images"]):
        raise EffscaleError(f"{tree.name}: no readable training images", hint=BAD_IMAGE_HINT)
    data["mean"], data["std"] = channel_stats(data["train_images"])
    return data


def _streaming(tree, size, meta_path, meta, on_bad_image, why) -> ImageDataset:
    """StreamingImages for both splits; mean and std from a fixed sample of training images."""
    stats = meta.get(f"stream_stats_{size}")
    if not _valid_stats(stats):  # absent, or damaged: sampled again
        n = len(tree.files["train"])
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:STATS_SAMPLE]
        idx = sorted(idx.tolist())
        all_names = tree.names("train")
        names = [all_names[i] for i in idx]
        what = f"sampling {len(idx)} images for mean and std"
        sample, bad = decode_all(
            tree.sources("train", idx), names, size, on_bad_image == "fail", what
        )
        mean, std = channel_stats(sample)
        bad = [(names[i], reason) for i, reason in bad]
        stats = {"mean": mean, "std": std, "sample": len(sample), "bad": bad}
        write_json(meta_path, {**meta, f"stream_stats_{size}": stats})
    if (bad := stats["bad"]) and on_bad_image == "fail":
        raise EffscaleError(f"unreadable image {bad[0][0]}: {bad[0][1]}", hint=BAD_IMAGE_HINT)

    def images(split):
        labels = torch.tensor(tree.labels[split], dtype=torch.int64)
        return StreamingImages(
            tree.files[split], labels, size, zip_path=tree.zip_path, on_bad_image=on_bad_image
        ), labels

    (train, train_labels), (test, test_labels) = images("train"), images("test")
    notes = tree.notes + [
        f"streaming from files ({why}); mean/std from {stats['sample']} training images"
    ]
    if bad:
        notes.append(
            f"{len(bad)} unreadable images in the sample, first: {bad[0][0]}; streaming "
            "replaces such images by the next readable one"
        )
    return ImageDataset(
        name=tree.name,
        classes=tree.classes,
        train_images=train,
        train_labels=train_labels,
        test_images=test,
        test_labels=test_labels,
        mean=tuple(stats["mean"]),
        std=tuple(stats["std"]),
        source=tree.source,
        notes=notes,
    )


def _read_json(path: Path) -> dict:
    """The folder cache's metadata; {} when absent or damaged (then worked out again)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _valid_stats(stats) -> bool:
    """Whether a cached stream_stats entry has the fields and types _streaming wrote."""
    if not isinstance(stats, dict):
        return False
    channels = [stats.get("mean"), stats.get("std")]
    return (
        all(isinstance(c, list) and c and all(_is_number(v) for v in c) for c in channels)
        and isinstance(stats.get("sample"), int)
        and isinstance(stats.get("bad"), list)
        and all(isinstance(b, list) and len(b) == 2 for b in stats["bad"])
    )


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _read_pt(path: Path) -> dict | None:
    """A cached decode, or None when absent or from another version of the decoder."""
    try:
        data = torch.load(path, weights_only=True)
    except Exception:  # absent, or not a file this code wrote: decode again and replace it
        return None
    keys = ("train_images", "train_labels", "test_images", "test_labels", "mean", "std", "bad")
    if not isinstance(data, dict) or not all(k in data for k in keys):
        return None
    return data if data.get("version") == CACHE_VERSION else None
