"""Batch augmentation on the training device: no per-image decoding in the hot loop.

Images arrive as a uint8 batch [B, 3, S, S] already on the device (airbench's CifarLoader
style). Two policies, chosen by the stored image size:

- small images (CIFAR-like, stored at 64 px or less): random crop with reflect padding and a
  flip, resized to the variant's resolution; evaluation resizes the whole image.
- large images: an Inception-style random-resized crop, resampled with an antialiased
  (triangle) filter so that shrinking a 224 px crop to 64 px does not alias, and a flip;
  evaluation as the official EfficientNet code does it: a centre crop of ``eval_crop``
  (0.875) of the image, resized to the resolution. Train and test images then go through the
  same resampling filter, so the BN statistics and the weights see one input distribution.

Every random choice comes from an explicit generator, so a resumed run draws the same
augmentations.
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


def crop_boxes(
    b: int, side: int, generator: torch.Generator, min_area: float, ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """Random crops (top, left, height, width; a [b, 4] CPU float tensor of whole pixels) of
    a ``side``-px square image, of area ``min_area``..1 of the image and aspect ``ratio``, as
    torchvision's RandomResizedCrop draws them (without its retry loop: sides beyond the
    image are clipped)."""
    area = min_area + (1 - min_area) * _rand(b, generator, "cpu")
    log_r = torch.log(torch.tensor(ratio))
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * _rand(b, generator, "cpu"))
    w = (torch.sqrt(area * aspect) * side).round().clamp(1, side)
    h = (torch.sqrt(area / aspect) * side).round().clamp(1, side)
    top = (_rand(b, generator, "cpu") * (side - h + 1)).floor().clamp(max=side - h)
    left = (_rand(b, generator, "cpu") * (side - w + 1)).floor().clamp(max=side - w)
    return torch.stack([top, left, h, w], 1)


def random_resized_crop(
    x: torch.Tensor, size: int, generator: torch.Generator, min_area: float = 0.25
) -> torch.Tensor:
    """Random-resized crops of a uint8 batch, each resampled to ``size`` with antialiasing.

    The same crops and pixels on every device, computed two ways: on a CPU one resize per
    image (35 ms per batch of 128 at 224 -> 64 px on 2 cores; the batched form's dense
    products cost 3.6 times more there, bench/crop.py), elsewhere as two batched products,
    a fixed number of kernel launches whatever the batch (a GPU pays per launch)."""
    boxes = crop_boxes(x.shape[0], x.shape[-1], generator, min_area)
    if x.device.type == "cpu":
        return resized_crops_per_image(x, boxes, size)
    return resized_crops_batched(x, boxes.to(x.device), size)


def resized_crops_per_image(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (crop_boxes) resized to ``size`` by ``resize``, one call per image."""
    out = torch.empty(x.shape[0], x.shape[1], size, size, device=x.device)
    for i, (top, left, h, w) in enumerate(boxes.int().tolist()):
        out[i] = resize(x[i : i + 1, :, top : top + h, left : left + w].float(), size)[0]
    return out


def resized_crops_batched(x: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """resized_crops_per_image as two batched products, rows then columns: each output pixel
    a weighted sum over its crop, with the weights ``resize`` (F.interpolate) uses."""
    top, left, h, w = boxes.float().unbind(1)
    side = x.shape[-1]
    rows = _resampling_matrix(top, h, side, size)  # [B, size, side]
    cols = _resampling_matrix(left, w, side, size)
    return rows[:, None] @ x.float() @ cols.transpose(1, 2)[:, None]


def _resampling_matrix(start, length, side: int, size: int) -> torch.Tensor:
    """Per image, the [size, side] matrix that resamples pixels start..start+length of one
    axis to ``size`` pixels as F.interpolate's bilinear (align_corners=False, antialias)
    does: a triangle filter centred on each output pixel, widened by the shrink factor
    when shrinking, clipped to the crop and normalised; enlarging, it is plain bilinear."""
    scale = length / size
    support = scale.clamp(min=1.0)  # the filter's half-width in input pixels
    centre = scale[:, None] * (torch.arange(size, device=scale.device) + 0.5)  # [B, size]
    first = (centre - support[:, None] + 0.5).trunc().clamp(min=0)
    end = torch.minimum((centre + support[:, None] + 0.5).trunc(), length[:, None])
    pixel = torch.arange(side, device=scale.device) - start[:, None, None]  # [B, 1, side]
    inside = (pixel >= first[..., None]) & (pixel < end[..., None])
    weight = 1 - ((pixel - centre[..., None] + 0.5) / support[:, None, None]).abs()
    weight = weight.clamp(min=0) * inside
    return weight / weight.sum(-1, keepdim=True)


def center_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The central ``fraction`` of each image's side (the official eval crop is 0.875)."""
    if fraction >= 1:
        return x
    side = x.shape[-1]
    keep = max(1, round(side * fraction))
    start = (side - keep) // 2
    return x[..., start : start + keep, start : start + keep]


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch; antialiased when shrinking."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = size < x.shape[-1] or size < x.shape[-2]
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8-scale (0..255) floats to zero-mean, unit-variance per channel."""
    m = torch.tensor(mean, device=x.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, device=x.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
    return (x.float() - m) / s


def train_transform(
    x: torch.Tensor,
    size: int,
    mean,
    std,
    generator: torch.Generator,
    policy: str = "crop",
    min_area: float = 0.25,
) -> torch.Tensor:
    """A uint8 batch to an augmented, normalised float batch at ``size`` pixels."""
    if policy == "rrc":
        x = random_resized_crop(x, size, generator, min_area)
    else:
        if policy == "crop":
            x = random_crop(x, max(1, x.shape[-1] // 8), generator)
        x = resize(x.float(), size)
    return normalize(random_flip(x, generator), mean, std)


def eval_transform(x: torch.Tensor, size: int, mean, std, crop: float = 1.0) -> torch.Tensor:
    """A uint8 batch to a normalised float batch at ``size`` pixels, no randomness: the
    central ``crop`` of each image (all of it by default), resized."""
    return normalize(resize(center_crop(x, crop).float(), size), mean, std)
