"""Cost of a variant: FLOPs, parameters and activations, in the paper's convention.

One FLOP is one multiply-add of a convolution or a linear / matmul layer; batch norm,
activations, pooling and element-wise ops are not counted. With this convention
EfficientNet-B0 counts 0.386 G and ResNet-50 4.089 G, as torchvision publishes. fvcore's
``FlopCountAnalysis`` counts batch norm and pooling too (B0: 0.4017 G), so effscale gives fvcore
its own table of op handles: fvcore's multiply-add handles for conv / linear / matmul ops and
nothing else. Activations are what fvcore's ``ActivationCountAnalysis`` counts: output elements
of conv and linear layers, as pycls reports. Each handle returns both counts, so one trace of
the model gives both (two analyses would trace it twice).

Counting traces a real forward pass at batch 1, so costs are cached on disk by the
resolved spec, resolution and class count, and the pieces of a traced network (stem, each
block, head, classifier) are remembered in the process, so a variant made of pieces already
seen (a deeper or shallower one) is added up without a trace.
"""

import functools
import hashlib
import json
import os
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING

from effscale import io
from effscale.errors import EffscaleError
from effscale.scaling import Variant
from effscale.zoo import MODULE, build_model, check_classes, resolve_spec

if TYPE_CHECKING:
    import torch

COST_VERSION = 1  # bump when the counting convention changes; old cache entries then miss


@dataclass(frozen=True)
class Cost:
    flops: int  # multiply-adds at batch 1
    params: int  # every parameter, as torchvision's num_params
    activations: int  # output elements of conv and linear layers at batch 1

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    def to_dict(self) -> dict:
        return asdict(self)


def _op_handles() -> dict:
    """fvcore handles by traced op kind, each returning Counter(flops=..., activations=...)."""
    from fvcore.nn import jit_handles as h

    multiply_adds = {
        "aten::_convolution": h.conv_flop_jit,
        "aten::addmm": h.addmm_flop_jit,
        "aten::bmm": h.bmm_flop_jit,
        "aten::einsum": h.einsum_flop_jit,
        "aten::linear": h.linear_flop_jit,
        "aten::matmul": h.matmul_flop_jit,
        "aten::mm": h.matmul_flop_jit,
    }
    output_elements = {  # ActivationCountAnalysis's defaults
        kind: h.generic_activation_jit()
        for kind in (
            "aten::_convolution",
            "aten::addmm",
            "aten::bmm",
            "aten::einsum",
            "aten::linear",
            "aten::matmul",
        )
    }

    def total(handle, inputs, outs) -> int:
        if handle is None:
            return 0
        n = handle(inputs, outs)
        return sum(n.values()) if isinstance(n, Counter) else n

    def both(kind):
        flop, act = multiply_adds.get(kind), output_elements.get(kind)
        return lambda inputs, outs: Counter(
            flops=total(flop, inputs, outs), activations=total(act, inputs, outs)
        )

    return {kind: both(kind) for kind in multiply_adds.keys() | output_elements.keys()}


def count_model(model: "torch.nn.Module", resolution: int, by_module: bool = False):
    """Count any image model at batch 1 and a square input of ``resolution`` pixels.

    ``by_module``: instead, the counts of every submodule by name, as Counter(flops=...,
    activations=...) (fvcore's by_module_and_operator, from the same single trace)."""
    import torch
    from fvcore.nn.jit_analysis import JitModelAnalysis

    x = torch.zeros(1, 3, resolution, resolution, device=next(model.parameters()).device)
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    # One thread: a trace runs thousands of tiny batch-1 ops, which more threads only slow
    # down, by 4x or more when another process keeps the cores busy (a study's workers).
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            analysis = JitModelAnalysis(model, x).set_op_handle(**_op_handles())
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            if by_module:
                return analysis.by_module_and_operator()
            counts = analysis.by_operator()  # by the handles' keys: flops, activations
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
    params = sum(p.numel() for p in model.parameters())
    return Cost(int(counts["flops"]), params, int(counts["activations"]))


# Costs of the pieces a Net is assembled from (stem, blocks, head, classifier), by what
# defines each and the spatial size it meets: variants that differ in depth alone repeat the
# same few pieces, so a bisection over depth needs no trace after its first one.
_PIECES: dict = {}


def _conv_out(h: int, stride: int) -> int:
    """Side after an odd-kernel 'same' conv (or a 3x3 / 2 max-pool) of ``stride``."""
    return (h - 1) // stride + 1


def piece_keys(spec, num_classes: int, resolution: int) -> list[tuple[str, tuple]] | None:
    """(module name, key) of every piece of Net(spec) in forward order; None when a block is
    not one of effscale's own (a plugin's block may read anything, so it is never shared)."""
    from effscale.zoo import layers
    from effscale.zoo.net import blocks_of

    h = _conv_out(resolution, spec.stem_stride)
    h = _conv_out(h, 2) if spec.stem_pool else h
    stem = (spec.stem_channels, spec.stem_kernel, spec.stem_stride, spec.stem_pool, spec.act)
    keys = [("stem", ("stem", *stem, resolution))]
    for i, j, block_cls, w_in, w_out, stride, stage, _ in blocks_of(spec):
        if block_cls.__module__ != layers.__name__:
            return None
        seen = replace(stage, repeats=0)  # effscale's blocks do not read their stage's repeats
        key = ("block", block_cls.__qualname__, w_in, w_out, stride, seen, spec.act, h)
        keys.append((f"stages.s{i}.b{j}", key))
        h = _conv_out(h, stride)
    keys.append(("head", ("head", spec.stages[-1].channels, spec.head_channels, spec.act, h)))
    keys.append(("fc", ("fc", spec.head_channels or spec.stages[-1].channels, num_classes)))
    return keys


def count_spec(spec, num_classes: int, resolution: int) -> Cost:
    """The cost of Net(spec, num_classes) at ``resolution``: one fvcore trace of the whole
    network, or none when every piece was met before (the sum of their costs is the trace's
    total: pooling, flattening and dropout between the pieces count nothing)."""
    keys = piece_keys(spec, num_classes, resolution)
    if keys is not None and all(k in _PIECES for _, k in keys):
        return _sum(_PIECES[k] for _, k in keys)
    import torch

    from effscale.zoo.net import Net

    with torch.random.fork_rng(devices=[]):  # counting must not move a training run's seed
        model = Net(spec, num_classes)
    if keys is None:
        return count_model(model, resolution)
    per_module = count_model(model, resolution, by_module=True)
    modules = dict(model.named_modules())
    if len(_PIECES) > 50_000:
        _PIECES.clear()
    for name, key in keys:
        found = per_module.get(name, Counter())
        params = sum(p.numel() for p in modules[name].parameters())
        _PIECES[key] = Cost(found["flops"], params, found["activations"])
    return _sum(_PIECES[k] for _, k in keys)


def _sum(costs) -> Cost:
    total = Counter()
    for c in costs:
        total.update(c.to_dict())
    return Cost(total["flops"], total["params"], total["activations"])


def _cache_key(spec_dict: dict, resolution: int, num_classes: int) -> str:
    blob = json.dumps([COST_VERSION, spec_dict, resolution, num_classes], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@functools.cache
def shipped_costs() -> dict:
    """Costs shipped with effscale, by cache key: the registered backbones at their native
    resolution (`effscale models`), counted by tools/make_costs.py and checked against fresh
    counts by the tests. A spec that changes gets another key, so it is counted, never
    answered wrong. $EFFSCALE_SHIPPED_COSTS=0 ignores them (the cost benchmark does)."""
    if os.environ.get("EFFSCALE_SHIPPED_COSTS") == "0":
        return {}
    try:
        return json.loads((resources.files("effscale") / "reference" / "costs.json").read_text())
    except (OSError, ValueError):
        return {}


def cost_key(variant: Variant, num_classes: int) -> str:
    """What a cost is cached under: the resolved spec (what is built), resolution, classes."""
    spec_dict = resolve_spec(variant).to_dict()
    if spec_dict["family"] == MODULE:  # its factory scales it: the multipliers name the net
        multipliers = (variant.d * variant.base_depth, variant.w * variant.base_width)
        return _cache_key({**spec_dict, "multipliers": multipliers}, variant.resolution,
                          num_classes)  # fmt: skip
    for key in ("name", "reference", "dropout", "drop_path"):  # no effect on eval cost
        spec_dict.pop(key)
    # Fields added later are left out at their defaults, so that the keys of the shipped
    # and cached costs stay what they were: the divisor acts through the channel counts
    # (already in the spec), and ungrouped stages cost what they always did.
    spec_dict.pop("channel_divisor")
    for stage in spec_dict["stages"]:
        if stage.get("groups") == 1:
            stage.pop("groups")
    return _cache_key(spec_dict, variant.resolution, num_classes)


_on_count: ContextVar = ContextVar("on_count", default=None)


@contextmanager
def counting(callback):
    """Within the block, ``callback(variant)`` hears of every variant counted afresh (a
    cache miss: a trace), so that slow planning can say what it is doing."""
    token = _on_count.set(callback)
    try:
        yield
    finally:
        _on_count.reset(token)


def count_cost(variant: Variant, num_classes: int = 1000, cache: bool = True) -> Cost:
    """The cost of a variant, from the on-disk cache when it was counted before."""
    check_classes(num_classes)
    spec = resolve_spec(variant)
    key = cost_key(variant, num_classes)
    if cache and key in shipped_costs():
        return Cost(**shipped_costs()[key])
    path = io.cache_dir() / "cost" / f"{key}.json"
    if cache and (cached := _read_cached(path)) is not None:
        return cached
    if _on_count.get() is not None:
        _on_count.get()(variant)
    if spec.family == MODULE:  # any nn.Module: built by its factory, traced whole
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build_model(variant, num_classes)
        cost = count_model(model, variant.resolution)
    else:
        cost = count_spec(spec, num_classes, variant.resolution)  # imports torch: a miss only
    if cache:
        _write_cached(path, cost)
    return cost


def _read_cached(path) -> Cost | None:
    """A cache entry, or None when absent or damaged (then recounted and replaced)."""
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, a directory, unreadable, not JSON
        return None
    fields = ("flops", "params", "activations")
    if not isinstance(d, dict) or sorted(d) != sorted(fields):
        return None
    if not all(isinstance(d[k], int) and not isinstance(d[k], bool) and d[k] >= 0 for k in fields):
        return None
    return Cost(**d)


def _write_cached(path, cost: Cost) -> None:
    if path.is_dir():  # something made a directory of the entry: count without caching
        return
    try:
        io.write_json(path, cost.to_dict())
    except OSError as e:
        raise EffscaleError(
            f"cannot write the cost cache at {path.parent}: {e.strerror or e}",
            "set EFFSCALE_CACHE to a writable directory (or make that path one)",
        ) from None


def describe(variant: Variant, num_classes: int = 1000) -> dict:
    """One result row: the variant, its cost, and its FLOPs ratio to the unscaled base.

    ``target_flops_ratio`` is d x w^2 x r^2, what the paper's Equation 3 aims at;
    ``realised_flops_ratio`` is counted FLOPs over the base's, after all rounding.
    """
    base = replace(variant, d=1.0, w=1.0, r=1.0, resolution=variant.base_resolution)
    cost, base_cost = count_cost(variant, num_classes), count_cost(base, num_classes)
    return {
        **variant.to_dict(),
        "flops": cost.flops,
        "gflops": round(cost.gflops, 4),
        "params": cost.params,
        "activations": cost.activations,
        "target_flops_ratio": round(variant.target_flops_ratio, 4),
        "realised_flops_ratio": round(cost.flops / base_cost.flops, 4),
    }


def describe_all(variants: list[Variant], num_classes: int = 1000) -> list[dict]:
    """describe() for each variant, once every one of them is known to be buildable here:
    a range that ends in an absurd variant is refused before any counting starts."""
    for v in variants:
        resolve_spec(v)
    return [describe(v, num_classes) for v in variants]


def backbone_costs(pattern: str = "*") -> list[dict]:
    """Each registered backbone at its native resolution and 1000 classes."""
    from effscale.scaling import make_variant
    from effscale.zoo import get_spec, list_backbones

    rows = []
    for name in list_backbones(pattern):
        spec = get_spec(name)
        cost = count_cost(make_variant(name))
        rows.append(
            {
                "model": name,
                "family": spec.family,
                "resolution": spec.resolution,
                "blocks": spec.depth,
                "params": cost.params,
                "flops": cost.flops,
                "gflops": round(cost.gflops, 4),
                "activations": cost.activations,
                "reference": spec.reference,
            }
        )
    return rows


def compound_costs(
    backbone: str,
    phi: str | list[float],
    *,
    base_resolution: int | None = None,
    num_classes: int = 1000,
    **kwargs,
) -> list[dict]:
    """Per phi: the compound variant, its cost and its target vs realised FLOPs ratio."""
    from effscale.scaling import compound_variants, parse_range
    from effscale.zoo import get_spec

    phis = parse_range(phi) if isinstance(phi, str) else list(phi)
    base_resolution = base_resolution or get_spec(backbone).resolution
    variants = compound_variants(backbone, phis, base_resolution=base_resolution, **kwargs)
    rows = describe_all([v for _, v in variants], num_classes)
    return [{"phi": p, **row} for (p, _), row in zip(variants, rows)]
