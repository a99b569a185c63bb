"""What a dataset spec names, read without loading any images.

A spec (effscale.data.sources.load_dataset) is one of four kinds: "embedded" (inside the
package), "synthetic[:N]" (generated), a download ("cifar10", "cifar100": fetched into the
cache on first use) or a path. Studies ask this module, before planning anything, whether
each of their datasets is at hand, and figures name a dataset by ``short_name``, not by
the path it happened to sit at on one machine.
"""

import os
from pathlib import Path

from effscale.data import cifar
from effscale.errors import EffscaleError

KNOWN = "embedded, synthetic[:N], cifar10 or cifar100"


def kind(spec: str) -> str:
    """The spec's kind: "embedded", "synthetic", "download" or "path"."""
    spec = os.fspath(spec)
    if spec == "embedded":
        return "embedded"
    if spec == "synthetic" or spec.startswith("synthetic:"):
        return "synthetic"
    return "download" if spec in cifar.FORMATS else "path"


def short_name(spec: str) -> str:
    """The dataset's name for a caption: a name stays as it is ("cifar10", "synthetic:8",
    "imagenette"); a path gives its last folder ("/work/data/imagenette" -> "imagenette"),
    and a CIFAR batches folder the set it holds ("cifar-100-python" -> "cifar100")."""
    spec = os.fspath(spec)
    if kind(spec) != "path" or not any(c in spec for c in "/\\~"):
        return spec
    name = Path(spec.rstrip("/\\")).name or spec
    by_dir = {fmt["dir"]: k for k, fmt in cifar.FORMATS.items()}
    return by_dir.get(name, name)


def needs(specs: list[str]) -> str:
    """What a study's datasets need beyond effscale itself, for `effscale studies`:
    "download: cifar100", "path: imagenette" (a folder to give), both, or "-"."""
    said = []
    for label, want in (("download", "download"), ("path", "path")):
        names = sorted({s for s in specs if kind(s) == want})
        if names:
            said.append(f"{label}: {', '.join(names)}")
    return "; ".join(said) or "-"


def missing(spec: str, fetch: bool = True) -> str | None:
    """Why ``spec`` is not at hand (None when it is): a download that is not in the cache
    and cannot be fetched now (it is fetched when it can), or a path that does not exist.

    Cheap: it opens no image. A download is attempted here, before any planning, so that
    a machine without a network hears of it at once rather than after the plan; not with
    ``fetch=False`` (a dry run writes and fetches nothing: it plans on published sizes)."""
    spec = os.fspath(spec)
    what = kind(spec)
    if what == "download":
        if cifar.in_cache(spec) or not fetch:
            return None
        title = cifar.FORMATS[spec]["title"]
        try:
            cifar.fetch(spec)
        except EffscaleError as e:
            return f"{title} is not in {cifar.cached(spec).parent}; {e.message}"
        return None
    if what == "path" and not Path(spec).expanduser().exists():
        return f"dataset {spec} does not exist (it is not {KNOWN}, nor a folder)"
    return None


def local_example(spec: str) -> str:
    """A path to show in a hint: /path/to/cifar-100-python for a download, else PATH."""
    return f"/path/to/{cifar.FORMATS[spec]['dir']}" if kind(spec) == "download" else "PATH"
