"""Training recipes: one dataclass, named budgets, and the paper's regularisation schedule.

Budgets count training samples seen, not epochs, so a point's compute is FLOPs x samples
whatever the dataset's size. ``short`` is the brief recipe studies use; it was tuned on
this project's 2-core CPU for a small seed spread (see README, "Training").
"""

import math
from dataclasses import dataclass, fields, replace

from effscale import limits
from effscale.errors import EffscaleError


@dataclass(frozen=True)
class Recipe:
    samples: int = 100_000  # training images seen in total (epochs follow from the set size)
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd (Nesterov momentum) or rmsprop (the paper's)
    lr: float = 0.1  # peak learning rate at batch_size; halved with the batch on CUDA OOM
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on conv and linear weights only: never BN, never biases
    label_smoothing: float = 0.1
    warmup: float = 0.1  # fraction of all steps spent in linear warm-up from 0
    schedule: str = "cosine"  # cosine or onecycle (to 0), exponential (0.97 per 2.4 epochs), wsd
    ema: float = 0.0  # half-life of a weight EMA, as a fraction of all steps; 0: none
    regularization: float = 1.0  # x the paper's dropout (0.2 ... 0.5) and stochastic depth
    aug: str = "auto"  # auto, crop (pad + crop), rrc (random-resized crop), flip, none
    eval_batch_size: int = 500
    amp: bool = True  # bf16 / fp16 autocast, on CUDA only
    channels_last: bool = True  # B0 2.4x faster on one of our CPUs (equal on another), and on GPUs
    # -- added with protocol 2 (see PROTOCOL) ---------------------------------------------
    protocol: int = 3  # version of the training and evaluation procedure (PROTOCOL)
    bn_images: int = 512  # training images the evaluated model's BN statistics are recomputed
    #                       on (eval preprocessing, fixed per seed) before each evaluation
    crop_area: float = 0.35  # smallest area of a random-resized crop (large images): on
    #                         Imagenette B0 w0.25 at 64 px, 72.4 % (3 seeds) against 70.7 at 0.25
    eval_crop: float = 0.875  # centre-crop fraction at evaluation, large images (official)
    # -- the warmup-stable-decay schedule (schedule = "wsd"): warm-up over a fixed number of
    # samples, the peak rate, then a linear cool-down to 0 over the last ``cooldown`` of the
    # budget. Before its cool-down a run does not depend on its budget, so every budget of a
    # study branches off one run to the longest (effscale.study.branches).
    cooldown: float = 0.2  # fraction of the budget
    warmup_samples: int = 10_000  # the same for every budget (cosine uses ``warmup``)

    def to_dict(self) -> dict:
        """The serialised recipe; a point's key hashes it, so it must not change for stored
        points: fields added later are left out at the value older points had, and a
        protocol-1 recipe writes the fields it had then."""
        d = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ADDED or value != ADDED[f.name]:
                d[f.name] = value
        if self.protocol == 1:
            d.update(REMOVED)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """A recipe as to_dict wrote it, now or before a field was added or removed."""
        known = {f.name for f in fields(cls)}
        return cls(**{**ADDED, **{k: v for k, v in d.items() if k in known}})

    def validate(self) -> "Recipe":
        checks = [
            (self.samples >= 1, f"samples must be at least 1, got {self.samples}"),
            (self.samples <= limits.MAX_SAMPLES, f"samples {self.samples:,} is beyond reason"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (
                self.batch_size <= limits.MAX_BATCH and self.eval_batch_size <= limits.MAX_BATCH,
                f"batch sizes are at most {limits.MAX_BATCH:,}",
            ),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be positive, got {self.lr}"),
            (self.optimizer in ("sgd", "rmsprop"), f"unknown optimizer {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}"),
            (0 < self.cooldown <= 1, f"cooldown is a fraction in (0, 1], got {self.cooldown}"),
            (
                self.warmup_samples >= 0,
                f"warmup_samples must be 0 or more, got {self.warmup_samples}",
            ),
            (self.aug in ("auto", "crop", "rrc", "flip", "none"), f"unknown aug {self.aug!r}"),
            (0 <= self.warmup < 1, f"warmup is a fraction of steps in [0, 1), got {self.warmup}"),
            (self.regularization >= 0, "regularization must be non-negative"),
            (self.bn_images >= 0, f"bn_images must be 0 or more, got {self.bn_images}"),
            (0 < self.crop_area <= 1, f"crop_area is a fraction in (0, 1], got {self.crop_area}"),
            (0 < self.eval_crop <= 1, f"eval_crop is a fraction in (0, 1], got {self.eval_crop}"),
            (
                self.weight_decay >= 0 and math.isfinite(self.weight_decay),
                f"weight_decay must be 0 or more, got {self.weight_decay}",
            ),
            (0 <= self.momentum < 1, f"momentum is a fraction in [0, 1), got {self.momentum}"),
            (
                0 <= self.label_smoothing < 1,
                f"label_smoothing is a fraction in [0, 1), got {self.label_smoothing}",
            ),
            (0 <= self.ema < 1, f"ema is a fraction of all steps in [0, 1), got {self.ema}"),
            (
                self.eval_batch_size >= 1,
                f"eval_batch_size must be at least 1, got {self.eval_batch_size}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise EffscaleError(message, "see `effscale train --help`")
        return self


SCHEDULES = ("cosine", "onecycle", "exponential", "wsd")


def cooldown_start(recipe: Recipe, total: int) -> float:
    """The sample at which a WSD run of ``total`` samples starts its cool-down."""
    return (1 - recipe.cooldown) * total


# The training and evaluation procedure, versioned: points made one way are never compared
# with (nor reused as) points made another way, since their keys differ.
#   1: until 2026-12-01. Evaluated with the EMA's averaged BN statistics (at chance for the
#      first epochs on Imagenette), train crops resampled without antialiasing, evaluation
#      of the whole image. Points of protocol 1 can be reported, not trained.
#   2: BN statistics of the evaluated model recomputed on ``bn_images`` training images
#      before each evaluation (pycls's precise BN); antialiased random-resized crops of
#      ``crop_area``..1; evaluation on a centre crop of ``eval_crop`` (large images only).
#   3: an epoch is a full pass: every training image once, in batches of near-equal size
#      (at most ``batch_size``), and BN statistics recomputed on all ``bn_images`` images.
#      Before it, only full batches were kept (240 images at batch 128: 128 per "epoch"),
#      so ``--epochs 2`` did not train two passes. Points of protocol 2 can still be
#      trained (a study file pins ``protocol = 2`` to extend its stored points).
PROTOCOL = 3
TRAINABLE_PROTOCOLS = (2, 3)
# Fields added since the first stored points, at the value those points had.
ADDED = {"protocol": 1, "bn_images": 0, "crop_area": 0.25, "eval_crop": 1.0}
ADDED |= {"cooldown": 0.2, "warmup_samples": 10_000}  # used by wsd alone: keys keep
# Fields protocol-1 recipes had and later ones do not (compile became a run option).
REMOVED = {"compile": False}

BUDGETS: dict[str, Recipe] = {
    # Seconds: proves the pipeline end to end (tests, CI, the quick study).
    "smoke": Recipe(samples=4_096, batch_size=64, lr=0.05, warmup=0.2, regularization=0.0),
    # Minutes per small point on a CPU: the brief recipe of studies. Tuned on full CIFAR-10
    # with B0 at width 0.5 (small-input stem): 68.2 +- 0.25 % top-1 over 3 seeds; lr 0.1 gave
    # 68.6 +- 1.1, lr 0.05 66.1 +- 0.7; a longer EMA (15 % half-life) cost 17 points.
    "short": Recipe(samples=100_000, batch_size=128, lr=0.07, ema=0.05, regularization=0.0),
    # The paper's ImageNet recipe (Section 5.2): RMSProp, 350 epochs of 1.28 M images,
    # lr 0.256 at batch 4096 (0.016 at 256), decay 0.97 every 2.4 epochs, wd 1e-5, EMA.
    "paper": Recipe(
        samples=350 * 1_281_167,
        batch_size=256,
        optimizer="rmsprop",
        lr=0.016,
        weight_decay=1e-5,
        warmup=5 / 350,
        schedule="exponential",
        ema=0.004,
        aug="rrc",
    ),
}


def budget(name: str, **overrides) -> Recipe:
    """A named budget with explicit overrides (``None`` values keep the budget's own)."""
    if name not in BUDGETS:
        raise EffscaleError(f"unknown budget {name!r}", f"choose one of {', '.join(BUDGETS)}")
    known = {f.name for f in fields(Recipe)}
    unknown = set(overrides) - known
    if unknown:
        raise EffscaleError(
            f"unknown recipe field(s): {', '.join(sorted(unknown))}",
            f"known: {', '.join(sorted(known))}",
        )
    return replace(BUDGETS[name], **{k: v for k, v in overrides.items() if v is not None})


def batches_per_epoch(n_images: int, batch_size: int, protocol: int = PROTOCOL) -> int:
    """Protocol 3: every image once, in ceil(n / batch_size) batches of near-equal size;
    before it, full batches only (one short batch when the set is smaller than one)."""
    if protocol >= 3:
        return max(1, math.ceil(n_images / batch_size))
    return max(1, n_images // batch_size)


def batch_bounds(n_images: int, batch_size: int, protocol: int = PROTOCOL) -> list[int]:
    """Where each batch of an epoch starts and ends in the shuffled order: k + 1 offsets
    for k batches (protocol 3: sizes differ by at most one image, so no batch is a stub)."""
    k = batches_per_epoch(n_images, batch_size, protocol)
    if protocol >= 3:
        return [i * n_images // k for i in range(k + 1)]
    return [min(i * batch_size, n_images) for i in range(k + 1)]


def epoch_samples(n_images: int, batch_size: int, protocol: int = PROTOCOL) -> int:
    """The samples one epoch trains: the whole set from protocol 3 on; before it, its full
    batches (counted as full even when a set smaller than a batch made the one batch short)."""
    if protocol >= 3:
        return n_images
    return batches_per_epoch(n_images, batch_size, protocol) * batch_size


def samples_for_epochs(epochs: float, per_epoch: int) -> int:
    """``--epochs`` as a budget in samples: that many passes over ``per_epoch`` images."""
    if not (epochs > 0 and math.isfinite(epochs)):
        raise EffscaleError(
            f"`epochs` must be a positive number, got {epochs:g}", "write e.g. `epochs`=3"
        )
    limits.at_most("`epochs`", epochs, limits.MAX_EPOCHS)
    return max(1, int(epochs * per_epoch))


def paper_dropout(flops_ratio: float) -> float:
    """Dropout rising from 0.2 (B0) to 0.5 (B7) with size, as the official table does.

    The table steps about 0.05 per doubling of FLOPs (B1 0.2, B3 0.3, B5 0.4, B7 0.5);
    this is that line in log2 of the realised FLOPs ratio, clipped to [0.2, 0.5].
    """
    return min(0.5, 0.2 + 0.05 * max(0.0, math.log2(max(flops_ratio, 1e-9))))


DROP_PATH = 0.2  # stochastic depth at the last block (official survival probability 0.8)


_SUFFIX = {"k": 1_000, "m": 1_000_000}


def parse_budgets(text: str | int | list) -> list[int]:
    """Training budgets in samples: ``100k,200k``, ``1.5M``, ``100_000`` or a list of them.

    Each budget becomes points of their own in a study (a point's key holds its samples)."""
    parts = text if isinstance(text, list) else str(text).split(",")
    out = []
    for part in parts:
        s = str(part).strip().lower().replace("_", "")
        scale = _SUFFIX.get(s[-1:], 1)
        try:
            value = float(s[:-1] if s[-1:] in _SUFFIX else s) * scale
        except ValueError:
            value = float("nan")
        if isinstance(part, bool) or not math.isfinite(value) or value < 1 or value != int(value):
            raise EffscaleError(
                f"budget {part!r} is not a positive whole number of samples",
                "a budget is a count of samples such as 100000, 100k or 1.5M; several: 100k,200k",
            )
        limits.at_most("budget", value, limits.MAX_SAMPLES, "a budget counts samples")
        out.append(int(value))
    if not out or (isinstance(text, str) and not text.strip()):
        raise EffscaleError("no training budget given", "write e.g. 100k, or 100k,200k for two")
    return sorted(set(out))
