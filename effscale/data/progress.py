"""How the data layer shows long work (a large folder decoding, a download): two hooks that
the output layer fills when a command runs (effscale.display.show_data_progress), and that
draw nothing otherwise, so the library used from Python stays silent and imports no rich.
"""

from contextlib import contextmanager, nullcontext


@contextmanager
def _silent_count(total: int, what: str):
    yield lambda n: None


def _silent_read(file, total: int, description: str):
    return nullcontext(file)


# counting(total, what): a context manager yielding advance(n), for a counted loop
counting = _silent_count
# reading(file, total, description): a context manager yielding a file-like wrapper of
# ``file`` whose reads advance a bar (total 0: unknown)
reading = _silent_read


def install(count, read) -> None:
    """Replace both hooks (the output layer's bars)."""
    global counting, reading
    counting, reading = count, read
