"""effscale speed: this device's training speed, measured afresh.

Example:
    effscale speed
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import DeviceOpt, FormatOpt
from effscale.output import Format


@app.command()
def speed(
    device: DeviceOpt = "auto",
    threads: Annotated[
        int | None, typer.Option(help="Torch threads per point (default: torch's).")
    ] = None,
    fmt: FormatOpt = Format.table,
):
    """Measure this device's training speed afresh and cache it: the FLOP/s every estimate
    (--dry-run, the time printed before a run) divides by.

    Measure again on a quieter machine, or after a change of hardware. Example: effscale speed
    """
    from effscale.study.estimate import measure_speed

    with output.planning("measuring") as say:
        say("a few training steps of a small model")
        measured = measure_speed(device, threads, fresh=True)
    output.record({k: v for k, v in measured.__dict__.items() if k != "cached"}, fmt)
