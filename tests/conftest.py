import os
import re

import pytest
import torch

# One thread: tiny test models run faster single-threaded, and parallel test
# processes (subprocess tests) do not oversubscribe the cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _cost_cache(tmp_path_factory):
    """Tests count into their own cache unless CI gives a persistent one."""
    if "EFFSCALE_CACHE" not in os.environ:
        os.environ["EFFSCALE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


# A tiny study file: resnet18 at a quarter width and half depth on synthetic data, trained
# for a few hundred samples; ``tables`` are its [[sweep]] / [[transfer]] tables.
WIDTH_SWEEP = '[[sweep]]\ndim = "width"\nvalues = [1.0, 1.5]\n'
RESOLUTION_SWEEP = '[[sweep]]\ndim = "resolution"\nvalues = [1.0, 1.5]\n'
TRANSFER = (
    '[[transfer]]\npretrain = "synthetic"\nfinetune = "synthetic:8"\nfinetune_samples = 128\n'
)


def study_toml(
    *tables: str,
    name: str = "tiny",
    seeds: int | None = 2,
    samples: int | str = 512,
    batch_size: int | None = 64,
    blank_first: bool = True,
) -> str:
    """The text of a tiny study file: tables default to one width sweep, a None leaves its
    line out, and ``blank_first`` starts it with an empty line (errors name line numbers)."""
    return (
        "\n" * blank_first + f'name = "{name}"\nmodel = "resnet18"\ndata = "synthetic"\n'
        'budget = "smoke"\n'
        + (f"seeds = {seeds}\n" if seeds is not None else "")
        + f"base_width = 0.25\nbase_depth = 0.5\n\n[recipe]\nsamples = {samples}\n"
        + (f"batch_size = {batch_size}\n" if batch_size is not None else "")
        + "\n"
        + "\n".join(tables or (WIDTH_SWEEP,))
    )


def run_study_file(runner, app, tmp_path, text: str):
    """Write ``text`` as a study file and ``effscale run`` it (the invocation's result)."""
    f = tmp_path / "bad.toml"
    f.write_text(text)
    return f, runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "o")])


# `effscale train` options for a tiny network on synthetic data at the smoke budget.
TINY_TRAIN = ["resnet18", "--width", "0.25", "--depth", "0.5", "--data", "synthetic"]
TINY_TRAIN += ["--budget", "smoke"]


# A planning progress line ("estimating: counting resnet18 ... (7 s, 2 counted)"), printed on
# stderr only when planning takes over a second: on a busy machine, beside any error.
PROGRESS_LINE = re.compile(r"^[a-z][\w ]*: .+ \(\d+ s(, \d+ counted)?\)$")


def error_lines(stderr: str) -> list[str]:
    """stderr's lines less planning's progress lines: what a command said went wrong."""
    return [line for line in stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
