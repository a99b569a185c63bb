"""Benchmark: planning a study and listing the backbones, with a cold cost cache, measured
against an earlier revision of effscale in one run.

Planning studies/cifar10.toml (39 points: compound phi = 1, 2, 3 and, for each, depth, width
and resolution alone solved to the same counted FLOPs) counts every variant a bisection
probes; `effscale models` counts the 15 registered backbones at their native resolution (B7
at 600 px). Each is a fresh process with an empty cost cache (interpreter and torch import
included), for this checkout and for ``--baseline`` (a git revision, checked out in a
temporary worktree). The planned variants must be the same: the bench checks it.

    python bench/plan.py [--baseline 99d1bc8] [--repeats 1]

The data are "synthetic" (32 px, 10 classes, made in memory: the same variants as CIFAR-10,
without decoding images).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAN = (
    "import json, sys; from effscale.study.files import load_study; "
    "s = load_study(sys.argv[1], data='synthetic'); "
    "print(json.dumps(sorted(json.dumps(p.variant.to_dict(), sort_keys=True) for p in s.points)))"
)


def timed(cmd, pythonpath: Path, cache: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "EFFSCALE_CACHE": cache}
    start = time.perf_counter()  # cwd: the code measured (python puts it first on sys.path)
    done = subprocess.run(cmd, env=env, cwd=pythonpath, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout


def measure(code: Path, study: Path) -> dict:
    with tempfile.TemporaryDirectory() as cold:
        plan_s, planned = timed([sys.executable, "-c", PLAN, str(study)], code, cold)
        warm_s, _ = timed([sys.executable, "-c", PLAN, str(study)], code, cold)
    models = [sys.executable, "-m", "effscale", "models", "--format", "json"]
    with tempfile.TemporaryDirectory() as cold:
        models_cold, _ = timed(models, code, cold)
        models_warm, _ = timed(models, code, cold)
    where = [sys.executable, "-c", "import effscale; print(effscale.__file__)"]
    assert timed(where, code, "/tmp")[1].startswith(str(code)), "measured the wrong code"
    return {
        "plan_cold": plan_s,
        "plan_warm": warm_s,
        "models_cold": models_cold,
        "models_warm": models_warm,
        "variants": json.loads(planned),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="99d1bc8", help="git revision to compare with")
    parser.add_argument("--study", default=str(ROOT / "studies" / "cifar10.toml"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tree:
        base = Path(tree) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            old = measure(base, Path(args.study))
            new = measure(ROOT, Path(args.study))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])
    same = old["variants"] == new["variants"]
    print(f"planning {Path(args.study).name} ({len(new['variants'])} points), cold cost cache:")
    print(f"  {args.baseline}: {old['plan_cold']:.1f} s   this checkout: {new['plan_cold']:.1f} s"
          f"   {old['plan_cold'] / new['plan_cold']:.1f}x faster (target >= 3x)")  # fmt: skip
    print(f"  warm: {old['plan_warm']:.1f} s vs {new['plan_warm']:.1f} s")
    print(f"  the same variants planned: {same}")
    print("effscale models:")
    print(f"  cold: {old['models_cold']:.1f} s vs {new['models_cold']:.1f} s (target <= 5 s)")
    print(f"  warm: {old['models_warm']:.1f} s vs {new['models_warm']:.1f} s (target <= 1 s)")
    if not same:
        sys.exit("the planned variants differ: point keys would change")


if __name__ == "__main__":
    main()
