"""How big a network would be, from its spec alone: no module is built, nothing allocated.

Parameters and activations (output elements of the convolutions and the classifier, as
effscale.cost counts them) follow the blocks of zoo/layers.py layer by layer, batch norm
left out; tests/test_reliability.py holds the estimates to the counted costs of every
registered backbone. Their use is to refuse variants that could never be built here
(``--width 300``, ``--depth 1e6``, ``--resolution 30000``, a large phi) with the size they
would need, before torch tries to allocate it.
"""

import os

from effscale.errors import EffscaleError
from effscale.spec import BackboneSpec, StageSpec

BYTES = 4  # float32
# A forward pass at batch 1 (counting a variant, or a CAM) keeps about this many tensors of
# each conv's output size alive at once: the output, its batch norm and its activation.
LIVE_PER_ACTIVATION = 3


def _block(kind: str, s: StageSpec, w_in: int, px_in: int, px_out: int) -> tuple[int, int]:
    """(parameters, activations) of one block of a stage."""
    w_out, k = s.channels, s.kernel
    shortcut = w_in * w_out if (px_in != px_out or w_in != w_out) else 0
    if kind == "mbconv":
        w_mid = int(round(w_in * s.expand))
        w_se = max(1, int(w_in * s.se_ratio)) if s.se_ratio > 0 else 0
        pw = w_in * w_mid if w_mid != w_in else 0
        params = pw + w_mid * k * k + 2 * w_mid * w_se + w_mid * w_out
        acts = (w_mid * px_in**2 if pw else 0) + (w_mid + w_out) * px_out**2
    elif kind == "ds":
        params = w_in * k * k + w_in * w_out
        acts = (w_in + w_out) * px_out**2
    elif kind == "bottleneck":
        mid = s.mid
        params = w_in * mid + k * k * mid * mid + mid * w_out + shortcut
        acts = mid * px_in**2 + (mid + w_out + (w_out if shortcut else 0)) * px_out**2
    else:  # basic, and blocks registered elsewhere: two 3x3 convs
        mid = s.mid or w_out
        params = 9 * w_in * mid + 9 * mid * w_out + shortcut
        acts = (mid + w_out + (w_out if shortcut else 0)) * px_out**2
    return params, acts


def footprint(spec: BackboneSpec, resolution: int, num_classes: int = 1000) -> tuple[int, int]:
    """Estimated (parameters, activations at batch 1) of ``spec`` at ``resolution`` px."""
    px = -(-resolution // spec.stem_stride)
    params = 3 * spec.stem_channels * spec.stem_kernel**2
    acts = spec.stem_channels * px**2
    if spec.stem_pool:
        px = -(-px // 2)
    w_in = spec.stem_channels
    for s in spec.stages:
        if s.repeats < 1:
            continue
        px_out = -(-px // s.stride)
        p1, a1 = _block(s.block, s, w_in, px, px_out)  # the first block strides and widens
        p, a = _block(s.block, s, s.channels, px_out, px_out)
        params, acts = params + p1 + (s.repeats - 1) * p, acts + a1 + (s.repeats - 1) * a
        w_in, px = s.channels, px_out
    if spec.head_channels:
        params += w_in * spec.head_channels
        acts += spec.head_channels * px**2
        w_in = spec.head_channels
    return params + (w_in + 1) * num_classes, acts + num_classes


def memory_limit() -> int:
    """Bytes a network may take: $EFFSCALE_MAX_BYTES, else this machine's memory."""
    if env := os.environ.get("EFFSCALE_MAX_BYTES"):
        try:
            return int(float(env))
        except ValueError:
            raise EffscaleError(f"EFFSCALE_MAX_BYTES={env!r} is not a number of bytes") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a 16 GiB machine
        return 16 * 2**30


def check_footprint(spec: BackboneSpec, resolution: int, label: str) -> None:
    """Refuse a network whose weights and one forward pass at batch 1 would not fit in
    memory_limit(), saying how much it would need."""
    params, acts = footprint(spec, resolution)
    need = BYTES * (params + LIVE_PER_ACTIVATION * acts)
    limit = memory_limit()
    if need > limit:
        raise EffscaleError(
            f"{label} would need about {_size(need)} to build and run at batch 1 "
            f"({params:.3g} parameters, {acts:.3g} activations); the limit is {_size(limit)} "
            f"({'EFFSCALE_MAX_BYTES' if os.environ.get('EFFSCALE_MAX_BYTES') else 'memory'})",
            "scale it less: a smaller width, depth, resolution or phi",
        )


def _size(n: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            value = n / scale
            if value >= 1e6:
                return f"{value:.2g} {unit}"
            return f"{value:,.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n:,.0f} bytes"
