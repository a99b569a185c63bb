"""Image sets too big for memory: files decoded on access by DataLoader workers.

Each item comes out as the in-memory sets store it (uint8 [3, S, S] and an integer label), so
the device-side augmentation does not care where a batch came from.
"""

import os
import zipfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from effscale.data.decode import BAD_IMAGE, BAD_IMAGE_HINT, decode_image
from effscale.errors import EffscaleError

NEIGHBOURS = 16  # unreadable files in a row that skipping tolerates before giving up


class StreamingImages(Dataset):
    """Image files (or members of one zip) decoded and resized on ``__getitem__``.

    Args:
        files: image paths, or member names when ``zip_path`` is given.
        labels: int64 [N], the class of each file.
        size: the storage size in pixels (``.size``, as ImageDataset.resolution reads it).
        zip_path: read the files from this zip instead of the file system.
        on_bad_image: "skip" replaces an unreadable file by the next readable one (so the
            batch keeps its size); "fail" raises EffscaleError naming it.
    """

    def __init__(
        self,
        files: list[str],
        labels: torch.Tensor,
        size: int,
        *,
        zip_path: Path | None = None,
        on_bad_image: str = "skip",
    ):
        self.files, self.labels, self.size = files, labels, size
        self.zip_path, self.on_bad_image = zip_path, on_bad_image
        self._zip = None  # opened lazily, once per worker process
        self._loaders = {}  # stream_batches keeps its DataLoaders here, workers and all

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        for k in range(i, i + NEIGHBOURS):
            k %= len(self.files)
            try:
                return decode_image(self._read(k), self.size).contiguous(), int(self.labels[k])
            except BAD_IMAGE as e:
                if self.on_bad_image == "fail":
                    msg = f"unreadable image {self._name(k)}: {e}"
                    raise EffscaleError(msg, BAD_IMAGE_HINT) from e
        raise EffscaleError(f"{NEIGHBOURS} unreadable images in a row from {self._name(i)}")

    def close(self) -> None:
        """Stop the worker processes of stream_batches (they also stop when this is freed)."""
        self._loaders.clear()

    def _name(self, k: int) -> str:
        return f"{self.zip_path}:{self.files[k]}" if self.zip_path else self.files[k]

    def _read(self, k: int) -> str | bytes:
        if self.zip_path is None:
            return self.files[k]
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.zip_path)
        return self._zip.read(self.files[k])

    def __getstate__(self) -> dict:
        # Workers get the file list, not open handles or other loaders.
        return {**self.__dict__, "_zip": None, "_loaders": {}}


class _Order(Sampler):
    """0..n-1, or a permutation of it drawn from ``seed`` (set before each pass)."""

    def __init__(self, n: int, shuffle: bool):
        self.n, self.shuffle, self.seed = n, shuffle, 0

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        return iter(
            torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        )

    def __len__(self) -> int:
        return self.n


def default_workers() -> int:
    """One worker per core but one, which the training loop keeps for itself."""
    return min(8, max(1, (os.cpu_count() or 2) - 1))


def stream_batches(
    images: StreamingImages,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    workers: int | None = None,
    drop_last: bool = False,
):
    """Yield (uint8 [B, 3, S, S], int64 [B]) batches of a streamed split.

    The DataLoader is kept on ``images`` and reused by later calls with the same batch size,
    shuffle, drop_last and workers, so persistent workers live across epochs (until
    ``images.close()`` or until it is freed); ``seed`` only picks this pass's order.
    ``workers`` defaults to the cores but one; 0 decodes in-process.
    """
    workers = default_workers() if workers is None else workers
    key = (batch_size, shuffle, drop_last, workers)
    if key not in images._loaders:
        order = _Order(len(images), shuffle)
        # The loader gets a copy without _loaders: a reference cycle through it would leave
        # the workers to the garbage collector, whose shutdown of them stalls 5 s per worker.
        view = StreamingImages(
            images.files,
            images.labels,
            images.size,
            zip_path=images.zip_path,
            on_bad_image=images.on_bad_image,
        )
        loader = DataLoader(
            view,
            batch_size=batch_size,
            sampler=order,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )
        images._loaders[key] = loader, order
    loader, order = images._loaders[key]
    order.seed = seed
    yield from loader
