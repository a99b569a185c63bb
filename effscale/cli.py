"""effscale's command line: each command parses, calls the library, and prints.

Examples:
    effscale models
    effscale cost resnet50 --width 2
    effscale table efficientnet
    effscale compound --model efficientnet-b0 --phi 0..7 --cost-only
"""

from typing import Annotated

import typer

from effscale import output
from effscale.errors import EffscaleError
from effscale.output import Format

try:  # typer >= 0.17 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click import UsageError


class _Group(typer.core.TyperGroup):
    """Known errors become one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EffscaleError as e:
            output.err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except UsageError as e:
            sub = f" {e.ctx.info_name}" if e.ctx and e.ctx.parent else ""
            output.err_console.print(
                f"[bold red]error:[/] {e.format_message()} (see `effscale{sub} --help`)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    help="Model-scaling studies in PyTorch: scale a backbone by depth, width, resolution or "
    "the EfficientNet compound coefficient, count its cost, train it briefly, and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---- shared options, defined once ---------------------------------------------------

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
ModelArg = Annotated[str, typer.Argument(help="A registered backbone, see `effscale models`.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="A registered backbone.")]
DepthOpt = Annotated[float | None, typer.Option("--depth", "-d", help="Depth multiplier d.")]
WidthOpt = Annotated[float | None, typer.Option("--width", "-w", help="Width multiplier w.")]
ResMultOpt = Annotated[
    float | None,
    typer.Option("--res-mult", "-r", help="Resolution multiplier r of the base resolution."),
]
ResolutionOpt = Annotated[
    int | None,
    typer.Option("--resolution", help="Input resolution in pixels (instead of --res-mult)."),
]
PhiOpt = Annotated[
    float | None,
    typer.Option("--phi", help="Compound coefficient: d=alpha^phi, w=beta^phi, r=gamma^phi."),
]
AlphaOpt = Annotated[float, typer.Option(help="Depth base alpha of Equation 3.")]
BetaOpt = Annotated[float, typer.Option(help="Width base beta of Equation 3.")]
GammaOpt = Annotated[float, typer.Option(help="Resolution base gamma of Equation 3.")]
BaseResOpt = Annotated[
    int | None,
    typer.Option(
        "--base-resolution", help="Resolution at r=1 (default: the backbone's native one)."
    ),
]
MultipleOpt = Annotated[
    int, typer.Option("--multiple", help="Round resolutions to a multiple of this many pixels.")
]
SmallInputOpt = Annotated[
    bool | None,
    typer.Option(
        "--small-input/--no-small-input",
        help="Adapt the stem for small images (stem stride 1, no max-pool). "
        "Default: on when the base resolution is below 64 px.",
    ),
]
ClassesOpt = Annotated[int, typer.Option("--num-classes", help="Classifier outputs.")]


# ---- commands ---------------------------------------------------------------------


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
    num_classes: ClassesOpt = 1000,
    fmt: FormatOpt = Format.table,
):
    """One variant's FLOPs (multiply-adds), parameters and activations, with its stage table.

    Example: effscale cost resnet50 --width 2
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
    )
    row = describe(variant, num_classes)
    stages = stage_table(variant)
    if fmt is Format.json:
        output.record({**row, "stages": stages}, fmt)
        return
    output.record(row, fmt, title=variant.label)
    output.rows(stages, fmt, title="Stages (after rounding, beside the base design)")


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


@app.command(name="compound")
def compound_cmd(
    model: ModelOpt = "efficientnet-b0",
    phi: Annotated[str, typer.Option(help="Range of phi: 1..7, 0..2:0.5 or 1,2,3.")] = "1..7",
    alpha: AlphaOpt = 1.2,
    beta: BetaOpt = 1.1,
    gamma: GammaOpt = 1.15,
    table_: Annotated[
        str,
        typer.Option("--table", help="formula: Equation 3; official: the published B0-B7 table."),
    ] = "formula",
    cost_only: Annotated[
        bool, typer.Option("--cost-only", help="Count costs only, do not train.")
    ] = False,
    base_resolution: BaseResOpt = None,
    multiple: MultipleOpt = 4,
    small_input: SmallInputOpt = None,
    fmt: FormatOpt = Format.table,
):
    """Compound scaling by phi: per phi, (d, w, r), cost, and target vs realised FLOPs ratio.

    Example: effscale compound --model efficientnet-b0 --phi 0..7 --cost-only
    """
    from effscale.cost import compound_costs

    rows = compound_costs(
        model,
        phi,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        table=table_,
        base_resolution=base_resolution,
        multiple=multiple,
        small_input=small_input,
    )
    if not cost_only:
        raise EffscaleError(
            "training compound variants needs the study engine, not built yet", "add --cost-only"
        )
    rule = (
        "the official B0-B7 table (efficientnet_builder.py)"
        if table_ == "official"
        else f"Equation 3 with alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}"
    )
    output.rows(
        rows,
        fmt,
        title=f"Compound scaling of {model}",
        screen=[
            "phi",
            "d",
            "w",
            "r",
            "resolution",
            "params",
            "gflops",
            "target_flops_ratio",
            "realised_flops_ratio",
        ],
    )
    output.note(
        f"Scaling rule: {rule}. Target ratio = (alpha*beta^2*gamma^2)^phi; realised = "
        "counted FLOPs / base FLOPs after rounding.",
        fmt,
    )


def main() -> None:
    app()
