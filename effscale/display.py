"""What is drawn while work runs, on effscale.output's progress display: the callbacks that
draw a run (show_run), a study (show_study) and a counted loop (show_count) for the CLI,
and the bars of a long decode and a download. The one place besides output and the CLI
that uses rich.
"""

import time
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, wrap_file

from effscale.errors import as_flags


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


def show_data_progress() -> None:
    """Let the data layer draw its bars (large decodes, downloads) through rich."""
    from effscale.data import progress

    progress.install(counting_bar, reading_bar)


def show_count(bar, what: str):
    """An ``on_progress(done, total, label)`` for the library's counted loops (candidates
    counted, variants timed) that draws one task on ``bar``, removed when it is complete."""
    task = None

    def on_progress(done: int, total: int, label: str = "") -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(what, total=total, info="")
        bar.update(task, completed=done, info=label)
        if done >= total:
            bar.remove_task(task)
            task = None

    return on_progress


def show_run(bar):
    """An ``on_event`` for effscale.training.loop that draws the run on ``bar``: one task per run,
    its messages printed above it, a log line per epoch when the output is a log."""
    task = None

    def on_event(kind: str, payload) -> None:
        nonlocal task
        if kind == "progress":
            if task is None:
                task = bar.add_task(  # a resumed run starts where it stands: its rate
                    payload["description"],  # counts this session's samples only
                    total=payload["total"],
                    completed=payload.get("completed", 0),
                    info="",
                    unit="img",
                )
            fields = {k: v for k, v in payload.items() if k not in ("description", "total")}
            bar.update(task, **fields)
        elif kind == "message":
            bar.console.print(as_flags(str(payload)), style="yellow", markup=False)
        elif kind == "epoch":
            bar.mark()

    return on_event


def show_study(bar, study):
    """An ``on_event`` for effscale.study.engine.run_study that draws on ``bar``: the study's
    bar (count, rate, ETA), a bar per running point, and above them what was said (a damaged
    file, a stop asked for, a failed point, a point's messages)."""
    labels = {p.key: p.variant.short_label for p in study.points}
    study_task = bar.add_task(study.name, total=len(study.points), info="")
    runs: dict[str, int] = {}

    def on_event(kind: str, key: str | None, payload) -> None:
        if kind == "study":
            left, per_hour = payload["seconds_left"], payload["points_per_hour"]
            bar.update(
                study_task,
                completed=payload["completed"],
                eta_at=time.monotonic() + left if left is not None else None,
                rate=f"{per_hour:.3g} pt/h" if per_hour else "",
                info=f"{payload['failed']} failed" if payload["failed"] else "",
            )
        elif kind == "damaged":
            bar.console.print(
                f"[yellow]damaged:[/] {escape(payload)}; that point is trained again",
                highlight=False,
                soft_wrap=True,
            )
        elif kind == "stopping":
            bar.console.print(
                "[yellow]stopping:[/] no new point starts; running ones stop at the end "
                "of their current step (Ctrl-C again: at once)"
            )
        elif kind == "progress":
            if key not in runs:
                label = labels.get(key) or payload.get("description") or key
                runs[key] = bar.add_task(  # from where a resumed point stands (its rate)
                    label,
                    total=payload.get("total"),
                    completed=payload.get("completed", 0),
                    info="",
                    unit="img",
                )
            bar.update(runs[key], **{k: v for k, v in payload.items() if k != "description"})
        elif kind == "message":
            bar.console.print(as_flags(str(payload)), markup=False)
        elif kind == "epoch":
            bar.mark()
        elif kind in ("done", "failed"):
            if key in runs:
                bar.remove_task(runs.pop(key))
            if kind == "failed":
                first = as_flags(payload.splitlines()[0])
                bar.console.print(f"[red]point {key} failed:[/] {escape(first)}")

    return on_event
