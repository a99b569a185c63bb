"""The backbone registry: a name -> base-spec function dict, fed two ways.

In-tree families use the ``@register_backbone`` decorator (timm style: the function's
name, with ``_`` read as ``-``, is the backbone's name). Other packages add backbones
without touching effscale through the entry-point group ``effscale.backbones``; each entry
point names a function that returns a ``BackboneSpec``.
"""

import difflib
import fnmatch
import re
from collections.abc import Callable
from importlib.metadata import entry_points

from effscale.errors import EffscaleError
from effscale.spec import BackboneSpec

ENTRY_POINT_GROUP = "effscale.backbones"

_BACKBONES: dict[str, Callable[[], BackboneSpec]] = {}
_entry_points_loaded = False
# Backbones that are any nn.Module: name -> f(depth_mult, width_mult, num_classes) -> module.
_FACTORIES: dict[str, Callable] = {}
MODULE = "module"  # the family of such a backbone's spec: no stages, a factory builds it


def register_backbone(fn: Callable[[], BackboneSpec]) -> Callable[[], BackboneSpec]:
    """Register a function returning a base spec, under its own name (``_`` -> ``-``)."""
    _BACKBONES[fn.__name__.replace("_", "-")] = fn
    return fn


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BACKBONES:
            continue  # in-tree names win; a plugin cannot silently replace resnet50
        try:
            loaded = ep.load()
            if ep.name not in _BACKBONES:  # importing it may have registered it already
                _BACKBONES[ep.name] = loaded  # (register_module, or register_backbone)
        except Exception as e:  # a broken plugin must not take the whole tool down
            import warnings

            warnings.warn(
                f"backbone plugin {ep.name!r} ({ep.value}) failed to load: {e}", stacklevel=2
            )


def register_module(name: str | None = None, *, resolution: int = 224):
    """Register any network as a backbone: ``f(depth_mult, width_mult, num_classes)``
    returning an ``nn.Module`` (the decorated function's name, ``_`` read as ``-``, unless
    ``name``). effscale passes the depth and width multipliers for the factory to apply as
    it sees fit (repeats, channels); the resolution stays effscale's (``resolution`` is the
    native one, r = 1), so the module must take any input size (end in adaptive pooling).
    Costs are counted by fvcore on the built module, as for every backbone; CAM and export
    need its classifier to be a Linear named ``fc`` after pooling (they say so otherwise)."""

    def add(fn: Callable) -> Callable:
        key = name or fn.__name__.replace("_", "-")
        reference = f"{fn.__module__}.{fn.__qualname__}"
        _FACTORIES[key] = fn
        _BACKBONES[key] = lambda: BackboneSpec(
            name=key, family=MODULE, stages=(), stem_channels=0, stem_stride=1,
            resolution=resolution, reference=reference,
        )  # fmt: skip
        return fn

    return add


def module_factory(name: str) -> Callable | None:
    """The factory of a backbone registered with register_module (None for a spec's)."""
    return _FACTORIES.get(name)


def registered_in(name: str) -> str:
    """The module whose code registered backbone ``name`` ("__main__" for a script or a
    notebook): a worker process must import it to know the backbone."""
    get_spec(name)  # an unknown name: its message
    return (_FACTORIES.get(name) or _BACKBONES[name]).__module__


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style wildcard, e.g. ``resnet*``."""
    _load_entry_points()
    return sorted((n for n in _BACKBONES if fnmatch.fnmatch(n, pattern)), key=_natural)


def _natural(name: str) -> list:
    """Sort resnet18 before resnet101: digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def get_spec(name: str) -> BackboneSpec:
    """The base spec of a registered backbone; unknown names suggest the closest ones."""
    _load_entry_points()
    if name.startswith("timm:") and name not in _BACKBONES:
        raise EffscaleError(
            f"{name} is a timm model: effscale costs timm models but builds, scales and "
            "trains only its registered backbones",
            f"use `effscale cost {name}`, or `effscale models` for the backbones",
        )
    if name not in _BACKBONES:
        close = difflib.get_close_matches(name, _BACKBONES, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see `effscale models`"
        raise EffscaleError(f"unknown model {name!r}; known: {', '.join(list_backbones())}", hint)
    spec = _BACKBONES[name]()
    if not isinstance(spec, BackboneSpec):
        raise EffscaleError(f"backbone {name!r} did not return a BackboneSpec")
    return spec
