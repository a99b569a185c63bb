"""Image files to uint8 tensors: decode with PIL, shorter side to the storage size, centre crop.

Many files decode on a thread pool. Large images keep PIL in C code with the GIL released,
so threads use every core without the start-up cost (and torch import) of worker processes;
tiny ones (CIFAR's 32 px, about 50 us each) are bound by Python either way.
"""

import io
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
from PIL import Image

from effscale.errors import EffscaleError

# What PIL raises for a file that is not a readable image (truncated, corrupt, not an image,
# or so large that it looks like a decompression bomb).
BAD_IMAGE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)

BAD_IMAGE_HINT = "remove or replace the file, or skip unreadable images (on_bad_image='skip')"

MAX_KEPT_PX = 512  # the automatic storage size keeps images of one square size up to this
DEFAULT_PX = 128  # ... and otherwise stores every image at this size, or at the next
STEP_PX = 64  # multiple of this at or above the largest resolution trained (mixed_size)
CHUNK = 64  # files per pool task: large enough to amortise scheduling, small for the bar
PROGRESS_FROM = 1000  # fewer files than this decode without a progress bar


def decode_image(src: str | bytes, size: int) -> torch.Tensor:
    """One image (a path or the file's bytes) as uint8 [3, size, size], RGB."""
    with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
        # JPEG only: libjpeg scales by 1/2..1/8 while decoding, keeping both sides >= size.
        im.draft("RGB", (size, size))
        im = im.convert("RGB")
    w, h = im.size
    if (w, h) != (size, size):
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + s, top + s))
    hwc = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return hwc.permute(2, 0, 1)


def own_size(srcs: list[str | bytes]) -> int | None:
    """The images' own size if all are one square size <= 512 px, else None (reads headers
    only): such images are stored as they are."""
    seen = None
    for src in srcs:
        try:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
                wh = im.size
        except BAD_IMAGE:
            continue  # decoding reports it
        if wh[0] != wh[1] or wh[0] > MAX_KEPT_PX or (seen and wh != seen):
            return None
        seen = wh
    return seen[0] if seen else None


def mixed_size(min_size: int | None = None) -> int:
    """The storage size of images of mixed sizes: 128 px, or the next multiple of 64 px at or
    above ``min_size`` (the largest resolution to be trained), so no variant sees upsampled
    images. A function of ``min_size`` alone, so one point always sees the same pixels."""
    need = max(DEFAULT_PX, min_size or 0)
    return -(-need // STEP_PX) * STEP_PX


def decode_workers() -> int:
    return min(8, os.cpu_count() or 1)


def decode_all(
    srcs: list[str | bytes], names: list[str], size: int, fail: bool, what: str = "decoding"
) -> tuple[torch.Tensor, list[tuple[int, str]]]:
    """Decode every source into uint8 [N, 3, size, size].

    Args:
        srcs: file paths, or file contents as bytes.
        names: what to call each source in messages (its path).
        size: the storage size in pixels.
        fail: raise EffscaleError at the first unreadable image instead of skipping it.
        what: the progress bar's label.

    Returns:
        The readable images in order, and (index, reason) for each unreadable source.
    """
    out = torch.empty(len(srcs), 3, size, size, dtype=torch.uint8)
    bad: list[tuple[int, str]] = []

    def work(start: int) -> list[tuple[int, str]]:
        errors = []
        for i in range(start, min(start + CHUNK, len(srcs))):
            try:
                out[i] = decode_image(srcs[i], size)
            except BAD_IMAGE as e:
                errors.append((i, str(e) or type(e).__name__))
        return errors

    with _progress(len(srcs), what) as advance, ThreadPoolExecutor(decode_workers()) as pool:
        futures = [pool.submit(work, start) for start in range(0, len(srcs), CHUNK)]
        for start, future in zip(range(0, len(srcs), CHUNK), futures):
            errors = future.result()
            if errors and fail:
                pool.shutdown(cancel_futures=True)
                i, reason = errors[0]
                raise EffscaleError(f"unreadable image {names[i]}: {reason}", hint=BAD_IMAGE_HINT)
            bad += errors
            advance(min(CHUNK, len(srcs) - start))
    if bad:
        keep = torch.ones(len(srcs), dtype=torch.bool)
        keep[[i for i, _ in bad]] = False
        out = out[keep]
    return out, bad


@contextmanager
def _progress(total: int, what: str):
    """Yield ``advance(n)``: a transient bar on stderr for long decodes, nothing for short ones."""
    if total < PROGRESS_FROM:
        yield lambda n: None
        return
    from effscale.data import progress

    with progress.counting(total, what) as advance:
        yield advance
