"""Datasets loaded once per process: the points of one study that a process trains share
them (and planning reads their sizes without loading them twice).

One dataset at a time: loading another lets the first go. A transfer study plans on its
pre-training set (224-px Imagenette: 2 GB in memory) and then fine-tunes on another; each
process kept both, and two training processes beside a test run filled a 24 GB machine.
Loading again is cheap (folders are decoded once into a disk cache)."""

from dataclasses import dataclass

_datasets: dict = {}


def dataset(spec: str, min_size: int | None = None):
    """Load a dataset once per process: points of one study share it. ``min_size``: the
    resolution to be trained; images of mixed sizes are stored at least that large."""
    from effscale.data.decode import mixed_size

    cached = _datasets.get(spec)
    # a point sees the same pixels whichever points this process trained before it
    if cached is None or (cached.resized and cached.resolution != mixed_size(min_size)):
        from effscale.data import load_dataset

        _datasets.clear()  # one copy of one dataset per process: images take memory
        _datasets[spec] = load_dataset(spec, min_size=min_size)
    return _datasets[spec]


@dataclass(frozen=True)
class DataFacts:
    """What planning needs of a dataset: its sizes, classes and stored resolution."""

    train: int
    test: int
    num_classes: int
    resolution: int


# The published sizes of the sets effscale downloads: a plan or a dry run needs only these,
# so it never downloads (the download happens when a point first loads the set).
PUBLISHED = {
    "cifar10": DataFacts(50_000, 10_000, 10, 32),
    "cifar100": DataFacts(50_000, 10_000, 100, 32),
}


def facts(spec: str) -> DataFacts:
    """A dataset's sizes for planning: a downloadable set not yet in the cache by its
    published sizes (nothing downloaded), any other by loading it (once a process)."""
    from effscale.data import cifar

    if spec in PUBLISHED and not cifar.in_cache(spec):
        return PUBLISHED[spec]
    ds = dataset(spec)
    return DataFacts(len(ds.train_labels), len(ds.test_labels), ds.num_classes, ds.resolution)


def fetch_missing(specs) -> None:
    """Download the downloadable sets among ``specs`` that the cache lacks, one at a time,
    before workers start (each would otherwise fetch its own copy at once)."""
    from effscale.data import cifar

    for spec in sorted(set(specs) & set(PUBLISHED)):
        if not cifar.in_cache(spec):
            cifar.fetch(spec)
