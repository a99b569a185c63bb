"""Whole-set operations on uint8 image tensors: channel statistics and resizing."""

import torch
import torch.nn.functional as F

CHUNK = 1024  # images per step, so a large set never exists in float at once


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 [N, 3, H, W] images, on the 0..1 scale."""
    # Exact and light: a 256-bin histogram per channel instead of the pixels as floats.
    counts = torch.zeros(3, 256, dtype=torch.float64)
    for i in range(0, len(images), CHUNK):
        for c in range(3):
            counts[c] += torch.bincount(images[i : i + CHUNK, c].flatten(), minlength=256)
    v = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum(1).clamp_min(1)
    mean = (counts * v).sum(1) / n
    std = ((counts * v**2).sum(1) / n - mean**2).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square uint8 images resized to ``size`` px (bicubic, antialiased when shrinking)."""
    if images.shape[-1] == size:
        return images
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for i in range(0, len(images), CHUNK):
        x = images[i : i + CHUNK].float()
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        out[i : i + CHUNK] = x.round().clamp(0, 255).to(torch.uint8)
    return out
