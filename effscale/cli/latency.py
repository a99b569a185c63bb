"""effscale latency: how long one variant takes to classify a batch (paper Table 4 style).

Examples:
    effscale latency efficientnet-b0
    effscale latency resnet50 --width 2 --batch 8 --device cuda --format json
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
    DeviceOpt,
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
def latency(
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
    batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 1,
    device: DeviceOpt = "auto",
    warmup: Annotated[int, typer.Option(help="Untimed passes first.")] = 10,
    repeats: Annotated[int, typer.Option(help="Timed passes (median and spread over these).")] = 50,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: torch's, usually every core).")
    ] = None,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="NHWC memory format.")
    ] = True,
    fmt: FormatOpt = Format.table,
):
    """Inference time of one variant: warm-up, synchronised timing, median and spread.

    Random input at the variant's resolution, eval mode, no gradients. Times are seconds
    per batch; images_per_s is batch / median. Example: effscale latency efficientnet-b0 --phi 1
    """
    from effscale.latency import measure_latency
    from effscale.zoo import variant_for

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
    result = measure_latency(
        variant,
        num_classes=num_classes,
        batch=batch,
        device=device,
        warmup=warmup,
        repeats=repeats,
        channels_last=channels_last,
        threads=threads,
    )
    output.record(result, fmt, title=variant.label)
    output.note(
        f"median {result['median_s'] * 1000:.3g} ms per batch of {batch} "
        f"(quartiles {result['p25_s'] * 1000:.3g}-{result['p75_s'] * 1000:.3g} ms), "
        f"{result['images_per_s']:,.1f} images/s on {result['device']} with "
        f"{result['threads']} thread(s), over {repeats} passes after {warmup} warm-up",
        fmt,
    )
    if result["device"] == "cpu" and result["load"] and result["load"] >= result["cores"]:
        output.note(
            f"the machine is busy (load {result['load']:g} on {result['cores']} cores): idle "
            "threads wait for cores other processes hold, so these times are pessimistic; "
            "try --threads 1, or measure on an idle machine",
            fmt,
        )
