"""The lines and bars the library draws while it works, beside effscale.output's progress:
a long decode's and a download's bars, and what a study says above its bars (a damaged file,
a stop asked for, a failed point). The one place besides output and the CLI that uses rich.
"""

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, wrap_file

from effscale import output


@contextmanager
def counting_bar(total: int, what: str):
    """Yield ``advance(n)``: a transient bar on stderr, counting to ``total`` (the images of
    a large folder being decoded, effscale.data.decode)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def reading_bar(file, total: int, description: str):
    """``file`` wrapped so that reading it draws a transient bar on stderr (a download,
    effscale.data.cifar); no bar when ``total`` is unknown (0)."""
    return wrap_file(
        file,
        total,
        description=description,
        console=Console(stderr=True),
        transient=True,
        disable=not total,
    )


def damaged(problem: str) -> None:
    """A damaged file met in a run directory (effscale.rundir), whose point trains again."""
    output.err_console.print(
        f"[yellow]damaged:[/] {escape(problem)}; that point is trained again",
        highlight=False,
        soft_wrap=True,
    )


def stopping(bar) -> None:
    """Above a study's bars: the first Ctrl-C was heard (effscale.study.executors.events)."""
    bar.console.print(
        "[yellow]stopping:[/] no new point starts; running ones stop at the end "
        "of their current step (Ctrl-C again: at once)"
    )


def point_failed(bar, key: str, error: str) -> None:
    """Above a study's bars: a point failed (the first line of its error.json)."""
    bar.console.print(f"[red]point {key} failed:[/] {escape(error.splitlines()[0])}")


class NoProgress:
    """Stands in for the rich display when progress is off (tests, scripts)."""

    console = output.err_console

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def remove_task(self, *a, **k):
        pass

    def mark(self):
        pass
