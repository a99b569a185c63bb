"""Benchmark: effscale's training throughput against two baselines, measured in one run.

Same variant, batch size, device, optimizer and loss for all three:
  (a) effscale.training.loop.train (uint8 images in memory, crop/flip/normalise in batches on the
      device) over a bare loop on pre-made, already normalised tensors: the data pipeline's
      overhead (target >= 0.95);
  (b) effscale over a conventional pipeline: a torch DataLoader over the JPEG ImageFolder,
      per-image PIL decode, pad-and-crop, flip, to-tensor, normalise (target >= 1.4);
  (c) achieved FLOP/s (3 x forward multiply-adds x 2 x images/s) over the device's measured
      dense fp32 matmul FLOP/s;
  (d) the data paths alone, without a model: what each costs per image;
  (e) with --compile: the bare loop eager and torch.compile'd, their ratio, the compile
      seconds (the first compiled step, with inductor's cache in a fresh directory, so cold),
      and the MFU of each (achieved FLOP/s over the measured dense matmul FLOP/s). Without
      --data, only (e) and the matmul rate run, on the variant given by --width/--resolution.

    python bench/train_throughput.py --data /path/to/cifar10 [--samples 12800] [--stem standard]
    python bench/train_throughput.py --compile-only --width 0.25 --resolution 64

(b) cannot exceed the bare loop over the conventional pipeline, which the benchmark prints as
its ceiling. How close (b) can come to 1.4 depends on how much of a step the model takes: the
small-input stem (the default at 32 px) makes B0's step about 4x costlier than the standard
stride-2 stem, which leaves the conventional pipeline a smaller share to lose. For reference
only, it also prints the conventional pipeline feeding the NCHW step most scripts run
(effscale's step is channels_last).

--data is an ImageFolder tree (train/<class>/*.jpg), e.g. the CIFAR-10 JPEG tarball unpacked.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from effscale.cost import count_cost
from effscale.data import load_dataset
from effscale.data.augment import train_transform
from effscale.hardware import cpu_name
from effscale.recipe import budget
from effscale.scaling import make_variant
from effscale.training.loop import make_optimizer, train
from effscale.zoo import build_model


def step_fn(model, optimizer, recipe, memory_format=torch.channels_last):
    def step(x, y):
        x = x.contiguous(memory_format=memory_format)
        loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bare_loop(variant, recipe, steps, num_classes) -> float:
    """Images/s of the model step alone: one pre-made normalised batch, reused."""
    torch.manual_seed(0)
    model = build_model(variant, num_classes).to(memory_format=torch.channels_last)
    step = step_fn(model, make_optimizer(model, recipe), recipe)
    x = torch.randn(recipe.batch_size, 3, variant.resolution, variant.resolution)
    y = torch.randint(0, num_classes, (recipe.batch_size,))
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * recipe.batch_size / (time.perf_counter() - start)


class JpegFolder(torch.utils.data.Dataset):
    """The conventional pipeline, one image at a time, as torchvision's ImageFolder with
    RandomCrop(padding), RandomHorizontalFlip, ToTensor and Normalize does it (written out
    here with PIL and torch, since torchvision is not a dependency)."""

    def __init__(self, root: Path, mean, std):
        classes = sorted(p.name for p in (root / "train").iterdir())
        self.files = [
            (f, i) for i, c in enumerate(classes) for f in sorted((root / "train" / c).iterdir())
        ]
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        path, label = self.files[i]
        img = Image.open(path).convert("RGB")  # decode
        w, h = img.size
        pad = w // 8
        img = ImageOps.expand(img, border=pad, fill=0)  # RandomCrop(padding=pad)
        x, y = np.random.randint(0, 2 * pad + 1, size=2)
        img = img.crop((x, y, x + w, y + h))
        if np.random.rand() < 0.5:  # RandomHorizontalFlip
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()  # ToTensor
        t = t.float().div(255)
        return (t - self.mean) / self.std, label  # Normalize


def compiled_loop(variant, recipe, steps, num_classes) -> tuple[float, float]:
    """Images/s of the bare loop with torch.compile, and the seconds its first step took
    (the compile), with inductor's on-disk cache in a fresh directory (a cold compile)."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        torch.manual_seed(0)
        model = build_model(variant, num_classes).to(memory_format=torch.channels_last)
        compiled = torch.compile(model)
        step = step_fn(compiled, make_optimizer(model, recipe), recipe)
        x = torch.randn(recipe.batch_size, 3, variant.resolution, variant.resolution)
        y = torch.randint(0, num_classes, (recipe.batch_size,))
        start = time.perf_counter()
        step(x, y)
        compile_seconds = time.perf_counter() - start
        step(x, y)
        start = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        return steps * recipe.batch_size / (time.perf_counter() - start), compile_seconds


def compile_report(variant, recipe, steps, num_classes) -> None:
    """(e): eager and compiled bare loops in one run, their ratio, compile seconds, MFU."""
    macs = count_cost(variant, num_classes).flops
    peak = matmul_flops()
    eager = bare_loop(variant, recipe, steps, num_classes)
    compiled, compile_seconds = compiled_loop(variant, recipe, steps, num_classes)
    mfu = {k: 3 * macs * 2 * v / peak for k, v in (("eager", eager), ("compiled", compiled))}
    print(
        f"(e) {variant.label}, batch {recipe.batch_size}, {torch.get_num_threads()} threads: "
        f"eager {eager:.0f} img/s (MFU {mfu['eager']:.1%}), compiled {compiled:.0f} img/s "
        f"(MFU {mfu['compiled']:.1%}): {compiled / eager:.2f}x; cold compile "
        f"{compile_seconds:.0f} s; dense matmul {peak / 1e9:.1f} GFLOP/s"
    )


def conventional(
    variant, recipe, steps, root, mean, std, num_classes, workers, memory_format=torch.channels_last
) -> float:
    """The conventional pipeline feeding the same step as effscale's (channels_last), or, with
    memory_format=torch.contiguous_format, the NCHW step most training scripts run."""
    torch.manual_seed(0)
    model = build_model(variant, num_classes).to(memory_format=memory_format)
    step = step_fn(model, make_optimizer(model, recipe), recipe, memory_format)
    loader = torch.utils.data.DataLoader(
        JpegFolder(root, mean, std),
        recipe.batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    batches = iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    return steps * recipe.batch_size / (time.perf_counter() - start)


def pipeline_only(data, variant, batch_size, steps, root, workers) -> tuple[float, float]:
    """Images/s of each data path alone, no model: effscale's batched augmentation on
    uint8 tensors in memory vs the conventional per-image DataLoader."""
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data.train_labels), generator=g)
    start = time.perf_counter()
    for i in range(steps):
        idx = perm[i * batch_size : (i + 1) * batch_size]
        x = train_transform(data.train_images[idx], variant.resolution, data.mean, data.std, g)
        x.contiguous(memory_format=torch.channels_last)
    ours = steps * batch_size / (time.perf_counter() - start)
    loader = torch.utils.data.DataLoader(
        JpegFolder(root, data.mean, data.std),
        batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
    )
    batches = iter(loader)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return ours, steps * batch_size / (time.perf_counter() - start)


def effscale_run(variant, recipe, data) -> float:
    with tempfile.TemporaryDirectory() as out:
        train(variant, data, recipe, out, device="cpu")
        metrics = Path(out, "metrics.jsonl").read_text().splitlines()
    import json

    m = json.loads(metrics[0])
    return m["images_per_s"]


def matmul_flops(n=2048, repeats=10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ImageFolder root (train/<class>/...)")
    parser.add_argument("--compile", action="store_true", help="also (e): eager vs compiled")
    parser.add_argument("--compile-only", action="store_true", help="only (e), no --data")
    parser.add_argument("--resolution", type=int, default=None, help="with --compile-only")
    parser.add_argument("--model", default="efficientnet-b0")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument(
        "--stem",
        choices=["auto", "small-input", "standard"],
        default="auto",
        help="small-input stem (auto below 64 px) or the standard stride-2 stem",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=12_800)
    parser.add_argument("--workers", default="0,1,2", help="DataLoader workers to try for (b)")
    args = parser.parse_args()
    small_input = {"auto": None, "small-input": True, "standard": False}[args.stem]
    recipe = budget("short", samples=args.samples, batch_size=args.batch_size, ema=0.0)
    steps = args.samples // args.batch_size
    if args.compile_only:
        variant = make_variant(
            args.model, base_width=args.width, base_resolution=args.resolution or 64,
            small_input=small_input,
        )  # fmt: skip
        print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
        compile_report(variant, recipe, min(steps, 20), 10)
        return
    if not args.data:
        parser.error("--data is required unless --compile-only")
    data = load_dataset(args.data)
    variant = make_variant(
        args.model, w=args.width, base_resolution=data.resolution, small_input=small_input
    )
    macs = count_cost(variant, data.num_classes).flops

    ours = effscale_run(variant, recipe, data)
    bare = bare_loop(variant, recipe, steps, data.num_classes)
    conv = {
        w: conventional(
            variant, recipe, steps, Path(args.data), data.mean, data.std, data.num_classes, w
        )
        for w in map(int, args.workers.split(","))
    }
    best_w = max(conv, key=conv.get)
    conv_nchw = conventional(
        variant,
        recipe,
        steps,
        Path(args.data),
        data.mean,
        data.std,
        data.num_classes,
        best_w,
        torch.contiguous_format,
    )
    pipe_ours, pipe_conv = pipeline_only(
        data, variant, args.batch_size, steps, Path(args.data), best_w
    )
    peak = matmul_flops()
    achieved = 3 * macs * 2 * ours

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"variant: {variant.label}, batch {args.batch_size}, {steps} steps, "
        f"{macs / 1e6:.1f} M multiply-adds per image"
    )
    print(f"effscale train():            {ours:8.0f} img/s")
    print(f"bare loop, pre-made tensors: {bare:8.0f} img/s")
    for w, v in conv.items():
        print(f"DataLoader + PIL, {w} workers:  {v:8.0f} img/s")
    print(f"(a) effscale / bare loop:            {ours / bare:.2f}  (target >= 0.95)")
    print(
        f"(b) effscale / conventional (best, {best_w} workers): {ours / conv[best_w]:.2f}"
        f"  (target >= 1.4)"
    )
    print(
        f"    ceiling for (b): bare loop / conventional = {bare / conv[best_w]:.2f}: no data path "
        f"can do better on this variant and device"
    )
    print(
        f"    not the target, for reference: conventional with the NCHW step most scripts run "
        f"({best_w} workers): {conv_nchw:.0f} img/s; effscale / that: {ours / conv_nchw:.2f}"
    )
    print(
        f"(d) data path alone, no model: effscale {pipe_ours:,.0f} img/s, conventional "
        f"({best_w} workers) {pipe_conv:,.0f} img/s: {pipe_ours / pipe_conv:.1f}x"
    )
    print(
        f"(c) achieved {achieved / 1e9:.1f} GFLOP/s of {peak / 1e9:.1f} GFLOP/s dense matmul: "
        f"{achieved / peak:.2f}"
    )
    if args.compile:
        compile_report(variant, recipe, min(steps, 20), data.num_classes)


if __name__ == "__main__":
    main()
