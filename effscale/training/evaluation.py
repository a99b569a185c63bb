"""Evaluation of a run: the test split as model inputs, top-1/top-5 and loss, and pycls's
precise BN (running statistics recomputed on training images before each evaluation)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from effscale.data.augment import eval_transform, policy_for
from effscale.data.dataset import ImageDataset
from effscale.recipe import Recipe, batch_bounds
from effscale.scaling import Variant


@dataclass(frozen=True)
class Preprocess:
    """How images reach the model: the train policy and the evaluation centre crop."""

    size: int  # the variant's resolution
    policy: str  # crop, rrc, flip or none (effscale.data.augment)
    min_area: float  # smallest random-resized crop
    eval_crop: float  # central fraction of the image evaluated (1: all of it)

    @classmethod
    def of(cls, variant: Variant, data: ImageDataset, recipe: Recipe) -> "Preprocess":
        policy = policy_for(data.resolution) if recipe.aug == "auto" else recipe.aug
        crop = recipe.eval_crop if policy == "rrc" else 1.0  # small images: keep it all
        return cls(variant.resolution, policy, recipe.crop_area, crop)


def autocast(device, recipe: Recipe):
    if device.type == "cuda" and recipe.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def model_input(x, data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    x = eval_transform(x.to(device), prep.size, data.mean, data.std, prep.eval_crop)
    return x.contiguous(memory_format=torch.channels_last) if recipe.channels_last else x


def test_batches(data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    """The test split as model inputs and labels, batch by batch (deterministic)."""
    if data.streaming:
        from effscale.data import stream_batches

        batches = stream_batches(data.test_images, recipe.eval_batch_size, shuffle=False)
    else:
        batches = (
            (
                data.test_images[i : i + recipe.eval_batch_size],
                data.test_labels[i : i + recipe.eval_batch_size],
            )
            for i in range(0, len(data.test_labels), recipe.eval_batch_size)
        )
    for x, y in batches:
        yield model_input(x, data, prep, recipe, device), y.to(device)


def prepared_test_set(data: ImageDataset, prep: Preprocess, recipe: Recipe, device):
    """The test inputs, resized once for the whole run when they fit in EVAL_CACHE_BYTES
    (resizing 224 px images is a third of an evaluation's time); else None."""
    nbytes = len(data.test_labels) * 3 * prep.size**2 * 4
    if data.streaming or nbytes > EVAL_CACHE_BYTES:
        return None
    return list(test_batches(data, prep, recipe, device))


EVAL_CACHE_BYTES = 1 << 30


@torch.no_grad()
def evaluate(model, data: ImageDataset, prep: Preprocess, recipe: Recipe, device, inputs=None):
    """Top-1, top-5 (percent) and mean cross-entropy on the test split (``inputs``: the
    batches of prepared_test_set, to skip the preprocessing)."""
    model.eval()
    n, loss, top1, top5 = 0, 0.0, 0, 0
    for x, y in inputs if inputs is not None else test_batches(data, prep, recipe, device):
        with autocast(device, recipe):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
        n += len(y)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n}


def bn_batches(data: ImageDataset, prep: Preprocess, recipe: Recipe, seed: int, device):
    """A fixed, seeded sample of ``recipe.bn_images`` training images, as model inputs with
    evaluation preprocessing, in equal batches (each weighs the same in recompute_bn)."""
    n = len(data.train_labels)
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    idx = idx[: min(recipe.bn_images, n)]  # shuffled: a batch of one class has its own stats
    if data.streaming:
        images = torch.stack([data.train_images[i][0] for i in idx.tolist()])
    else:
        images = data.train_images[idx.to(data.train_images.device)]
    bounds = batch_bounds(len(images), recipe.batch_size, recipe.protocol) if len(images) else [0]
    return [
        model_input(images[a:b], data, prep, recipe, device) for a, b in zip(bounds, bounds[1:])
    ]


def bn_image_count(n_train: int, recipe: Recipe) -> int:
    """The training images BN statistics are recomputed on (bn_batches): before protocol 3,
    only its full batches of the sample."""
    m, b = min(recipe.bn_images, n_train), recipe.batch_size
    return m if recipe.protocol >= 3 or m < b else m // b * b


@torch.no_grad()
def recompute_bn(model, batches: list, recipe: Recipe, device) -> None:
    """Set every BN layer's running statistics to their average over ``batches`` (training
    images with evaluation preprocessing, bn_batches), the rest of the model in eval mode:
    pycls's precise BN.

    Why: an EMA of the weights averages the BN statistics too, and early in a run those
    averages do not fit the averaged weights (Imagenette, B0: chance-level top-1 for three
    epochs, 51 % with recomputed statistics); and the statistics gathered on train crops do
    not fit test images. Cost: one forward pass over the batches per evaluation.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    momenta = [bn.momentum for bn in norms]
    model.eval()  # dropout and stochastic depth off: statistics of the network evaluated
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches below
        bn.train()
    for x in batches:
        with autocast(device, recipe):
            model(x)
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    model.eval()
