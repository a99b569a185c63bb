"""Cost commands: models, cost, table.

Examples:
    effscale models
    effscale cost resnet50 --width 2
    effscale table efficientnet
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli.app import app
from effscale.cli.options import (
    AlphaOpt,
    BaseDepthOpt,
    BaseResOpt,
    BaseWidthOpt,
    BetaOpt,
    ClassesOpt,
    DepthOpt,
    FormatOpt,
    GammaOpt,
    ModelArg,
    MultipleOpt,
    PhiOpt,
    ResMultOpt,
    ResolutionOpt,
    SmallInputOpt,
    WidthOpt,
)
from effscale.output import Format


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Wildcard filter, e.g. 'resnet*'.")] = "*",
    fmt: FormatOpt = Format.table,
):
    """List registered backbones with their native resolution, parameters and FLOPs.

    Example: effscale models 'efficientnet*' --format json
    """
    from effscale.cost import backbone_costs

    output.rows(
        backbone_costs(pattern),
        fmt,
        title="Registered backbones (1000 classes)",
        screen=["model", "resolution", "blocks", "params", "gflops", "activations"],
    )


@app.command()
def cost(
    model: ModelArg,
    depth: DepthOpt = None,
    width: WidthOpt = None,
    res_mult: ResMultOpt = None,
    resolution: ResolutionOpt = None,
    phi: PhiOpt = None,
    alpha: AlphaOpt = 1.2,
    beta: BetaOpt = 1.1,
    gamma: GammaOpt = 1.15,
    base_resolution: BaseResOpt = None,
    multiple: MultipleOpt = 4,
    small_input: SmallInputOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    num_classes: ClassesOpt = 1000,
    stages_only: Annotated[
        bool,
        typer.Option("--stages", help="Only the stage table (one CSV of stages with -f csv)."),
    ] = False,
    fmt: FormatOpt = Format.table,
):
    """One variant's FLOPs (multiply-adds), parameters and activations, with its stage table.

    CSV is one table: the variant's row, or with --stages the stage table; JSON is one
    object with the stages inside. Examples: effscale cost resnet50 --width 2;
    effscale cost resnet50 --format csv; effscale cost resnet50 --stages --format csv
    """
    from effscale.cost import describe
    from effscale.zoo import stage_table, variant_for

    variant = variant_for(
        model,
        depth=depth,
        width=width,
        res_mult=res_mult,
        resolution=resolution,
        phi=phi,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        base_resolution=base_resolution,
        multiple=multiple,
        small_input=small_input,
        base_width=base_width,
        base_depth=base_depth,
    )
    stages = stage_table(variant)
    stages_title = "Stages (after rounding, beside the base design)"
    if stages_only:
        output.rows(stages, fmt, title=stages_title)
        return
    row = describe(variant, num_classes)
    if fmt is Format.json:
        output.record({**row, "stages": stages}, fmt)
    elif fmt is Format.csv:
        output.rows([row], fmt)  # one CSV: a header and the variant's row
    else:
        output.record(row, fmt, title=variant.label)
        output.rows(stages, fmt, title=stages_title)


@app.command()
def table(
    name: Annotated[str, typer.Argument(help="efficientnet, table3 or table7.")],
    fmt: FormatOpt = Format.table,
):
    """Our counted costs beside the paper's published ones, with the deviation per row.

    efficientnet: B0-B7 vs Table 2; table3: scaled MobileNets and ResNet-50; table7: B0
    scaled by depth, width, resolution and compound. Example: effscale table efficientnet
    """
    from effscale.paper import paper_table

    screen = (
        [
            "model",
            "resolution",
            "params",
            "paper_params_m",
            "gflops",
            "paper_gflops",
            "deviation_pct",
            "torchvision_gflops",
        ]
        if name == "efficientnet"
        else ["paper_model", "d", "w", "r", "resolution", "gflops", "paper_gflops", "deviation_pct"]
    )
    output.rows(paper_table(name), fmt, title=f"effscale vs the paper: {name}", screen=screen)
    if name == "table3":
        output.note(
            "The paper does not give its ResNet/MobileNet scaling rules; effscale scales every "
            "stage's repeats (ceil) and every channel count (stem, inner widths, outputs, head; "
            "official round_filters), so deviations here are rule differences, not errors.",
            fmt,
        )
