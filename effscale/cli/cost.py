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
from effscale.cli.options import VARIANT, FormatOpt, ModelArg, flag_of, takes, variant_of
from effscale.output import Format


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Wildcard filter, e.g. 'resnet*'.")] = "*",
    fmt: FormatOpt = Format.table,
):
    """List registered backbones with their native resolution, parameters and FLOPs.

    A pattern starting with timm: lists timm's models instead (timm installed: the timm
    extra). Examples: effscale models 'efficientnet*' --format json; effscale models 'timm:*eff*'
    """
    from effscale.cost import backbone_costs
    from effscale.timm_cost import timm_costs
    from effscale.zoo.timm_models import is_timm

    output.rows(
        timm_costs(pattern) if is_timm(pattern) else backbone_costs(pattern),
        fmt,
        title="Registered backbones (1000 classes)",
        screen=["model", "resolution", "blocks", "params", "gflops", "activations"],
    )


@app.command()
@takes
def cost(
    ctx: typer.Context,
    model: ModelArg,
    options: dict = VARIANT,
    stages_only: Annotated[
        bool,
        typer.Option("--stages", help="Only the stage table (one CSV of stages with -f csv)."),
    ] = False,
    fmt: FormatOpt = Format.table,
):
    """One variant's FLOPs (multiply-adds), parameters and activations, with its stage table.

    CSV is one table: the variant's row, or with --stages the stage table; JSON is one
    object with the stages inside. MODEL may be timm:NAME (the timm extra): counted the same
    way, scaled in depth and width for timm's efficientnet_b0..l2. Examples: effscale cost
    resnet50 --width 2; effscale cost resnet50 --stages --format csv; effscale cost timm:resnet50
    """
    from effscale.cost import describe
    from effscale.zoo import stage_table
    from effscale.zoo.timm_models import is_timm

    if is_timm(model):
        _timm_cost(ctx, model, options, stages_only, fmt)
        return
    variant = variant_of(model, options)
    stages = stage_table(variant)
    stages_title = "Stages (after rounding, beside the base design)"
    if stages_only:
        output.rows(stages, fmt, title=stages_title)
        return
    row = describe(variant, options["num_classes"])
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


SCALE = ("depth", "width", "res_mult", "resolution")


def _timm_cost(ctx, model, options: dict, stages_only, fmt) -> None:
    """`effscale cost timm:NAME`: timm's model, counted like ours (effscale.zoo.timm_models)."""
    from effscale.errors import EffscaleError
    from effscale.scaling import compound
    from effscale.timm_cost import describe_timm

    ours = ("base_resolution", "small_input", "base_width", "base_depth")
    given = [n for n in ours if ctx.get_parameter_source(n).name != "DEFAULT"]
    if given or stages_only:
        flag = flag_of(given[0]) if given else "--stages"
        raise EffscaleError(
            f"{flag} applies to effscale's own backbones, not to timm models",
            "timm models take --depth, --width (efficientnet_b*), --res-mult, --resolution, "
            "--phi and --num-classes",
        )
    depth, width, res_mult, resolution = (options[k] for k in SCALE)
    if options["phi"] is not None:
        if any(v is not None for v in (depth, width, res_mult, resolution)):
            raise EffscaleError("--phi sets depth, width and resolution together", "drop one")
        depth, width, res_mult = compound(*(options[k] for k in ("phi", "alpha", "beta", "gamma")))
    if res_mult is not None and resolution is not None:  # describe_timm's check, in flags
        raise EffscaleError("--resolution and --res-mult both set the input size", "give one")
    row = describe_timm(
        model,
        d=depth if depth is not None else 1.0,
        w=width if width is not None else 1.0,
        r=res_mult,
        resolution=resolution,
        multiple=options["multiple"],
        num_classes=options["num_classes"],
    )
    if fmt is Format.csv:
        output.rows([row], fmt)
    else:
        output.record(row, fmt, title=model)
