"""effscale cam: class activation maps of trained variants side by side (paper Figure 7).

Examples:
    effscale cam runs/fig7/points/3f2a... runs/fig7/points/9b1c... --label baseline \\
        --label compound --data cifar10 --count 6 --out cam.png
    effscale cam runs/train/b0-a runs/train/b0-b --images photos/ --out cam.png
    effscale cam docs/results/figure7-imagenette/points/f7724505105069c8 \
        --data /work/data/imagenette --count 10 --out cam.png --format json
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import VARIANT, FormatOpt, flag_of, takes, variant_of
from effscale.errors import EffscaleError
from effscale.output import Format

CAM_VARIANT = VARIANT.pick(
    "depth width res_mult resolution base_resolution small_input base_width base_depth"
)
# The table on screen: the measures of each run (JSON, CSV and Markdown carry every field).
SCREEN = {
    "label": "run",
    "flops": "FLOPs",
    "flops_ratio": "x first",
    "top1": "top-1 %",
    "right": "right",
    "centre_share": "centre share",
    "agreement_with_first": "agreement with first",
}


@app.command()
@takes
def cam(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Trained runs, one column each: train run directories, study point "
            "directories (runs/<study>/points/<key>) or checkpoint.pt files."
        ),
    ],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Column title per run, in order (default: its variant)."),
    ] = None,
    images: Annotated[
        str | None, typer.Option("--images", help="A folder of images (jpg, png ...) to map.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Map test images of this dataset (embedded, synthetic, cifar10, cifar100 or "
            "a path); default: the first run's training data.",
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", help="Images: one per class in class order, then more.")
    ] = 6,
    out: Annotated[
        str,
        typer.Option("--out", help="The PNG to write; the measures go beside it (cam.json)."),
    ] = "cam.png",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Check that every run holds this variant (with the scaling flags); "
            "needed for plain state-dict files.",
        ),
    ] = None,
    options: dict = CAM_VARIANT,
    fmt: FormatOpt = Format.table,
):
    """Class activation maps (Zhou et al. 2016) of each run's predicted class, as a PNG grid.

    Rows are images at their stored size: the image, then per run its map (at the run's
    resolution, upsampled) and predicted class (green right, red wrong), under the run's
    FLOPs (relative to the first run's) and top-1. The table, also written beside the PNG as
    JSON: per run, its maps' mean share of mass in the central half of the image area
    (objects assumed centred, as in Imagenette) and mean correlation with the first run's.
    Needs backbones ending in global average pooling and a linear classifier.
    Example: effscale cam runs/train/a runs/train/b --data cifar10 --out cam.png
    """
    from effscale.cam import cam_figure

    defaults = {k: default for k, (_, default) in CAM_VARIANT.options.items()}
    given = [flag_of(k) for k, v in options.items() if v != defaults[k]]
    if model is None and given:
        raise EffscaleError(
            f"--model is needed with {', '.join(given)} (they name the variant each run must hold)",
            "add --model, or drop the flags",
        )
    variant = None if model is None else variant_of(model, options)
    result = cam_figure(
        runs, out, labels=label, images_dir=images, data=data, count=count, variant=variant
    )
    if fmt is Format.json:
        output.record(result, fmt)
        return
    output.rows(
        [{k: v for k, v in row.items() if k != "predictions"} for row in result["runs"]],
        fmt,
        title=f"Class activation maps of {result['images']} images",
        screen=SCREEN,
    )
    for note in result["notes"]:
        output.note(note, fmt)
    size = f"{result['width_px']}x{result['height_px']} px"
    output.note(f"wrote {out} ({size}) and {result['measures']}", fmt)
