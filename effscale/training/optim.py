"""The optimizer, its learning-rate schedule and the EMA of the weights (a run's and the
compile probe's: effscale.training.loop, effscale.training.compiling)."""

import math

import torch

from effscale.recipe import Recipe, cooldown_start


def get_lr(recipe: Recipe, samples: int, total: int, per_epoch: int) -> float:
    """Learning rate after ``samples`` of ``total`` (robust to batch-size changes).

    1) linear warm-up from 0 over the first ``warmup`` fraction; 2) then cosine or linear
    (one-cycle) decay to 0, or the paper's 0.97 every 2.4 epochs of ``per_epoch`` images.
    WSD: warm-up over ``warmup_samples``, the peak, then linear to 0 over the last
    ``cooldown`` of ``total``: before the cool-down the rate does not depend on ``total``.
    """
    if recipe.schedule == "wsd":
        rise = samples / recipe.warmup_samples if recipe.warmup_samples else 1.0
        start = cooldown_start(recipe, total)
        fall = (total - samples) / (total - start) if samples >= start else 1.0
        return recipe.lr * max(0.0, min(1.0, rise, fall))
    done = samples / total
    if done < recipe.warmup:
        return recipe.lr * done / recipe.warmup
    t = (done - recipe.warmup) / max(1e-12, 1 - recipe.warmup)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    if recipe.schedule == "onecycle":
        return recipe.lr * max(0.0, 1 - t)
    return recipe.lr * 0.97 ** (samples / per_epoch / 2.4)


def make_optimizer(model, recipe: Recipe) -> torch.optim.Optimizer:
    """Weight decay on conv / linear weights only: BN scales and biases are not shrunk."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "rmsprop":  # the paper's: decay 0.9, momentum 0.9, eps 1e-3
        return torch.optim.RMSprop(
            groups, lr=recipe.lr, alpha=0.9, momentum=recipe.momentum, eps=1e-3
        )
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)


@torch.no_grad()
def update_ema(ema, model, decay: float) -> None:
    """EMA of every floating tensor, BN running statistics included (timm's ModelEmaV2);
    the statistics are recomputed before the EMA is evaluated (recompute_bn)."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(m, 1.0 - decay)
        else:
            e.copy_(m)
