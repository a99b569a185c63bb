"""CIFAR-10 and CIFAR-100 in the official python format (Krizhevsky, 2009).

Each batch file is a pickled dict: b"data" is uint8 [N, 3072], one row per image holding the
red, green and blue 32x32 planes in turn, row-major, so a plain reshape gives [N, 3, 32, 32].
Labels are b"labels" (CIFAR-10) or b"fine_labels" (CIFAR-100, its 100 classes); the class
names are in the meta file. Downloads go to cache_dir()/datasets, never next to user data.
"""

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import torch

from effscale.data import progress
from effscale.data.dataset import ImageDataset
from effscale.errors import EffscaleError
from effscale.io import atomic_path, cache_dir

FORMATS = {
    "cifar10": {
        "title": "CIFAR-10",
        "dir": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": b"labels",
        "names": b"label_names",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
    },
    "cifar100": {
        "title": "CIFAR-100",
        "dir": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": b"fine_labels",
        "names": b"fine_label_names",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85",
    },
}


def find_cifar(path: Path) -> tuple[str, Path] | None:
    """(kind, batches directory) if ``path`` is, or directly holds, a CIFAR python directory."""
    for d in (path, path / FORMATS["cifar10"]["dir"], path / FORMATS["cifar100"]["dir"]):
        for kind, fmt in FORMATS.items():
            if (d / fmt["meta"]).is_file():
                if missing := _missing(d, fmt):
                    raise EffscaleError(
                        f"{d} looks like {fmt['title']} but lacks {', '.join(missing)}",
                        hint=f"unpack {fmt['url'].rsplit('/', 1)[1]} there again",
                    )
                return kind, d
    return None


def load_cifar(kind: str, path: Path | None = None, download: bool = True) -> ImageDataset:
    """CIFAR from its batches directory ``path``, else from the cache (downloaded if missing)."""
    fmt = FORMATS[kind]
    if path is None:
        path = fetch(kind, download)
        source = f"{fmt['title']} (Krizhevsky 2009), python format from {fmt['url']}"
    else:
        source = f"{fmt['title']} (Krizhevsky 2009), python format at {path}"
    names = _unpickle(path / fmt["meta"]).get(fmt["names"])
    if not names:
        raise EffscaleError(f"{path / fmt['meta']} has no {fmt['names'].decode()}")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    train, train_labels = _batches(path, fmt["train"], fmt["labels"])
    test, test_labels = _batches(path, fmt["test"], fmt["labels"])
    for labels in (train_labels, test_labels):
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise EffscaleError(f"{path}: labels outside 0..{len(classes) - 1}")
    return ImageDataset.in_memory(kind, classes, (train, train_labels), (test, test_labels), source)


def cached(kind: str) -> Path:
    """Where the cache holds (or would hold) the batches directory of ``kind``."""
    return cache_dir() / "datasets" / FORMATS[kind]["dir"]


def in_cache(kind: str) -> bool:
    """Whether the cache holds every file of ``kind``: no download needed."""
    return not _missing(cached(kind), FORMATS[kind])


def fetch(kind: str, download: bool = True) -> Path:
    """The cached batches directory of ``kind``, downloaded first when it is not there."""
    fmt, path = FORMATS[kind], cached(kind)
    if _missing(path, fmt):
        if not download:
            raise EffscaleError(
                f"{fmt['title']} is not in {path.parent} and downloading is off",
                hint=f"pass its directory (`data`=/path/to/{fmt['dir']})",
            )
        _download(fmt, path.parent)
    return path


def _missing(d: Path, fmt: dict) -> list[str]:
    return [f for f in [fmt["meta"], *fmt["train"], *fmt["test"]] if not (d / f).is_file()]


def _batches(path: Path, files: list[str], label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in files:
        batch = _unpickle(path / name)
        try:
            data = torch.as_tensor(batch[b"data"], dtype=torch.uint8)
            ys = torch.as_tensor(batch[label_key], dtype=torch.int64)
        except KeyError as e:
            raise EffscaleError(f"{path / name}: not a CIFAR batch (no {e.args[0]!r})") from None
        except (TypeError, ValueError, RuntimeError) as e:
            raise EffscaleError(f"{path / name}: malformed CIFAR batch ({e})") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(ys) != len(data):
            raise EffscaleError(f"{path / name}: expected [N, 3072] images and N labels")
        images.append(data.view(-1, 3, 32, 32))
        labels.append(ys)
    return torch.cat(images), torch.cat(labels)


class _Unpickler(pickle.Unpickler):
    """Only what the official files hold (numpy arrays, lists, bytes): no code can run."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5, as a modern numpy writes
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol 2 pickles written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # The official files were written by Python 2: keep their str as bytes.
            obj = _Unpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, ImportError, AttributeError) as e:
        raise EffscaleError(f"{path} is not a CIFAR python-format file ({e})") from None
    if not isinstance(obj, dict):
        raise EffscaleError(f"{path} is not a CIFAR python-format file (no dict inside)")
    return obj


def _download(fmt: dict, root: Path) -> None:
    """Fetch and unpack the official tarball into root/<dir>, checking its md5."""
    url = fmt["url"]
    tarball = root / url.rsplit("/", 1)[1]
    try:
        with urllib.request.urlopen(url, timeout=60) as r, atomic_path(tarball) as tmp:
            total = int(r.headers.get("Content-Length") or 0)
            bar = progress.reading(r, total, f"downloading {fmt['title']}")
            with bar as src, open(tmp, "wb") as f:
                shutil.copyfileobj(src, f, 1 << 20)
    except (urllib.error.URLError, OSError) as e:
        raise EffscaleError(
            f"could not download {fmt['title']} from {url} ({getattr(e, 'reason', e)})",
            hint=f"pass a directory holding {fmt['dir']}/ (`data`=/path/to/{fmt['dir']}), "
            f"or put that directory in {root}",
        ) from None
    md5 = hashlib.md5(tarball.read_bytes()).hexdigest()
    if md5 != fmt["md5"]:
        tarball.unlink()
        raise EffscaleError(f"{url} arrived corrupted (md5 {md5})", hint="try again")
    # Unpack beside the target and rename into place, so a half-unpacked set never shows.
    with tempfile.TemporaryDirectory(dir=root) as tmp, tarfile.open(tarball) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, **safe)
        shutil.rmtree(root / fmt["dir"], ignore_errors=True)  # an incomplete earlier copy
        (Path(tmp) / fmt["dir"]).replace(root / fmt["dir"])
    tarball.unlink()
