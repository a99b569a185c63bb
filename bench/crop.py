"""Benchmark: the random-resized crop per image (a loop of F.interpolate calls) against the
batched form (two products with per-image resampling matrices), measured in one run.

For each resize (224 -> 64 px and 224 -> 224 px) and batch (128, 512): milliseconds per
batch of each form, their ratio, the largest difference between them (0..255 scale), and
each as a share of one training step of B0 at width 0.25 at that resolution and batch
(forward, backward and SGD update, channels_last as effscale trains on the device).

    python bench/crop.py [--device cpu|cuda] [--threads N] [--repeats 3]

On a CPU effscale uses the loop (random_resized_crop picks by device); elsewhere the batched
form. Measure on an otherwise idle machine: ratios taken beside other work are not
comparable.
"""

import argparse
import time
from functools import partial

import torch
import torch.nn.functional as F

from effscale.data.augment import crop_boxes, resized_crops_batched, resized_crops_per_image
from effscale.scaling import make_variant
from effscale.zoo import build_model


def timed(fn, repeats: int, device) -> float:
    """Seconds per call (after one warm-up call), synchronised on CUDA."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def step_seconds(resolution: int, batch: int, device, repeats: int) -> float:
    variant = make_variant("efficientnet-b0", 1.0, 1.0, 1.0, base_resolution=resolution,
                           base_width=0.25)  # fmt: skip
    model = build_model(variant, 10).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, resolution, resolution, device=device)
    x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return timed(step, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("side -> px  batch   loop ms  batched ms  loop/batched  max diff  "
          "step ms  loop/step  batched/step")  # fmt: skip
    for size in (64, 224):
        for batch in (128, 512):
            x = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8, device=device)
            boxes = crop_boxes(batch, 224, torch.Generator().manual_seed(0), 0.35)
            loop = timed(partial(resized_crops_per_image, x, boxes, size), args.repeats, device)
            dev_boxes = boxes.to(device)
            batched = timed(
                partial(resized_crops_batched, x, dev_boxes, size), args.repeats, device
            )
            diff = (resized_crops_per_image(x, boxes, size)
                    - resized_crops_batched(x, dev_boxes, size)).abs().max().item()  # fmt: skip
            step = step_seconds(size, batch, device, args.repeats)
            print(f"224 -> {size:>3}  {batch:>5}  {loop * 1e3:>8.1f}  {batched * 1e3:>10.1f}  "
                  f"{loop / batched:>12.2f}  {diff:>8.1e}  {step * 1e3:>7.0f}  "
                  f"{loop / step:>9.1%}  {batched / step:>12.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
