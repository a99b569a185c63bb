"""effscale export: a trained run's network as a file usable without effscale.

Examples:
    effscale export runs/quick/points/<key> --out exported
    effscale export runs/train --format state_dict --out exported
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.output import Format


@app.command(name="export")
def export_cmd(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="A train run directory, a study point directory (RUN_DIR/points/KEY) or a "
            "checkpoint.pt.",
        ),
    ],
    out: Annotated[str, typer.Option(metavar="DIR", help="Folder to write into.")] = "exported",
    fmt_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="[torchscript|state_dict|onnx]",
            help="torchscript (torch.jit.load alone runs it), state_dict (for "
            "effscale.build_model) or onnx (needs effscale[onnx]).",
        ),
    ] = "torchscript",
):
    """Export a trained network, with its preprocessing in preprocess.json beside it.

    Example: effscale export runs/quick/points/<key> --out exported
    """
    from effscale.trained import export

    with output.planning(f"exporting {run}"):
        written = export(run, out, fmt_)
    output.note("wrote " + ", ".join(str(p) for p in written), Format.table)
