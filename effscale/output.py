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
import sys
from enum import Enum

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


console = Console()
err_console = Console(stderr=True)


def fmt_value(v) -> str:
    """Human formatting: thousands separators for ints, 4 significant digits for floats."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def _columns(rows: list[dict], columns: list[str] | None) -> list[str]:
    if columns:
        return columns
    seen: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if not isinstance(v, (list, dict)):
                seen.setdefault(k)
    return list(seen)


def to_csv(rows: list[dict], columns: list[str] | None = None) -> str:
    cols = _columns(rows, columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(fmt_value(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


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
    screen: list[str] | None = None,
) -> None:
    """Render a list of rows in the chosen format on stdout.

    ``screen`` picks the columns of the on-screen table, which must fit a terminal;
    CSV, JSON and Markdown carry every column.
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
        # Names like efficientnet-b0[w0.5] are data, not rich markup: escape every string.
        table = Table(title=escape(title) if title else None, title_justify="left")
        cols = screen or _columns(data, columns)
        for c in cols:
            table.add_column(escape(c), justify="left" if _is_text(data, c) else "right")
        for row in data:
            table.add_row(*(escape(fmt_value(row.get(c))) for c in cols))
        console.print(table)


def record(data: dict, fmt: Format, title: str | None = None) -> None:
    """Render one result object: JSON as an object, the other formats as key/value rows."""
    fmt = Format(fmt)
    if fmt is Format.json:
        sys.stdout.write(to_json(_clean(data)) + "\n")
        return
    flat = [{"field": k, "value": v} for k, v in data.items() if not isinstance(v, (list, dict))]
    rows(flat, fmt, title)


def note(text: str, fmt: Format = Format.table) -> None:
    """A remark beside the data: stdout for human formats, stderr for machine ones."""
    if Format(fmt) in (Format.json, Format.csv):
        err_console.print(text, highlight=False, soft_wrap=True, markup=False)
    elif Format(fmt) is Format.markdown:
        sys.stdout.write(f"\n{text}\n")
    else:
        console.print(text, highlight=False, soft_wrap=True, markup=False)


def _is_text(data: list[dict], col: str) -> bool:
    return any(isinstance(r.get(col), str) for r in data)


def progress(transient: bool = False) -> Progress:
    """The one progress display: a bar per task (study above run), rate and ETA on each."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def show_run(bar: Progress):
    """An ``on_event`` for effscale.train that draws the run on ``bar``: one task per run,
    its messages printed above it."""
    task = None

    def on_event(kind: str, payload) -> None:
        nonlocal task
        if kind == "progress":
            if task is None:
                task = bar.add_task(payload["description"], total=payload["total"], info="")
            fields = {k: v for k, v in payload.items() if k not in ("description", "total")}
            bar.update(task, **fields)
        elif kind == "message":
            bar.console.print(payload, style="yellow", markup=False)

    return on_event
