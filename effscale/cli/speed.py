"""effscale speed: this device's training speed, measured afresh.

Example:
    effscale speed
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import MAX_THREADS, DeviceOpt, FormatOpt
from effscale.output import Format


@app.command()
def speed(
    device: DeviceOpt = "auto",
    threads: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_THREADS, help="Torch threads per point (default: torch's)."),
    ] = None,
    fmt: FormatOpt = Format.table,
):
    """Measure this device's training speed afresh and cache it (for a week, and only when the
    machine was not busy): the FLOP/s every estimate (--dry-run, the time printed before a
    run) divides by.

    Measure again on a quieter machine, or after a change of hardware. Example: effscale speed
    """
    from effscale.study.estimate import measure_speed

    with output.planning("measuring") as say:
        say("a few training steps of a small model")
        measured = measure_speed(device, threads, fresh=True)
    row = {k: v for k, v in measured.__dict__.items() if k != "cached"} | {"busy": measured.busy}
    output.record(row, fmt)
    if measured.busy:
        output.note(
            f"warning: the machine was busy: the probe got {measured.cpu_share:.0%} of its "
            "threads' time, so this speed is not cached; measure again when it is idle, or "
            "with fewer --threads",
            fmt,
        )
