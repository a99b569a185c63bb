"""effscale train: one variant, briefly.

Example:
    effscale train efficientnet-b0 --width 0.5 --budget short
"""

from pathlib import Path
from typing import Annotated

import typer

from effscale import display, io, output
from effscale.cli import running
from effscale.cli.app import app
from effscale.cli.options import (
    RUN,
    VARIANT,
    BudgetOpt,
    Bundle,
    DataOpt,
    DeviceOpt,
    FormatOpt,
    ModelArg,
    ScheduleOpt,
    ThreadsOpt,
    takes,
    variant_of,
)
from effscale.cli.results import print_plan
from effscale.errors import EffscaleError
from effscale.output import Format
from effscale.rundir import PointDir

SCALE = VARIANT.pick("depth width res_mult phi alpha beta gamma")
BASE = VARIANT.pick("base_resolution small_input base_width base_depth")
EpochsOpt = Annotated[
    float | None,
    typer.Option(
        help="Train for this many passes over the data (instead of the budget's samples)."
    ),
]
SamplesOpt = Annotated[
    str | None, typer.Option(metavar="N", help="Training samples to see (100000, 100k, 1.5M).")
]
InitFromOpt = Annotated[
    str | None,
    typer.Option(
        "--from", metavar="PATH", help="Fine-tune from a checkpoint.pt or a state-dict file."
    ),
]
NewHeadOpt = Annotated[
    bool, typer.Option(help="With --from: a fresh classifier when the class count differs.")
]
FreezeOpt = Annotated[
    int, typer.Option(help="With --from: train only the classifier for this many epochs first.")
]
FINE_TUNE = Bundle(  # --from, and how the fine-tune starts
    init_from=(InitFromOpt, None),
    new_head=(NewHeadOpt, False),
    freeze_epochs=(FreezeOpt, 0),
)
CompileOpt = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile the training step, or not (default: where a probe of this "
        "device found it faster and the run is long enough to pay for the compile).",
    ),
]


@app.command(name="train")
@takes
def train_cmd(
    model: ModelArg,
    scale: dict = SCALE,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: EpochsOpt = None,
    samples: SamplesOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    schedule: ScheduleOpt = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[str | None, typer.Option(metavar="DIR", help="Run directory.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    fine_tune: dict = FINE_TUNE,
    compile_: CompileOpt = None,
    threads: ThreadsOpt = None,
    base: dict = BASE,
    run: dict = RUN.pick("log dry_run yes"),
    fmt: FormatOpt = Format.table,
):
    """Train one variant briefly on a dataset; metrics per epoch, checkpoint, final table.

    The base resolution is the dataset's (32 px for CIFAR), so below 64 px the stem is
    adapted for small images. Example: effscale train efficientnet-b0 --width 0.5
    """
    from effscale.data import load_dataset
    from effscale.recipe import budget, samples_for_epochs
    from effscale.tracking import check_trackers
    from effscale.training.loop import train

    budgets = running.budgets_of(epochs, samples)
    if budgets and len(budgets) > 1:
        raise EffscaleError("train runs one budget", "give one --samples value")
    if threads:  # before the estimate, whose speed probe is per thread count
        import torch

        torch.set_num_threads(threads)
    dataset = load_dataset(data)
    resolution = base["base_resolution"] or dataset.resolution
    variant = variant_of(model, {**scale, **base}, base_resolution=resolution)
    if epochs is not None:
        budgets = [samples_for_epochs(epochs, len(dataset.train_labels))]
    samples = budgets[0] if budgets else None
    recipe = budget(budget_, samples=samples, batch_size=batch_size, lr=lr, schedule=schedule)
    _refuse_before_estimating(recipe, seed, fine_tune["init_from"])
    out = out or _default_out(variant, seed)
    io.writable_dir(out, create=False)  # before estimating: a bad --out is said at once
    trackers = check_trackers(run["log"])
    plan = _estimate(variant, seed, recipe, data, dataset, out, device)
    if run["dry_run"]:
        print_plan(plan, fmt)
        return
    output.note(_what_trains(variant, dataset, recipe, out), fmt)
    output.note(plan.sentence(), fmt)
    running.confirm_long_run(plan.wall_seconds, run["yes"], plan.speed.busy)
    with output.progress() as bar:
        on_event, finish = _tracked(trackers, variant, recipe, seed, data, dataset, out, bar)
        result = train(
            variant,
            dataset,
            recipe,
            out,
            seed=seed,
            device=device,
            resume=resume,
            **fine_tune,
            compile=compile_,
            on_event=on_event,
        )
        finish(result)
    row = {"model": variant.label, "data": dataset.name, "seed": seed, **result, "out": out}
    output.record(row, fmt, title="Result")
    if result["status"] == "diverged":
        raise EffscaleError(
            "training diverged: the loss became NaN or infinite; the log is "
            f"in {PointDir(out).metrics_file}",
            "lower --lr",
        )


def _what_trains(variant, dataset, recipe, out) -> str:
    """The run's header: variant, data, and the samples as trained (whole epochs)."""
    from effscale.training.batches import total_samples

    n_train = len(dataset.train_labels)
    total = total_samples(dataset, recipe)
    return (
        f"{variant.label} on {dataset.name} ({n_train:,} train, {len(dataset.test_labels):,} "
        f"test), {total:,} samples ({total / n_train:.3g} epochs) -> {out}"
    )


def _default_out(variant, seed: int) -> str:
    v = variant
    return f"runs/train/{v.backbone}-d{v.d:g}-w{v.w:g}-{v.resolution}px-seed{seed}"


def _refuse_before_estimating(recipe, seed: int, init_from: str | None) -> None:
    """What the run would refuse, refused in a dry run too, with the same messages."""
    recipe.validate()
    if seed < 0:
        raise EffscaleError(f"--seed must be 0 or more, got {seed}", "e.g. --seed 0")
    if init_from is not None and not Path(init_from).is_file():
        raise EffscaleError(  # checkpoint.py's words, which a real run would say
            f"no weights file at {init_from}", "give --from a checkpoint.pt or a state-dict file"
        )


def _estimate(variant, seed, recipe, data, dataset, out, device):
    """The run's estimate, as a one-point study's (covered when ``out`` holds its result)."""
    from effscale.study.plan import Point, Study

    point = Point(variant, seed, recipe, data)
    sizes = (len(dataset.train_labels), len(dataset.test_labels), dataset.num_classes)
    return running.estimate(
        Study(f"train {variant.label}", {}, [point]),
        None,
        device,
        sizes={data: sizes},
        covered={point.key} if PointDir(out).result_file.exists() else set(),
    )


def _tracked(trackers, variant, recipe, seed: int, data: str, dataset, out: str, bar):
    """The run's events for the progress bar and the trackers --log names."""
    from effscale.cost import count_cost
    from effscale.tracking import point_params, tracked

    show = display.show_run(bar)
    if not trackers:
        return show, lambda result: None
    params = point_params(variant, recipe, seed, data, count_cost(variant, dataset.num_classes))
    name = Path(out).name or "train"
    return tracked(trackers, out, "effscale-train", name, params, show)
