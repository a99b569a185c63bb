"""Benchmark: the B0-B7 cost table (`effscale table efficientnet`), cold and warm.

Cold: an empty cost cache and the shipped costs ignored (EFFSCALE_SHIPPED_COSTS=0), so every
variant is built and traced by fvcore. Warm: the same
command again, answered from the on-disk cache. Both are whole CLI processes, interpreter
and torch import included, measured in one run on this machine.

    python bench/cost_table.py [--repeats 3]
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, env) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "effscale", "table", "efficientnet", "--format", "json"]
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            # counting measured, not the costs effscale ships for its backbones
            env = {**os.environ, "EFFSCALE_CACHE": cache, "EFFSCALE_SHIPPED_COSTS": "0"}
            cold.append(timed(cmd, env))
            warm.append(timed(cmd, env))
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"B0-B7 cost table, cold (empty cache): median {c:.2f} s over {args.repeats} "
        f"(target <= 15 s)"
    )
    print(
        f"B0-B7 cost table, warm (cached):      median {w:.2f} s over {args.repeats} "
        f"(target <= 2 s)"
    )
    print(f"cold / warm: {c / w:.1f}x")
    print(
        "csv,case,seconds\n"
        + "\n".join([f"csv,cold,{t:.3f}" for t in cold] + [f"csv,warm,{t:.3f}" for t in warm])
    )


if __name__ == "__main__":
    main()
