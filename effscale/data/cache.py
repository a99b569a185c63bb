"""Datasets loaded once per process: the points of one study that a process trains share
them (and planning reads their sizes without loading them twice).

One dataset at a time: loading another lets the first go. A transfer study plans on its
pre-training set (224-px Imagenette: 2 GB in memory) and then fine-tunes on another; each
process kept both, and two training processes beside a test run filled a 24 GB machine.
Loading again is cheap (folders are decoded once into a disk cache)."""

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
