"""Benchmark: a smoke study through a local Ray with 2 single-thread workers against 1 worker.

The same study (one tiny variant, --points seeds, the synthetic set, the smoke budget) runs
twice into fresh temporary run directories: on a local Ray with 1 CPU, then with 2 CPUs,
each point a Ray task of 1 CPU and 1 torch thread. The wall time of run_study is measured
(Ray's own start is not); the ratio of the two is the speed-up (target >= 1.6 on 2 cores).
Both runs are measured in this one process, with the cost cache and data warmed first.

    python bench/ray_speedup.py [--points 8] [--samples 4096]
"""

import argparse
import os
import platform
import tempfile
import time

import torch

from effscale.cost import count_cost
from effscale.data.cache import dataset
from effscale.recipe import budget
from effscale.study.engine import run_study
from effscale.study.executors.ray import RayExecutor
from effscale.study.plan import Base, Study, plan_sweep


def smoke_study(points: int, samples: int) -> Study:
    study = Study("ray-speedup", {"kind": "bench"})
    base = Base("resnet18", 32, base_width=0.25, base_depth=0.5)
    recipe = budget("smoke", samples=samples, batch_size=64)
    study.add_all(plan_sweep(base, "width", [1.0], list(range(points)), recipe, "synthetic"))
    return study


def timed_run(study: Study, workers: int) -> tuple[float, float]:
    """Wall seconds of the study on a local Ray of ``workers`` CPUs, and the points' own
    training seconds summed."""
    executor = RayExecutor(num_cpus=workers, cpus_per_point=1)
    executor.connect()
    try:
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            df = run_study(study, out, executor=executor, device="cpu")
            wall = time.perf_counter() - start
    finally:
        executor.close()
    assert len(df) == len(study.points) and (df["status"] == "done").all()
    return wall, float(df["train_seconds"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 8 points: each new Ray worker pays about 3 s of start-up (torch import, data, first
    # build), which 4 points of 3 s each cannot amortise (1.54x measured at 4, 1.72x at 8).
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4096, help="training samples per point")
    args = parser.parse_args()

    study = smoke_study(args.points, args.samples)
    for p in study.points:  # the driver counts costs to order points: not part of the race
        count_cost(p.variant)
    dataset("synthetic")
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# {len(study.points)} points of {study.points[0].variant.label}, {args.samples} samples"
    )
    times = {}
    for workers in (1, 2):
        wall, train_s = timed_run(study, workers)
        times[workers] = wall
        print(f"workers={workers}  wall={wall:7.2f} s  training (sum over points)={train_s:7.2f} s")
    print(f"speed-up 2 workers vs 1: {times[1] / times[2]:.2f}x (target >= 1.6)")


if __name__ == "__main__":
    main()
