"""Whether a training run is compiled (torch.compile), decided from measurements per device.

A compiled step is faster on some machines and slower on others. EfficientNet-B0 at width
0.25, 64 px, batch 128, one thread, channels_last: 1.9x faster than eager on the AVX2 EPYC of
2026-12-01 (188 vs 355 ms), 0.83x on the AVX-512 EPYC that followed it (356 vs 297 ms); and a
first compile costs one to two minutes on such a CPU (about 6 s once inductor's on-disk cache
holds the graphs). So ``train(compile=None)`` compiles only when

1. a probe on this device (``probe``: the model above, eager and compiled steps timed in one
   process) found compiled steps at least ``PAYS`` times faster, and
2. the run is long enough that the steps saved outweigh a compile: estimated eager seconds x
   (1 - 1/speedup) > the probe's compile seconds.

The probe runs once per device (hardware, torch version, threads) and is cached in
cache_dir()/compile/; a run that would take under ``PROBE_AFTER`` seconds eager never waits
for one. Inductor's caches live in cache_dir()/inductor, so points of one study that share an
architecture (seeds, budgets) pay for its compile once.
"""

import json
import os
import time

from effscale import io

PAYS = 1.15  # compiled steps must be at least this much faster to be worth the compile
PROBE_AFTER = 20 * 60  # eager seconds above which a run measures the device once, if unknown
PROBE = {"model": "efficientnet-b0", "base_width": 0.25, "resolution": 64, "batch": 64}


def use_inductor_cache() -> None:
    """Point inductor's on-disk caches into effscale's cache directory (unless set)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(io.cache_dir() / "inductor"))


def device_key(device) -> str:
    import torch

    from effscale.hardware import device_name

    threads = torch.get_num_threads()
    return f"{device.type}-{device_name(device)}-torch{torch.__version__}-threads{threads}"


def _path(device):
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in device_key(device))
    return io.cache_dir() / "compile" / f"{safe}.json"


def cached_probe(device) -> dict | None:
    try:
        found = json.loads(_path(device).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "speedup" in found else None


def probe(device, steps: int = 5) -> dict:
    """Time eager and compiled training steps of the probe model on ``device`` (one
    process, one run) and cache what was measured: speedup, compile seconds, FLOP/s."""
    import torch
    import torch.nn.functional as F

    from effscale.cost import count_cost
    from effscale.recipe import budget
    from effscale.scaling import make_variant
    from effscale.training.optim import make_optimizer
    from effscale.zoo import build_model

    use_inductor_cache()
    variant = make_variant(
        PROBE["model"], base_width=PROBE["base_width"], base_resolution=PROBE["resolution"]
    )
    b = PROBE["batch"]
    fmt = torch.channels_last
    x = torch.randn(b, 3, variant.resolution, variant.resolution, device=device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (b,), device=device)

    def timed(step_model, model) -> float:
        opt = make_optimizer(model, budget("short"))
        for i in range(steps + 2):  # two warm-up steps (the first compiles)
            if i == 2:
                _sync(device)
                start = time.perf_counter()
            loss = F.cross_entropy(step_model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        return (time.perf_counter() - start) / steps

    torch.manual_seed(0)
    model = build_model(variant, 10).to(device, memory_format=fmt)
    eager = timed(model, model)
    # CUDA graphs ("reduce-overhead") remove the launch overhead that dominates small models
    # on a GPU; a CPU has no such mode.
    modes = ["default", "reduce-overhead"] if device.type == "cuda" else ["default"]
    compiled, error, mode, compile_seconds = float("inf"), None, "default", 0.0
    for m in modes:
        torch._dynamo.reset()
        start = time.perf_counter()
        try:
            t = timed(torch.compile(model, mode=m), model)
        except Exception as e:  # a compiler that fails here fails on real runs too
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        if t < compiled:
            compiled, mode = t, m
            compile_seconds = time.perf_counter() - start - steps * t
    error = None if compiled < float("inf") else error
    flops = 3 * count_cost(variant, 10).flops * 2 * b  # forward + backward, 2 FLOPs a MAC
    found = {
        "device": device_key(device),
        "probe": PROBE,
        "eager_ms": round(eager * 1000, 1),
        "compiled_ms": round(compiled * 1000, 1) if error is None else None,
        "speedup": round(eager / compiled, 3) if error is None else 0.0,
        "compile_seconds": round(compile_seconds, 1),
        "mode": mode,  # torch.compile's mode that was fastest
        "eager_flop_per_s": flops / eager,
        "error": error,
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    io.write_json(_path(device), found)
    return found


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mode_for(device) -> str:
    """The torch.compile mode the device's probe found fastest ("default" when unprobed)."""
    return (cached_probe(device) or {}).get("mode", "default")


def decide(device, train_flops: float, forced: bool | None, emit=None) -> tuple[bool, str]:
    """Whether to compile a run of ``train_flops`` (3 x forward MACs x 2 x samples), and why.

    ``forced``: True or False from --compile / --no-compile; None decides from the probe."""
    if forced is not None:
        return forced, "asked for" if forced else "`compile`=False"
    found = cached_probe(device)
    if found is None:
        # No measurement yet: a short run does not wait for one (a probe compiles a model).
        rough = train_flops / 5e9 if device.type == "cpu" else train_flops / 5e12
        if rough < PROBE_AFTER:
            return False, "no probe of this device yet, and the run is short"
        if emit:
            emit("message", "measuring once whether torch.compile pays on this device ...")
        found = probe(device)
    speedup = found["speedup"]
    if speedup < PAYS:
        return False, f"compiled steps {speedup:.2f}x eager on this device (probe)"
    eager_seconds = train_flops / found["eager_flop_per_s"]
    saved = eager_seconds * (1 - 1 / speedup)
    if saved < found["compile_seconds"]:
        return False, f"saves {saved:.0f} s, a compile costs {found['compile_seconds']:.0f} s"
    return True, f"compiled steps {speedup:.2f}x eager on this device (probe)"


class CompiledOrEager:
    """The compiled model, or the eager one after a compile that failed (said once).
    ``mode``: torch.compile's mode (the probe's fastest on this device)."""

    def __init__(self, model, emit, mode: str = "default"):
        import torch

        use_inductor_cache()
        self.model, self.emit = model, emit
        self.compiled = torch.compile(model, mode=mode)

    def __call__(self, x):
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as e:
                import torch

                if isinstance(e, torch.OutOfMemoryError):
                    raise
                self.compiled = None
                first = str(e).splitlines()[0][:160] if str(e) else ""
                self.emit("message", f"torch.compile failed ({type(e).__name__}: {first}); "
                          "training eagerly")  # fmt: skip
        return self.model(x)
