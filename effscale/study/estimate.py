"""What a study will cost before it runs: its points, their FLOPs, and a time on this machine.

A point's compute is counted, not guessed: with F its forward multiply-adds per image
(effscale.cost, the paper's FLOPs), one training sample costs about 3F (forward, and a
backward pass of about twice the forward), and each evaluation costs F per image (the test
split, and the training images BN statistics are recomputed on). So

    estimated seconds = (3 F x samples + F x evaluated images) / measured FLOP/s

where the FLOP/s is this device's training speed in the same units, measured by a short probe
(a few training steps of a small model, seconds) and cached per device and thread count in
$EFFSCALE_CACHE/speed for SPEED_MAX_AGE (a machine changes: drivers, torch, its neighbours). A
probe the machine starved is not trusted: on a CPU the probe's own CPU time is set beside its
wall time x threads, and when it got less than BUSY_SHARE of them (other work was running) the
speed is flagged busy, said so wherever it is printed, and never cached. The probe's model is
small, as the study points on a CPU mostly are; larger models usually run at more FLOP/s, so
their estimates lean long. Setup (building the model, loading data) is not in the estimate. How
good the estimates were is measured: the estimate of every point is kept in the run directory
(estimates.json) and the report sets it beside the point's measured training and evaluation
time.
"""

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from effscale import io
from effscale.cost import count_cost
from effscale.rundir import ESTIMATES_FILE, FINISHED, PointDir, StudyDir
from effscale.study.branches import trunk_of
from effscale.study.plan import Point, Study

PROBE_VERSION = 1  # bump when the probe changes: cached speeds then miss
PROBE_SECONDS = 2.0  # timed training steps of the probe, after two warm-up steps
SPEED_MAX_AGE = 7 * 24 * 3600.0  # seconds a cached speed is trusted
BUSY_SHARE = 0.8  # below this share of its threads' time, the probe was starved


# --------------------------------------------------------------------------------------
# The device's training speed
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    """Training throughput in multiply-adds per second (3F per sample), and where measured."""

    flops_per_s: float
    device: str  # cpu, cuda:0 ...
    hardware: str  # the CPU model or GPU name
    threads: int  # torch threads per point (CPU)
    probe: str  # what was timed
    cached: bool = False
    cpu_share: float | None = None  # CPU time / (wall x threads) the probe got (CPU only)
    measured_at: float = 0.0  # time.time() of the probe

    @property
    def busy(self) -> bool:
        """The probe was starved by other work: its rate is not this device's."""
        return self.cpu_share is not None and self.cpu_share < BUSY_SHARE

    def describe(self) -> str:
        where = self.hardware
        if self.device == "cpu":
            where += f", {self.threads} thread(s)"
        state = "cached" if self.cached else "measured now"
        if self.busy:
            state += (f", while the machine was busy: the probe got {self.cpu_share:.0%} of its "
                      "threads' time, so this estimate may be long; measure again when it "
                      "is idle, or give fewer `threads`")  # fmt: skip
        return f"{self.flops_per_s / 1e9:.3g} GFLOP/s training ({where}; {state})"


def _speed_path(device: str, hardware: str, threads: int) -> Path:
    import torch

    blob = json.dumps([PROBE_VERSION, device.split(":")[0], hardware, threads, torch.__version__])
    return io.cache_dir() / "speed" / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def measure_speed(device: str = "auto", threads: int | None = None, fresh: bool = False) -> Speed:
    """This device's training FLOP/s, from the cache or a probe of a few seconds.

    The probe trains EfficientNet-B0 at width 0.25 (small-input stem, 32 px, 10 classes,
    batch 64, channels_last, SGD) on random images with the training augmentation, as
    effscale trains it; ``threads``: torch threads per point (default: the current ones).
    """
    import torch

    from effscale.hardware import device_name
    from effscale.training.device import resolve_device

    dev = resolve_device(device)
    threads = threads or torch.get_num_threads()
    hardware = device_name(dev)
    path = _speed_path(str(dev), hardware, threads)
    cached = None if fresh else _cached_speed(path)
    if cached is not None:
        return cached
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        flops_per_s, probe = _probe(dev)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        torch.set_num_threads(before)
    share = min(1.0, cpu / (wall * threads)) if dev.type == "cpu" and wall > 0 else None
    speed = Speed(flops_per_s, str(dev), hardware, threads, probe, cpu_share=share,
                  measured_at=time.time())  # fmt: skip
    if not speed.busy:  # a starved probe is this moment's, not the device's
        io.write_json(path, {k: v for k, v in speed.__dict__.items() if k != "cached"})
    return speed


def _cached_speed(path: Path) -> Speed | None:
    """The cached speed at ``path``; None when there is none, it is damaged, or older than
    SPEED_MAX_AGE (entries written before probes were dated count as expired)."""
    if not path.exists():
        return None
    try:
        speed = Speed(**{**json.loads(path.read_text()), "cached": True})
    except (ValueError, TypeError, UnicodeDecodeError):
        return None  # a damaged entry is measured again
    number = (int, float)
    sound = (
        isinstance(speed.flops_per_s, number) and math.isfinite(speed.flops_per_s)
        and speed.flops_per_s > 0 and isinstance(speed.measured_at, number)
        and isinstance(speed.threads, int) and isinstance(speed.hardware, str)
    )  # fmt: skip
    if not sound or not 0 <= time.time() - speed.measured_at <= SPEED_MAX_AGE:
        return None  # wrong types, a zero rate (a damaged entry), or too old: measured again
    return speed


def _probe(dev) -> tuple[float, str]:
    import torch
    import torch.nn.functional as F

    from effscale.data.augment import train_transform
    from effscale.scaling import make_variant
    from effscale.zoo import build_model

    variant = make_variant("efficientnet-b0", base_resolution=32, base_width=0.25)
    flops = count_cost(variant, 10).flops
    model = build_model(variant, 10).to(dev).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    gen = torch.Generator(dev).manual_seed(0)
    batch = 64
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=dev)
    labels = torch.randint(0, 10, (batch,), device=dev)
    stats = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def step():
        x = train_transform(images, 32, *stats, gen, "crop", 0.35)
        x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(2):  # warm-up: allocation, kernel choice
        step()
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or (time.perf_counter() - t0 < PROBE_SECONDS and steps < 200):
        step()
        steps += 1
    seconds = time.perf_counter() - t0
    probe = f"{steps} steps of {variant.label}, batch {batch}, {seconds:.1f} s"
    return 3 * flops * batch * steps / seconds, probe


# --------------------------------------------------------------------------------------
# A study's plan and its estimate
# --------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """The plan of a study on this machine: one row per point, and what it adds up to."""

    study: str
    rows: list[dict]
    speed: Speed
    parallel: int | None  # points trained at once (None: as many as the cluster runs)
    seconds: dict[str, float] = field(default_factory=dict)  # by point key

    @property
    def todo(self) -> list[dict]:
        return [r for r in self.rows if not r["covered"]]

    @property
    def total_seconds(self) -> float:
        """Point-seconds still to train (the points already covered cost nothing)."""
        return sum(r["est_seconds"] for r in self.todo)

    @property
    def wall_seconds(self) -> float | None:
        return self.total_seconds / self.parallel if self.parallel else None

    def summary(self) -> dict:
        todo = self.todo
        return {
            "study": self.study,
            "points": len(self.rows),
            "covered": len(self.rows) - len(todo),
            "to_train": len(todo),
            "train_flops": sum(r["train_flops"] for r in todo),
            "compute_flops": sum(r["compute_flops"] for r in todo),
            "separate_compute_flops": sum(  # the same budgets as runs of their own
                r.get("alone_compute_flops", r["compute_flops"]) for r in todo
            ),
            "flops_per_s": self.speed.flops_per_s,
            "hardware": self.speed.hardware,
            "threads": self.speed.threads,
            "parallel": self.parallel,
            "point_seconds": round(self.total_seconds, 1),
            "est_seconds": round(self.wall_seconds, 1) if self.wall_seconds is not None else None,
        }

    def sentence(self) -> str:
        """One line for the terminal: points, compute, and the estimate with its basis."""
        from effscale.text import fmt_flops, fmt_seconds

        s = self.summary()
        head = f"{s['to_train']} of {s['points']} points to train"
        if s["covered"]:
            head += f" ({s['covered']} already covered by stored results)"
        compute = f"{fmt_flops(s['compute_flops'])} (3 x forward x samples, plus evaluation)"
        if s["separate_compute_flops"] > s["compute_flops"]:  # WSD budgets branch off one run
            compute += (
                f"; as separate runs {fmt_flops(s['separate_compute_flops'])} "
                f"({s['separate_compute_flops'] / s['compute_flops']:.2f}x): the shorter "
                "budgets branch off the longest"
            )
        if self.wall_seconds is not None:
            at_once = f", {self.parallel} at a time" if self.parallel > 1 else ""
            est = (
                f"estimated {fmt_seconds(self.wall_seconds)} ({self.wall_seconds:,.0f} s{at_once})"
            )
        else:
            est = (
                f"estimated {fmt_seconds(self.total_seconds)} of point time "
                f"({self.total_seconds:,.0f} s), shared among the points run at once"
            )
        return f"{head}: {compute}, {est} at {self.speed.describe()}"


def data_sizes(spec: str) -> tuple[int, int, int]:
    """Training images, test images and classes of a dataset spec (loaded once a process)."""
    from effscale.data.cache import facts

    f = facts(spec)  # a set not downloaded yet: its published sizes (a dry run fetches nothing)
    return f.train, f.test, f.num_classes


def point_compute(point: Point, sizes=None, branch: bool = False) -> dict:
    """The multiply-adds a point costs: training (3F per sample) and its evaluations (F per
    test image and per image its BN statistics are recomputed on, once an epoch); a WSD
    ``branch`` trains and evaluates only its cool-down (effscale.study.branches).
    ``sizes``: (train images, test images, classes) when known."""
    from effscale.recipe import cooldown_start, epoch_samples
    from effscale.training.batches import samples_trained

    n_train, n_test, classes = sizes or data_sizes(point.data)
    cost = count_cost(point.variant, classes)
    r = point.recipe
    per_epoch = epoch_samples(n_train, r.batch_size, r.protocol)
    total = samples_trained(n_train, r)
    start = cooldown_start(r, total) if branch else 0  # where a branch takes over
    samples = total - int(start)
    evaluations = math.ceil(total / per_epoch) - math.floor(start / per_epoch)
    evaluated = evaluations * (n_test + min(point.recipe.bn_images, n_train))
    return {
        "flops": cost.flops,
        "params": cost.params,
        "trained_samples": samples,
        "train_flops": 3 * cost.flops * samples,
        "compute_flops": 3 * cost.flops * samples + cost.flops * evaluated,
    }


def executor_shape(executor) -> tuple[int, int | None]:
    """Torch threads per point and points run at once: Executor.shape(), or this process's
    threads, one point at a time, when there is no executor (the engine's default)."""
    import torch

    return executor.shape() if executor is not None else (torch.get_num_threads(), 1)


def estimate_study(
    study: Study,
    run_dir: str | Path | None = None,
    *,
    device: str = "auto",
    executor=None,
    speed: Speed | None = None,
    sizes: dict[str, tuple[int, int, int]] | None = None,
    covered: set[str] | None = None,
) -> Estimate:
    """One row per point (variant, d, w, r, resolution, FLOPs, params, samples, seed, covered,
    estimated seconds) and the estimate of the whole; nothing is trained or written.

    ``covered``: keys of points already done (default: those finished in ``run_dir``);
    ``sizes``: data spec -> (train images, test images, classes), when already known.
    """
    from effscale.text import fmt_seconds

    threads, parallel = executor_shape(executor)
    speed = speed or measure_speed(device, threads)
    if covered is None:
        store = StudyDir(run_dir) if run_dir is not None and Path(run_dir).is_dir() else None
        covered = {p.key for p in study.points if store and store.state(p.key) in FINISHED}
    rows, seconds, sizes = [], {}, dict(sizes or {})
    branches = trunk_of([p for p in study.points if p.key not in covered])
    for p in study.points:
        if p.data not in sizes:
            sizes[p.data] = data_sizes(p.data)
        compute = point_compute(p, sizes[p.data], branch=p.key in branches)
        if p.key in branches:  # what it would cost as a run of its own, for the comparison
            compute["alone_compute_flops"] = point_compute(p, sizes[p.data])["compute_flops"]
        est = compute["compute_flops"] / speed.flops_per_s
        seconds[p.key] = est
        v = p.variant
        rows.append(
            {
                "key": p.key,
                "point": v.short_label,
                "variant": v.label,
                "model": v.base_name,
                "d": v.d,
                "w": v.w,
                "r": v.r,
                "resolution": v.resolution,
                "roles": ";".join(p.roles),
                "phi": p.phi,
                "seed": p.seed,
                "data": p.data,
                "samples": p.recipe.samples,
                **compute,
                "gflops": round(compute["flops"] / 1e9, 4),
                "mparams": round(compute["params"] / 1e6, 2),
                "covered": p.key in covered,
                "est_seconds": round(est, 1),
                "est": fmt_seconds(est),
            }
        )
    return Estimate(study.name, rows, speed, parallel, seconds)


# --------------------------------------------------------------------------------------
# Estimates kept in the run directory, and measured against what the points took
# --------------------------------------------------------------------------------------


def save_estimates(run_dir: str | Path, estimate: Estimate) -> None:
    """Record each point's estimate in RUN_DIR/estimates.json; a finished point keeps the
    estimate it had when it was trained."""

    store = StudyDir(run_dir)
    path = store.path / ESTIMATES_FILE
    basis = {
        "flops_per_s": round(estimate.speed.flops_per_s),
        "hardware": estimate.speed.hardware,
        "device": estimate.speed.device,
        "threads": estimate.speed.threads,
    }
    with store.lock():
        kept = load_estimates(store.path)
        for key, seconds in estimate.seconds.items():
            if key in kept and store.state(key) in FINISHED:
                continue
            kept[key] = {"seconds": round(seconds, 2), **basis}
        io.write_json(path, {"version": 1, "points": kept})


def load_estimates(run_dir: str | Path) -> dict[str, dict]:
    """Point key -> {"seconds", "flops_per_s", ...}; empty when none were stored."""
    path = Path(run_dir) / ESTIMATES_FILE
    try:
        return dict(json.loads(path.read_text())["points"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def measured_seconds(point: PointDir) -> float | None:
    """Training plus evaluation time of a finished run, from its metrics.jsonl."""

    def seconds(m: dict, key: str) -> float:  # a damaged line's wrong type counts nothing
        value = m.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok and math.isfinite(value) and value >= 0 else 0.0

    total = sum(seconds(m, "seconds") + seconds(m, "eval_seconds") for m in point.epochs())
    return total or None


def timing_table(run_dir: str | Path, study: Study) -> list[dict]:
    """Per finished point with an estimate: estimated and measured seconds, and their ratio."""

    store = StudyDir(run_dir)
    estimates = load_estimates(store.path)
    rows = []
    for p in study.points:
        est = estimates.get(p.key, {}).get("seconds")
        result = store.result(p.key) if est is not None else None
        if not result or result.get("status") != "done":
            continue
        actual = measured_seconds(store.point(p.key))
        if not actual:
            continue
        rows.append(
            {
                "key": p.key,
                "variant": p.variant.label,
                "seed": p.seed,
                "samples": p.recipe.samples,
                "est_seconds": round(est, 1),
                "measured_seconds": round(actual, 1),
                "ratio": round(actual / est, 2),
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# The study bar's ETA
# --------------------------------------------------------------------------------------


class StudyClock:
    """Time left in a running study, from the points' estimates: the points not started at
    their estimate, the running ones at the unfinished part of theirs, all scaled by how the
    points finished so far compared with their estimates, divided among the points run at
    once."""

    def __init__(self, seconds: dict[str, float], keys: list[str], parallel: int | None):
        self.left = {k: seconds[k] for k in keys if k in seconds}
        self.complete = all(k in seconds for k in keys)
        self.parallel = parallel or 1
        self.started: dict[str, float] = {}
        self.fraction: dict[str, float] = {}
        self.spent = self.planned = 0.0  # measured and estimated seconds of finished points

    def start(self, key: str) -> None:
        self.started[key] = time.monotonic()

    def progress(self, key: str, completed: float, total: float | None) -> None:
        if total:
            self.fraction[key] = min(1.0, completed / total)

    def done(self, key: str) -> None:
        est = self.left.pop(key, None)
        began = self.started.pop(key, None)
        self.fraction.pop(key, None)
        if est and began is not None:
            self.spent += time.monotonic() - began
            self.planned += est

    def seconds_left(self) -> float | None:
        if not self.complete:
            return None
        pace = self.spent / self.planned if self.planned > 0 else 1.0
        todo = sum(est * (1 - self.fraction.get(k, 0.0)) for k, est in self.left.items())
        return todo * pace / self.parallel
