"""Inference latency of a variant: warm-up, synchronised timing, median and spread.

The paper reports latency beside accuracy (Tan & Le 2019, Table 4: batch 1 on one core of a
Xeon E5-2690, B1 0.098 s vs ResNet-152 0.554 s, B7 3.1 s vs GPipe 19.0 s; ``threads=1``
reproduces the setting). Here one forward pass of a batch is
timed ``repeats`` times after ``warmup`` untimed passes (allocator, kernel selection and
caches settle in those); on CUDA every pass is bracketed by ``torch.cuda.synchronize`` so
the clock sees the kernels finish, not just their launch. The median is the figure to quote;
the quartiles and the standard deviation say how noisy the machine was.
"""

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from effscale import io, limits
from effscale.errors import EffscaleError
from effscale.hardware import device_name
from effscale.rundir import LATENCY_FILE, VARIANT_COLUMNS, StudyDir
from effscale.scaling import Variant
from effscale.training.device import resolve_device
from effscale.zoo import build_model


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int,
    repeats: int,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Call ``fn`` warmup + repeats times; return the durations of the last ``repeats`` calls.

    ``sync`` (e.g. torch.cuda.synchronize) runs before the clock is read on either side of
    each timed call, so asynchronous work is inside the interval that measures it.
    """
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return times


def summarise_times(times: list[float], batch: int) -> dict:
    """Median, quartiles, spread and throughput of per-batch times in seconds."""
    median = statistics.median(times)
    p25, p75 = times[0], times[0]
    if len(times) > 1:
        p25, _, p75 = statistics.quantiles(times, n=4, method="inclusive")
    return {
        "median_s": median,
        "p25_s": p25,
        "p75_s": p75,
        "iqr_s": p75 - p25,
        "std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
        "min_s": min(times),
        "images_per_s": batch / median if median > 0 else float("inf"),
    }


def measure_latency(
    variant: Variant,
    *,
    num_classes: int = 1000,
    batch: int = 1,
    device: str = "auto",
    warmup: int = 10,
    repeats: int = 50,
    channels_last: bool | None = None,
    threads: int | None = None,
) -> dict:
    """Time inference of one variant at its resolution on random input.

    Args:
        variant: what to build (effscale.zoo.build_model), in eval mode.
        num_classes: classifier outputs (barely matters for speed; the study's class count).
        batch: images per forward pass.
        device: cpu, cuda, cuda:N or auto.
        warmup: untimed passes first.
        repeats: timed passes; the statistics are over these alone.
        channels_last: NHWC memory format; default on, as training uses it (faster for
            depthwise-heavy nets on CPU and on tensor-core GPUs).
        threads: CPU threads for the measurement (default: torch's current setting). On a
            busy machine fewer threads can be far faster: idle threads spin waiting for
            cores that other processes hold.

    Returns:
        median_s, p25_s, p75_s, iqr_s, std_s, min_s (seconds per batch), images_per_s
        (batch / median), times_s (every timed pass), and the conditions: model, device,
        hardware, threads, cores, load (1-minute load average when measured), batch,
        resolution, warmup, repeats, channels_last.
    """
    if batch < 1:
        raise EffscaleError(f"batch must be at least 1, got {batch}")
    limits.at_most("batch", batch, 4096, "latency is timed on small batches: e.g. `batch`=1")
    if repeats < 1:
        raise EffscaleError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise EffscaleError(f"warmup must be 0 or more, got {warmup}")
    if threads is not None and threads < 1:
        raise EffscaleError(f"threads must be at least 1, got {threads}")
    dev = resolve_device(device)
    channels_last = True if channels_last is None else channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(variant, num_classes).eval().to(dev, memory_format=fmt)
    size = variant.resolution
    x = torch.randn(batch, 3, size, size, device=dev).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        with torch.inference_mode():
            times = time_calls(lambda: model(x), warmup=warmup, repeats=repeats, sync=sync)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {
        "model": variant.label,
        **summarise_times(times, batch),
        "device": str(dev),
        "hardware": device_name(dev),
        "threads": used,
        "cores": os.cpu_count(),
        "load": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "batch": batch,
        "resolution": size,
        "warmup": warmup,
        "repeats": repeats,
        "channels_last": channels_last,
        "times_s": times,
    }


def add_latency(
    df: pd.DataFrame,
    *,
    known: dict[Variant, float] | None = None,
    on_progress=None,
    **settings,
) -> pd.DataFrame:
    """A copy of a results table with ``latency_ms``: the median per batch of each variant.

    ``settings`` are measure_latency's (num_classes, batch, device, warmup, repeats,
    channels_last, threads). Each distinct variant (VARIANT_COLUMNS) is measured once,
    whatever its number of seeds; ``known`` gives figures already measured (variant -> ms),
    which are not measured again.
    ``on_progress(done, total, label)`` hears of each variant as it is measured.
    """
    missing = [c for c in VARIANT_COLUMNS if c not in df.columns]
    if missing:
        raise EffscaleError(
            f"the table has no {', '.join(missing)} column(s), so its variants are unknown",
            "give a study's results table (results.csv)",
        )
    out = df.copy()
    variants = [Variant.from_row(row) for row in out.to_dict("records")]
    latency = dict(known or {})
    todo = [v for v in dict.fromkeys(variants) if v not in latency]
    for done, variant in enumerate(todo):
        if on_progress:
            on_progress(done, len(todo), variant.label)
        result = measure_latency(variant, **settings)
        latency[variant] = result["median_s"] * 1000
    if on_progress and todo:
        on_progress(len(todo), len(todo), "")
    out["latency_ms"] = pd.Series([latency[v] for v in variants], index=out.index, dtype=float)
    return out


def latency_for_results(
    run_dir: str | Path,
    *,
    batch: int = 1,
    device: str = "auto",
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = None,
    measure: bool = True,
    on_progress=None,
) -> pd.DataFrame:
    """A study's results table with ``latency_ms``, each variant measured once per setting.

    Figures are kept in ``run_dir/latency.csv`` (by variant, batch and device), so a report
    redrawn later, or a study extended by new points, measures only what is new.
    ``measure=False`` attaches the stored figures alone (NaN where there are none).
    """
    store = StudyDir(run_dir)
    df = store.results()
    dev = str(resolve_device(device))
    path = store.path / LATENCY_FILE
    known = _stored(path, batch, dev)
    if not measure:
        variants = [Variant.from_row(row) for row in df.to_dict("records")]
        df["latency_ms"] = pd.Series([known.get(v) for v in variants], index=df.index, dtype=float)
        return df
    num_classes = 1000
    if len(df):
        config = store.config(df["key"].iloc[0]) or {}
        num_classes = config.get("num_classes", num_classes)
    df = add_latency(
        df,
        num_classes=num_classes,
        batch=batch,
        device=dev,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
        known=known,
        on_progress=on_progress,
    )
    new = df.drop_duplicates(VARIANT_COLUMNS)[VARIANT_COLUMNS + ["latency_ms"]].assign(
        batch=batch, device=dev
    )
    with store.lock():  # another process may have measured meanwhile
        old = _read_table(path)
        merged = pd.concat([old, new]).drop_duplicates(
            VARIANT_COLUMNS + ["batch", "device"], keep="last"
        )
        io.write_text(path, merged.to_csv(index=False))
    return df


def _stored(path: Path, batch: int, device: str) -> dict[Variant, float]:
    """Latencies already in a run directory's latency.csv for this batch and device."""
    table = _read_table(path)
    table = table[(table["batch"] == batch) & (table["device"] == device)]
    out = {}
    for r in table.to_dict("records"):
        try:
            out[Variant.from_row(r)] = float(r["latency_ms"])
        except (EffscaleError, KeyError, TypeError, ValueError):
            continue  # a damaged row: that variant is measured again
    return out


def _read_table(path: Path) -> pd.DataFrame:
    """latency.csv's rows; an absent, unreadable or damaged file (wrong columns, garbage)
    gives none, so its figures are measured again and the file rewritten."""
    columns = VARIANT_COLUMNS + ["latency_ms", "batch", "device"]
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError):
        return pd.DataFrame(columns=columns)  # EmptyDataError is a ValueError
    return table if set(columns) <= set(table.columns) else pd.DataFrame(columns=columns)
