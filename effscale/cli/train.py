"""effscale train: one variant, briefly.

Example:
    effscale train efficientnet-b0 --width 0.5 --budget short
"""

from typing import Annotated

import typer

from effscale import io, output
from effscale.cli.app import app
from effscale.cli.options import (
    AlphaOpt,
    BaseDepthOpt,
    BaseResOpt,
    BaseWidthOpt,
    BetaOpt,
    BudgetOpt,
    DataOpt,
    DepthOpt,
    DeviceOpt,
    DryRunOpt,
    FormatOpt,
    GammaOpt,
    ModelArg,
    PhiOpt,
    ResMultOpt,
    SmallInputOpt,
    WidthOpt,
    YesOpt,
)
from effscale.errors import EffscaleError
from effscale.output import Format


@app.command(name="train")
def train_cmd(
    model: ModelArg,
    depth: DepthOpt = None,
    width: WidthOpt = None,
    res_mult: ResMultOpt = None,
    phi: PhiOpt = None,
    alpha: AlphaOpt = 1.2,
    beta: BetaOpt = 1.1,
    gamma: GammaOpt = 1.15,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: Annotated[
        float | None,
        typer.Option(
            help="Train for this many passes over the data (instead of the budget's samples)."
        ),
    ] = None,
    samples: Annotated[
        str | None,
        typer.Option(metavar="N", help="Training samples to see (100000, 100k, 1.5M)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[str | None, typer.Option(metavar="DIR", help="Run directory.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    init_from: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="PATH", help="Fine-tune from a checkpoint.pt or a state-dict file."
        ),
    ] = None,
    new_head: Annotated[
        bool, typer.Option(help="With --from: a fresh classifier when the class count differs.")
    ] = False,
    freeze_epochs: Annotated[
        int, typer.Option(help="With --from: train only the classifier for this many epochs first.")
    ] = 0,
    compile_: Annotated[
        bool | None,
        typer.Option(
            "--compile/--no-compile",
            help="torch.compile the training step, or not (default: where a probe of this "
            "device found it faster and the run is long enough to pay for the compile).",
        ),
    ] = None,
    base_resolution: BaseResOpt = None,
    small_input: SmallInputOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    fmt: FormatOpt = Format.table,
):
    """Train one variant briefly on a dataset; metrics per epoch, checkpoint, final table.

    The base resolution is the dataset's (32 px for CIFAR), so below 64 px the stem is
    adapted for small images. Example: effscale train efficientnet-b0 --width 0.5
    """
    from effscale.data import load_dataset
    from effscale.recipe import budget, parse_budgets, samples_for_epochs
    from effscale.rundir import PointDir
    from effscale.train import train
    from effscale.zoo import variant_for

    if epochs is not None and samples is not None:
        raise EffscaleError("--epochs and --samples both set the budget", "give one of them")
    if samples is not None:
        budgets = parse_budgets(samples)
        if len(budgets) > 1:
            raise EffscaleError("train runs one budget", "give one --samples value")
        samples = budgets[0]
    dataset = load_dataset(data)
    variant = variant_for(
        model,
        depth=depth,
        width=width,
        res_mult=res_mult,
        phi=phi,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        base_resolution=base_resolution or dataset.resolution,
        small_input=small_input,
        base_width=base_width,
        base_depth=base_depth,
    )
    if epochs is not None:
        samples = samples_for_epochs(epochs, len(dataset.train_labels))
    recipe = budget(budget_, samples=samples, batch_size=batch_size, lr=lr)
    out = (
        out
        or f"runs/train/{variant.backbone}-d{variant.d:g}-w{variant.w:g}-"
        f"{variant.resolution}px-seed{seed}"
    )
    io.writable_dir(out, create=False)  # before estimating: a bad --out is said at once
    from effscale.cli.study import _estimate, _print_plan, confirm_long_run
    from effscale.study.plan import Point, Study

    point = Point(variant, seed, recipe, data)
    sizes = (len(dataset.train_labels), len(dataset.test_labels), dataset.num_classes)
    plan = _estimate(
        Study(f"train {variant.label}", {}, [point]),
        None,
        device,
        sizes={data: sizes},
        covered={point.key} if PointDir(out).result_file.exists() else set(),
    )
    if dry_run:
        _print_plan(plan, fmt)
        return
    output.note(
        f"{variant.label} on {dataset.name} ({len(dataset.train_labels):,} train, "
        f"{len(dataset.test_labels):,} test), {recipe.samples:,} samples -> {out}",
        fmt,
    )
    output.note(plan.sentence(), fmt)
    confirm_long_run(plan.wall_seconds, yes)
    with output.progress() as bar:
        result = train(
            variant,
            dataset,
            recipe,
            out,
            seed=seed,
            device=device,
            resume=resume,
            init_from=init_from,
            new_head=new_head,
            freeze_epochs=freeze_epochs,
            compile=compile_,
            on_event=output.show_run(bar),
        )
    output.record(
        {"model": variant.label, "data": dataset.name, "seed": seed, **result, "out": out},
        fmt,
        title="Result",
    )
    if result["status"] == "diverged":
        raise EffscaleError(
            "training diverged: the loss became NaN or infinite; the log is "
            f"in {PointDir(out).metrics_file}",
            "lower --lr",
        )
