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
    MAX_THREADS,
    VARIANT,
    DeviceOpt,
    FormatOpt,
    ModelArg,
    takes,
    variant_of,
)
from effscale.output import Format


@app.command()
@takes
def latency(
    model: ModelArg,
    options: dict = VARIANT,
    batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 1,
    device: DeviceOpt = "auto",
    warmup: Annotated[int, typer.Option(help="Untimed passes first.")] = 10,
    repeats: Annotated[int, typer.Option(help="Timed passes (median and spread over these).")] = 50,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_THREADS, help="CPU threads (default: torch's, usually every core)."
        ),
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

    variant = variant_of(model, options)
    timing = {"warmup": warmup, "repeats": repeats, "threads": threads}
    classes = options["num_classes"]
    result = measure_latency(
        variant, num_classes=classes, batch=batch, device=device, channels_last=channels_last,
        **timing,
    )  # fmt: skip
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
