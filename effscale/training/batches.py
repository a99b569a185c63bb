"""The batches of an epoch, on the training device, and how many samples a run trains.

Under protocol 3 (effscale.recipe.PROTOCOL) an epoch is a full pass: every training image
once, in batches of near-equal size (recipe.batch_bounds); protocol-2 points, which kept
full batches only, are trained as they were.
"""

from dataclasses import replace

import torch

from effscale.data.dataset import ImageDataset
from effscale.recipe import Recipe, batch_bounds, epoch_samples


def train_batches(data: ImageDataset, epoch: int, batch_size: int, seed: int, recipe: Recipe,
                  device, start: int = 0):  # fmt: skip
    """This epoch's shuffled uint8 batches, the same order on resume; ``start``: batches
    already trained (a checkpoint written inside the epoch)."""
    order = torch.Generator().manual_seed(seed * 100_003 + epoch)
    n, protocol = len(data.train_labels), recipe.protocol
    bounds = batch_bounds(n, batch_size, protocol)
    if data.streaming:
        from effscale.data import stream_batches

        size = max(b - a for a, b in zip(bounds, bounds[1:]))  # the largest of near-equal ones
        batches = stream_batches(
            data.train_images, size, shuffle=True, seed=seed * 100_003 + epoch,
            drop_last=protocol < 3,
        )  # fmt: skip
        for i, (x, y) in enumerate(batches):
            if i >= start:
                yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return
    perm = torch.randperm(n, generator=order).to(device)
    for i in range(start, len(bounds) - 1):
        idx = perm[bounds[i] : bounds[i + 1]]
        yield data.train_images[idx], data.train_labels[idx]


def planned_samples(budget: int, per_epoch: int) -> int:
    """A budget longer than an epoch is rounded to whole epochs (no stub epoch at the end,
    so ``--epochs 4`` is four passes); a shorter one is trained as a partial epoch."""
    return budget if budget < per_epoch else max(1, round(budget / per_epoch)) * per_epoch


def samples_trained(n_images: int, recipe: Recipe) -> int:
    """The samples a run trains on a set of ``n_images``: its budget rounded to whole
    epochs or, when shorter than one, to whole batches (protocol 3's batches are of
    near-equal size, so a budget can fall inside one: 4,096 of 10,000 images at batch 64
    trains 65 batches, 4,140 samples, and every number says 4,140)."""
    per_epoch = epoch_samples(n_images, recipe.batch_size, recipe.protocol)
    total = planned_samples(recipe.samples, per_epoch)
    if recipe.protocol >= 3 and total < per_epoch:
        total = next(b for b in batch_bounds(n_images, recipe.batch_size, 3) if b >= total)
    return total


def total_samples(data: ImageDataset, recipe: Recipe) -> int:
    """The samples a run on ``data`` trains (samples_trained)."""
    return samples_trained(len(data.train_labels), recipe)


def to_device(data: ImageDataset, device) -> ImageDataset:
    """In-memory sets move to the training device once, as uint8."""
    if data.streaming or device.type == "cpu":
        return data
    names = ("train_images", "train_labels", "test_images", "test_labels")
    return replace(data, **{k: getattr(data, k).to(device) for k in names})
