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
resolved spec, resolution and class count.
"""

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from effscale import io
from effscale.errors import EffscaleError
from effscale.scaling import Variant
from effscale.zoo import resolve_spec

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


def count_model(model: "torch.nn.Module", resolution: int) -> Cost:
    """Count any image model at batch 1 and a square input of ``resolution`` pixels."""
    import torch
    from fvcore.nn.jit_analysis import JitModelAnalysis

    x = torch.zeros(1, 3, resolution, resolution, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = JitModelAnalysis(model, x).set_op_handle(**_op_handles())
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            counts = analysis.by_operator()  # by the handles' keys: flops, activations
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return Cost(int(counts["flops"]), params, int(counts["activations"]))


def _cache_key(spec_dict: dict, resolution: int, num_classes: int) -> str:
    blob = json.dumps([COST_VERSION, spec_dict, resolution, num_classes], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def count_cost(variant: Variant, num_classes: int = 1000, cache: bool = True) -> Cost:
    """The cost of a variant, from the on-disk cache when it was counted before."""
    spec = resolve_spec(variant)
    spec_dict = spec.to_dict()
    for key in ("name", "reference", "dropout", "drop_path"):  # no effect on eval cost
        spec_dict.pop(key)
    path = (
        io.cache_dir() / "cost" / f"{_cache_key(spec_dict, variant.resolution, num_classes)}.json"
    )
    if cache and (cached := _read_cached(path)) is not None:
        return cached
    import torch  # only on a miss: a cached answer needs no torch

    from effscale.zoo.net import Net

    # Build without initialising weights: counting needs shapes, not values.
    with torch.device("meta"):
        model = Net(spec, num_classes)
    model = model.to_empty(device="cpu")
    cost = count_model(model, variant.resolution)
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
    from effscale.zoo import base_variant, get_spec, list_backbones

    rows = []
    for name in list_backbones(pattern):
        spec = get_spec(name)
        cost = count_cost(base_variant(name))
        rows.append(
            {
                "model": name,
                "family": spec.family,
                "resolution": spec.resolution,
                "blocks": spec.depth,
                "params": cost.params,
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
