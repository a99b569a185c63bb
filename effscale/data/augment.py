"""Batch augmentation on the training device: no per-image Python in the hot loop.

Images arrive as a uint8 batch [B, 3, S, S] already on the device (airbench's CifarLoader
style). Training: random crop with reflect padding (small images) or random-resized crop
(larger ones), horizontal flip, resize to the variant's resolution (antialiased when
shrinking), normalisation. Evaluation: resize and normalise only. Every random choice comes
from an explicit generator, so a resumed run draws the same augmentations.
"""

import torch
import torch.nn.functional as F

# Below this stored size images are small (CIFAR-like): pad-and-crop keeps all content.
SMALL_IMAGES = 64


def policy_for(stored_px: int) -> str:
    """``crop`` (pad 1/8, random crop) for small images, ``rrc`` (random-resized crop) above."""
    return "crop" if stored_px <= SMALL_IMAGES else "rrc"


def _rand(n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by ``pad`` (reflect) and crop each image back to its size at a random offset."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = (_rand(b, generator, x.device) * (2 * pad + 1)).long()
    dx = (_rand(b, generator, x.device) * (2 * pad + 1)).long()
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # B,1,H,1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # B,1,1,W
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    flip = _rand(x.shape[0], generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_resized_crop(
    x: torch.Tensor, size: int, generator: torch.Generator, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """Inception-style crop of random area and aspect, resampled to ``size``, in one op."""
    b = x.shape[0]
    area = scale[0] + (scale[1] - scale[0]) * _rand(b, generator, x.device)
    log_r = torch.log(torch.tensor(ratio, device=x.device))
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * _rand(b, generator, x.device))
    sw = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (1 - sw) * (2 * _rand(b, generator, x.device) - 1)  # centre, in [-1, 1] units
    cy = (1 - sh) * (2 * _rand(b, generator, x.device) - 1)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    return F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch; antialiased when shrinking."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1]
    )


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8-scale (0..255) floats to zero-mean, unit-variance per channel."""
    m = torch.tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
    return (x.float() - m) / s


def train_transform(
    x: torch.Tensor, size: int, mean, std, generator: torch.Generator, policy: str = "crop"
) -> torch.Tensor:
    """A uint8 batch to an augmented, normalised float batch at ``size`` pixels."""
    if policy == "rrc":
        x = random_resized_crop(x, size, generator)
    else:
        if policy == "crop":
            x = random_crop(x, max(1, x.shape[-1] // 8), generator)
        x = resize(x.float(), size)
    return normalize(random_flip(x, generator), mean, std)


def eval_transform(x: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """A uint8 batch to a normalised float batch at ``size`` pixels, no randomness."""
    return normalize(resize(x.float(), size), mean, std)
