"""All command output goes through here: rows rendered as a rich table, CSV, JSON or Markdown.

Commands never format tables themselves. JSON is the stable, machine-readable form: a list
of row objects for listing commands, one object for single results. Notes (which rule was
used, what was skipped) go to stdout beside a human table and to stderr beside CSV/JSON,
so machine output stays clean.
"""

import csv
import io
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from enum import Enum

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import Progress
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from effscale.errors import as_flags
from effscale.text import column_names, fmt_flops, fmt_seconds, fmt_value, to_markdown  # noqa: F401  (re-exported)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


console = Console()
err_console = Console(stderr=True)


def to_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    cols = column_names(rows, columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _json_default(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=False)


def _clean(obj):
    """NaN and inf are not JSON: write null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def rows(
    data: list[dict],
    fmt: Format,
    title: str | None = None,
    columns: list[str] | None = None,
    screen: list[str] | dict[str, str] | None = None,
) -> None:
    """Render a list of rows in the chosen format on stdout.

    ``screen`` picks the columns of the on-screen table, which must fit a terminal (a dict
    also gives each a shorter header); CSV, JSON and Markdown carry every column.
    """
    fmt = Format(fmt)
    if fmt is Format.json:
        sys.stdout.write(to_json(_clean(data)) + "\n")
    elif fmt is Format.csv:
        sys.stdout.write(to_csv(data, columns))
    elif fmt is Format.markdown:
        if title:
            sys.stdout.write(f"### {title}\n\n")
        sys.stdout.write(to_markdown(data, columns))
    else:
        headers = screen if isinstance(screen, dict) else {c: c for c in screen or []}
        _print_table(data, list(headers) or column_names(data, columns), headers, title)


# A table's frame: a border and a space either side of every cell, and the closing border.
CELL_FRAME, TABLE_FRAME = 3, 1
WORD_WRAP = 20  # a text column may be narrowed down to its longest word, or this
SHORT_TEXT = 12  # text cells up to this long never wrap
HEADER_FOLD = 10  # a longer header folds onto a second line rather than widen a column


def _column(data: list[dict], c: str, header: str, fold: int = HEADER_FOLD) -> dict:
    """How one column renders: its cells as text, whether it is text, and its width: a
    number column is exactly as wide as its longest value (every digit kept; a long header
    folds onto more lines), a text column at least its longest word (up to WORD_WRAP) and
    wraps between words. ``fold``: the widest a header may make a column."""
    cells = [fmt_value(row.get(c)) for row in data]
    text = _is_text(data, c)
    head = min(len(header), fold)
    if text:
        words = max((len(w) for v in cells for w in v.split()), default=1)
        short = max(map(len, cells), default=1)  # "1.2 h" stays on one line
        narrowest = max(min(words, WORD_WRAP), min(short, SHORT_TEXT), head)
        return {"header": header, "cells": cells, "text": True, "min": narrowest, "width": None}
    width = max(max(map(len, cells), default=1), head)
    return {"header": header, "cells": cells, "text": False, "min": width, "width": width}


def _groups(cols: list[dict], width: int) -> list[list[dict]]:
    """Columns in groups that each fit ``width`` at their narrowest, the first column (what
    a row is) repeated in every group: a table too wide for the terminal is shown in parts,
    never with a number cut or a column dropped."""
    first, rest = cols[0], cols[1:]
    groups, group = [], [first]
    used = TABLE_FRAME + CELL_FRAME + first["min"]
    for col in rest:
        need = CELL_FRAME + col["min"]
        if len(group) > 1 and used + need > width:
            groups.append(group)
            group, used = [first], TABLE_FRAME + CELL_FRAME + first["min"]
        group.append(col)
        used += need
    return groups + [group]


def _table(cols: list[dict], n_rows: int, title: str | None) -> Table:
    # Names like efficientnet-b0[w0.5] are data, not rich markup: escape every string.
    table = Table(title=escape(title) if title else None, title_justify="left")
    for col in cols:
        table.add_column(
            escape(col["header"]),
            justify="left" if col["text"] else "right",
            min_width=col["min"],
            width=col["width"],
            overflow="fold",  # a header or an unbroken word wraps; rich would cut it with "…"
        )
    for i in range(n_rows):
        table.add_row(*(escape(col["cells"][i]) for col in cols))
    return table


def _print_table(data: list[dict], keys: list[str], headers: dict, title: str | None) -> None:
    """Rows as one rich table on a terminal as wide as it needs, in column groups when it is
    narrower; through a pipe or into a file, one table at its natural width (nothing there
    is a terminal's width)."""
    if not keys:
        console.print(Table(title=escape(title) if title else None, title_justify="left"))
        return
    if not console.is_terminal:
        cols = [_column(data, c, headers.get(c, c), fold=10**5) for c in keys]
        table = _table(cols, len(data), title)
        width = Measurement.get(console, console.options.update(width=10**5), table).maximum
        Console(file=console.file, width=max(width, 20), highlight=False).print(table)
        return
    cols = [_column(data, c, headers.get(c, c)) for c in keys]
    groups = _groups(cols, console.width)
    for n, group in enumerate(groups):
        part = f" ({n + 1} of {len(groups)})" if len(groups) > 1 else ""
        console.print(_table(group, len(data), (title or "") + part if title or part else None))


def record(data: dict, fmt: Format, title: str | None = None) -> None:
    """Render one result object: JSON as an object, the other formats as key/value rows."""
    fmt = Format(fmt)
    if fmt is Format.json:
        sys.stdout.write(to_json(_clean(data)) + "\n")
        return
    flat = [{"field": k, "value": v} for k, v in data.items() if not isinstance(v, (list, dict))]
    rows(flat, fmt, title)


def note(text: str, fmt: Format = Format.table) -> None:
    """A remark beside the data: stdout for human formats, stderr for machine ones; the
    library's parameter names as this command's flags (effscale.errors.as_flags)."""
    text = as_flags(text)
    if Format(fmt) in (Format.json, Format.csv):
        err_console.print(text, highlight=False, soft_wrap=True, markup=False)
    elif Format(fmt) is Format.markdown:
        sys.stdout.write(f"\n{text}\n")
    else:
        console.print(text, highlight=False, soft_wrap=True, markup=False)


def _is_text(data: list[dict], col: str) -> bool:
    return any(isinstance(r.get(col), str) for r in data)


# ---------------------------------------------------------------------------------------
# Progress: bars on a terminal, plain lines in a log
# ---------------------------------------------------------------------------------------

PLAIN_INTERVAL = float(os.environ.get("EFFSCALE_PROGRESS_SECONDS", 30))  # between log lines


def _clock(seconds: float | None) -> str:
    """H:MM:SS, or days and hours past a day; -:--:-- when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--"
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _eta(task) -> float | None:
    """Seconds left: the ``eta_at`` field (a time.monotonic() deadline: the study bar's,
    from the points' estimates), else rich's from the task's speed."""
    at = task.fields.get("eta_at")
    if at is not None:
        return at - time.monotonic()
    return task.time_remaining


def _rate(task) -> str:
    """The task's own ``rate`` text, or its speed in its ``unit`` per second."""
    if task.fields.get("rate"):
        return str(task.fields["rate"])
    speed = task.speed
    return f"{speed:,.0f} {task.fields.get('unit', 'it')}/s" if speed else ""


def _count(task) -> str:
    done = f"{int(task.completed):,}"
    return f"{done}/{int(task.total):,}" if task.total is not None else done


# What a line keeps as the width shrinks: the count and the ETA always, then the rate, the
# label (shortened), the bar, the info text and the elapsed time, in that order.
_PRIORITY = ("count", "eta", "rate", "label", "bar", "info", "elapsed")
_SHOWN = ("label", "bar", "count", "rate", "eta", "elapsed", "info")  # left to right
_MIN = {"label": 12, "bar": 8, "info": 12}
_MAX = {"bar": 30}


def fit_line(parts: dict[str, str], width: int, label: int | None = None) -> dict[str, int]:
    """Widths for the parts of a progress line that fit ``width`` columns, one space apart;
    parts dropped in reverse _PRIORITY order, the label and info shortened first. ``label``:
    the label's width when lines are aligned (padded or shortened to it)."""
    texts = {k: v for k, v in parts.items() if v or k == "bar"}
    size = {k: len(v) for k, v in texts.items()}
    if label is not None and "label" in size:
        size["label"] = label
    chosen: dict[str, int] = {}

    def spare() -> int:
        return width - sum(chosen.values()) - max(0, len(chosen) - 1)

    def add(key: str) -> None:
        if key in texts:
            need = (
                min(_MIN[key], size[key]) if key in ("label", "info") else _MIN.get(key, size[key])
            )
            if need + (1 if chosen else 0) <= spare() or key in ("count", "eta"):
                chosen[key] = need

    def grow(key: str) -> None:
        if key in chosen and spare() > 0:
            chosen[key] += max(0, min(spare(), _MAX.get(key, size.get(key, 0)) - chosen[key]))

    for key in _PRIORITY[:5]:  # count, eta, rate, label, bar
        add(key)
    grow("label")  # the whole label before any less important part
    for key in _PRIORITY[5:]:  # info, elapsed
        add(key)
    grow("bar")
    grow("info")
    return {k: chosen[k] for k in _SHOWN if k in chosen}


class Bars(Progress):
    """The terminal display: one line per task (a study above its points), each fitted to
    the console width so that count, rate and ETA stay visible at 80 columns."""

    def get_renderables(self):
        live = getattr(self, "live", None)  # rich renders once before it has its Live
        width = live.console.width if live else 80
        lines = [self._parts(task) for task in self.tasks if task.visible]
        # one label width for every line, so that the bars start in one column
        label = max((fit_line(p, width).get("label", 0) for _, p in lines), default=0)
        yield Group(*(self._line(task, parts, fit_line(parts, width, label))
                      for task, parts in lines))  # fmt: skip

    @staticmethod
    def _parts(task) -> tuple:
        return task, {
            "label": task.description,
            "bar": "",
            "count": _count(task),
            "rate": _rate(task),
            "eta": f"eta {_clock(_eta(task))}",
            "elapsed": _clock(task.elapsed),
            "info": str(task.fields.get("info") or ""),
        }

    @staticmethod
    def _line(task, parts: dict[str, str], widths: dict[str, int]):
        grid = Table.grid(padding=(0, 1, 0, 0), pad_edge=False)
        cells = []
        for key, w in widths.items():
            grid.add_column(width=w, no_wrap=True, overflow="ellipsis")
            if key == "bar":
                cells.append(ProgressBar(task.total, task.completed, width=w))
            else:
                style = {"label": "bold", "eta": "cyan", "elapsed": "dim"}.get(key, "")
                cells.append(Text(parts[key], style=style))
        grid.add_row(*cells)
        return grid

    def mark(self) -> None:
        """A moment worth a log line (an epoch ended); the bars show it already."""


class PlainProgress:
    """The same interface for a stderr that is not a terminal (a file, CI, a cluster log):
    a plain line per task when it starts and ends, and all tasks every PLAIN_INTERVAL
    seconds (and at ``mark()``, once an epoch), so that logs show the run is alive."""

    def __init__(self, console: Console, interval: float | None = None):
        self.console = console
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self.tasks: dict[int, dict] = {}
        self._next_id = 0
        self._last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description: str, total=None, completed=0, **fields) -> int:
        task_id, self._next_id = self._next_id, self._next_id + 1
        now = time.monotonic()
        self.tasks[task_id] = {
            "description": description, "total": total, "completed": completed,
            "start": now, "start_completed": completed, "fields": fields,
        }  # fmt: skip
        self._print(task_id)
        return task_id

    def update(self, task_id, *, total=None, completed=None, advance=None, description=None,
               **fields) -> None:  # fmt: skip
        t = self.tasks.get(task_id)
        if t is None:
            return
        if total is not None:
            t["total"] = total
        if completed is not None:
            t["completed"] = completed
        if advance:
            t["completed"] += advance
        if description is not None:
            t["description"] = description
        t["fields"].update({k: v for k, v in fields.items() if k != "visible"})
        if time.monotonic() - self._last >= self.interval:
            self.mark()

    def advance(self, task_id, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def remove_task(self, task_id) -> None:
        if task_id in self.tasks:
            self._print(task_id, final=True)
            del self.tasks[task_id]

    def mark(self) -> None:
        for task_id in list(self.tasks):
            self._print(task_id)

    def line(self, task_id, final: bool = False) -> str:
        t = self.tasks[task_id]
        done, total = t["completed"], t["total"]
        count = f"{int(done):,}/{int(total):,}" if total is not None else f"{int(done):,}"
        elapsed = time.monotonic() - t["start"]
        speed = (done - t["start_completed"]) / elapsed if elapsed > 0 else 0.0
        fields = t["fields"]
        rate = fields.get("rate") or (
            f"{speed:,.0f} {fields.get('unit', 'it')}/s" if speed > 0 else ""
        )
        if final:
            eta = f"done in {_clock(elapsed)}"
        elif fields.get("eta_at") is not None:
            eta = f"eta {_clock(fields['eta_at'] - time.monotonic())}"
        elif speed > 0 and total is not None:
            eta = f"eta {_clock((total - done) / speed)}"
        else:
            eta = "eta -:--:--"
        info = fields.get("info") or ""
        return " | ".join(x for x in (t["description"], count, rate, eta, info) if x)

    def _print(self, task_id, final: bool = False) -> None:
        self._last = time.monotonic()
        self.console.print(self.line(task_id, final), markup=False, highlight=False,
                           soft_wrap=True)  # fmt: skip


def progress(transient: bool = False, console: Console | None = None):
    """The one progress display: bars with count, rate and ETA on a terminal (study above
    run), plain lines every PLAIN_INTERVAL seconds when stderr is a file or a pipe."""
    console = console or err_console
    if not console.is_terminal:
        return PlainProgress(console)
    return Bars(console=console, transient=transient)


@contextmanager
def planning(what: str = "planning"):
    """Show what planning is doing when it takes longer than a second: the variant being
    counted (effscale.cost.counting), or what ``say(text)`` last said. A transient status
    line on a terminal; otherwise a plain line at most every PLAIN_INTERVAL seconds.
    Yields ``say``."""
    from effscale import cost

    t0 = time.monotonic()
    state = {"text": "", "counted": 0, "printed": None}

    def text() -> str:
        counted = f", {state['counted']} counted" if state["counted"] else ""
        return f"{what}: {state['text']} ({time.monotonic() - t0:.0f} s{counted})"

    def say(message: str) -> None:
        state["text"] = message
        if not err_console.is_terminal and time.monotonic() - t0 >= 1:
            last = state["printed"]
            if last is None or time.monotonic() - last >= PLAIN_INTERVAL:
                state["printed"] = time.monotonic()
                err_console.print(text(), markup=False, highlight=False, soft_wrap=True)

    def counting(variant) -> None:
        state["counted"] += 1
        say(f"counting {variant.label}")

    def renderable():
        if time.monotonic() - t0 < 1 or not state["text"]:
            return Group()
        return Text(text(), style="dim", no_wrap=True, overflow="ellipsis")

    with cost.counting(counting):
        if err_console.is_terminal:
            with Live(console=err_console, transient=True, get_renderable=renderable):
                yield say
        else:
            yield say
