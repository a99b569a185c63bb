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
BaseWidthOpt = Annotated[
    float,
    typer.Option(
        "--base-width",
        help="Derive the base design first at this width (e.g. 0.5 for a small "
        "base); d and w then scale that base.",
    ),
]
BaseDepthOpt = Annotated[
    float,
    typer.Option("--base-depth", help="Derive the base design first at this depth multiplier."),
]


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
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
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
        base_width=base_width,
        base_depth=base_depth,
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


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="embedded (default, ships with effscale), synthetic, cifar10, cifar100, "
        "or a path: an ImageFolder tree (train/ and test/ or val/) or a CIFAR python directory.",
    ),
]
BudgetOpt = Annotated[str, typer.Option("--budget", help="smoke, short or paper.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]


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
    samples: Annotated[int | None, typer.Option(help="Training samples to see.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[str | None, typer.Option(help="Run directory.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    init_from: Annotated[
        str | None,
        typer.Option("--from", help="Fine-tune from a checkpoint.pt or a state-dict file."),
    ] = None,
    new_head: Annotated[
        bool, typer.Option(help="With --from: a fresh classifier when the class count differs.")
    ] = False,
    freeze_epochs: Annotated[
        int, typer.Option(help="With --from: train only the classifier for this many epochs first.")
    ] = 0,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    base_resolution: BaseResOpt = None,
    small_input: SmallInputOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    fmt: FormatOpt = Format.table,
):
    """Train one variant briefly on a dataset; metrics per epoch, checkpoint, final table.

    The base resolution is the dataset's (32 px for CIFAR), so below 64 px the stem is
    adapted for small images. Example: effscale train efficientnet-b0 --width 0.5
    """
    from effscale.data import load_dataset
    from effscale.recipe import budget
    from effscale.train import train
    from effscale.zoo import variant_for

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
        samples = int(epochs * len(dataset.train_labels))
    recipe = budget(
        budget_, samples=samples, batch_size=batch_size, lr=lr, compile=compile_ or None
    )
    out = (
        out
        or f"runs/train/{variant.backbone}-d{variant.d:g}-w{variant.w:g}-"
        f"{variant.resolution}px-seed{seed}"
    )
    output.note(
        f"{variant.label} on {dataset.name} ({len(dataset.train_labels):,} train, "
        f"{len(dataset.test_labels):,} test), {recipe.samples:,} samples -> {out}",
        fmt,
    )
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
            progress=bar,
        )
    output.record(
        {"model": variant.label, "data": dataset.name, "seed": seed, **result, "out": out},
        fmt,
        title="Result",
    )
    if result["status"] == "diverged":
        raise EffscaleError(
            f"training diverged: the loss became NaN or infinite; the log is "
            f"in {out}/metrics.jsonl",
            "lower --lr",
        )


# ---- studies ----------------------------------------------------------------------

SeedsOpt = Annotated[int, typer.Option("--seeds", help="Seeds per variant (0 .. N-1).")]
WorkersOpt = Annotated[
    int,
    typer.Option("--workers", help="Local worker processes (one per GPU, or CPU threads split)."),
]
OutOpt = Annotated[str | None, typer.Option("--out", help="Run directory (default runs/<name>).")]
CostOnlyOpt = Annotated[bool, typer.Option("--cost-only", help="Count costs, do not train.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Reuse a run directory made for a different study.")
]
EpochsOpt = Annotated[
    float | None,
    typer.Option(
        "--epochs", help="Passes over the data per point (instead of the budget's samples)."
    ),
]
SamplesOpt = Annotated[int | None, typer.Option("--samples", help="Training samples per point.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size.")]
RunDirArg = Annotated[str, typer.Argument(help="A study's run directory.")]


def _study_context(
    data,
    budget_,
    epochs,
    samples,
    lr,
    batch_size,
    base_resolution,
    base_width,
    base_depth,
    multiple,
    small_input,
    model,
):
    """Dataset, recipe and base shared by sweep and compound."""
    from effscale.recipe import budget
    from effscale.study.engine import dataset
    from effscale.study.plan import Base
    from effscale.zoo import get_spec

    get_spec(model)  # an unknown model fails here, before any data is loaded
    ds = dataset(data)
    if epochs is not None:
        samples = int(epochs * len(ds.train_labels))
    recipe = budget(budget_, samples=samples, lr=lr, batch_size=batch_size)
    base = Base(
        model, base_resolution or ds.resolution, base_width, base_depth, multiple, small_input
    )
    return ds, recipe, base


def _run_and_print(study, out, workers, device, force, fmt):
    from effscale.report.verdicts import summarise
    from effscale.study.engine import run_study
    from effscale.study.executors import LocalWorkers

    out = out or f"runs/{study.name}"
    executor = LocalWorkers(workers, device) if workers > 1 else None
    output.note(f"{study.name}: {len(study.points)} points -> {out}", fmt)
    df = run_study(study, out, executor=executor, device=device, force=force)
    summary = summarise(df)
    output.rows(
        summary.to_dict("records"),
        fmt,
        title=f"{study.name}: mean over seeds",
        screen=["d", "w", "r", "resolution", "roles", "flops", "seeds", "top1_mean", "top1_std"],
    )
    output.note(f"results: {out}/results.csv; report and plots: effscale report {out}", fmt)


@app.command()
def sweep(
    model: ModelOpt = "efficientnet-b0",
    dim: Annotated[str, typer.Option(help="depth, width or resolution.")] = "width",
    values: Annotated[
        str | None,
        typer.Option(
            help="Multipliers, e.g. 1,1.4,2 or 1..4 (default: the paper's Figure 3 values)."
        ),
    ] = None,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: EpochsOpt = None,
    samples: SamplesOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    seeds: SeedsOpt = 1,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    out: OutOpt = None,
    force: ForceOpt = False,
    cost_only: CostOnlyOpt = False,
    base_resolution: BaseResOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    multiple: MultipleOpt = 4,
    small_input: SmallInputOpt = None,
    fmt: FormatOpt = Format.table,
):
    """Scale one dimension alone and train each variant briefly (paper Figure 3).

    Default values are the paper's: w 1.0,1.4,1.8,2.6,3.8,5.0; d 1,2,3,4,6,8;
    r 1.0,1.3,1.5,1.7,1.9,2.2,2.5. Example: effscale sweep --model resnet50 --dim width
    """
    from effscale.scaling import DIMENSIONS, parse_range
    from effscale.study.plan import FIGURE3_VALUES, Study, plan_sweep

    if dim not in DIMENSIONS:
        raise EffscaleError(f"unknown dimension {dim!r}", f"use one of {', '.join(DIMENSIONS)}")
    vals = parse_range(values) if values is not None else FIGURE3_VALUES[dim]
    if cost_only:
        from effscale.cost import describe
        from effscale.study.plan import Base
        from effscale.zoo import get_spec

        base = Base(
            model,
            base_resolution or get_spec(model).resolution,
            base_width,
            base_depth,
            multiple,
            small_input,
        )
        rows = [describe(base.variant(**{dim[0]: v})) for v in sorted(set([1.0] + vals))]
        output.rows(
            rows,
            fmt,
            title=f"{model}: {dim} alone",
            screen=[
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
        return
    ds, recipe, base = _study_context(
        data,
        budget_,
        epochs,
        samples,
        lr,
        batch_size,
        base_resolution,
        base_width,
        base_depth,
        multiple,
        small_input,
        model,
    )
    study = Study(
        f"sweep-{model}-{dim}",
        {
            "kind": "sweep",
            "model": model,
            "dim": dim,
            "data": data,
            "recipe": recipe.to_dict(),
            "base": base.__dict__,
        },
    )
    plan_sweep(study, base, dim, vals, list(range(seeds)), recipe, data)
    _run_and_print(study, out, workers, device, force, fmt)


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
    match_single: Annotated[
        bool,
        typer.Option(
            "--match-single",
            help="Add, per phi, each dimension alone at the same counted FLOPs (paper Figure 8).",
        ),
    ] = False,
    data: DataOpt = "embedded",
    budget_: BudgetOpt = "short",
    epochs: EpochsOpt = None,
    samples: SamplesOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    seeds: SeedsOpt = 1,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    out: OutOpt = None,
    force: ForceOpt = False,
    cost_only: CostOnlyOpt = False,
    base_resolution: BaseResOpt = None,
    base_width: BaseWidthOpt = 1.0,
    base_depth: BaseDepthOpt = 1.0,
    multiple: MultipleOpt = 4,
    small_input: SmallInputOpt = None,
    fmt: FormatOpt = Format.table,
):
    """Compound scaling by phi (Equation 3, or the official B0-B7 table), trained briefly.

    With --cost-only: per phi, (d, w, r), cost, and target vs realised FLOPs ratio.
    Examples: effscale compound --phi 0..7 --cost-only;
    effscale compound --model efficientnet-b0 --phi 1..3 --match-single --seeds 3
    """
    from effscale.scaling import parse_range

    rule = (
        "the official B0-B7 table (efficientnet_builder.py)"
        if table_ == "official"
        else f"Equation 3 with alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}"
    )
    phis = parse_range(phi)
    if cost_only:
        from effscale.cost import compound_costs

        rows = compound_costs(
            model,
            phis,
            alpha=alpha,
            beta=beta,
            gamma=gamma,
            table=table_,
            base_resolution=base_resolution,
            multiple=multiple,
            small_input=small_input,
            base_width=base_width,
            base_depth=base_depth,
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
            f"Scaling rule: {rule}. Target ratio = (alpha*beta^2*gamma^2)^phi; "
            "realised = counted FLOPs / base FLOPs after rounding.",
            fmt,
        )
        return
    from effscale.study.plan import Study, plan_compound

    ds, recipe, base = _study_context(
        data,
        budget_,
        epochs,
        samples,
        lr,
        batch_size,
        base_resolution,
        base_width,
        base_depth,
        multiple,
        small_input,
        model,
    )
    study = Study(
        f"compound-{model}",
        {
            "kind": "compound",
            "model": model,
            "data": data,
            "recipe": recipe.to_dict(),
            "base": base.__dict__,
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "table": table_,
        },
    )
    plan_compound(
        study,
        base,
        phis,
        list(range(seeds)),
        recipe,
        data,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        table=table_,
        match_single=match_single,
        num_classes=ds.num_classes,
    )
    output.note(f"Scaling rule: {rule}", fmt)
    _run_and_print(study, out, workers, device, force, fmt)


@app.command(name="run")
def run_cmd(
    study_file: Annotated[str, typer.Argument(help="A study file, e.g. studies/figure3.toml.")],
    data: Annotated[str | None, typer.Option(help="Override the file's data.")] = None,
    budget_: Annotated[str | None, typer.Option("--budget", help="Override the budget.")] = None,
    seeds: Annotated[int | None, typer.Option(help="Override the number of seeds.")] = None,
    samples: SamplesOpt = None,
    workers: WorkersOpt = 1,
    device: DeviceOpt = "auto",
    out: OutOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = Format.table,
):
    """Run a whole study written as a TOML file (see studies/); resumable.

    Example: effscale run studies/quick.toml
    """
    from effscale.study.files import load_study

    study = load_study(study_file, data=data, budget_name=budget_, seeds=seeds, samples=samples)
    _run_and_print(study, out, workers, device, force, fmt)


@app.command()
def status(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Points done, running, interrupted, failed, diverged and left in a run directory.

    Example: effscale status runs/figure3
    """
    from effscale.study.store import RunDir

    st = RunDir(run_dir).status()
    if fmt is Format.json:
        output.record(st, fmt)
        return
    output.record({k: v for k, v in st.items() if k != "states"}, fmt, title=run_dir)


@app.command()
def report(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Tables, plots and the paper's verdicts (with numbers) from a run directory.

    Re-runnable on partial results. Example: effscale report runs/figure3
    """
    from effscale.report import write_report

    result = write_report(run_dir)
    if fmt is Format.json:
        output.record(result, fmt)
        return
    for title, key, screen in (
        (
            "Diminishing returns: gain per doubling of FLOPs (top-1 points)",
            "diminishing_returns",
            [
                "dimension",
                "first_gain_per_doubling",
                "first_std",
                "last_gain_per_doubling",
                "last_std",
                "verdict",
            ],
        ),
        (
            "Compound minus best single dimension at matched FLOPs",
            "compound_vs_single",
            [
                "phi",
                "compound_top1",
                "best_single",
                "best_single_top1",
                "compound_minus_best",
                "difference_std",
                "verdict",
            ],
        ),
    ):
        if result[key]:
            output.rows(result[key], fmt, title=title, screen=screen)
    output.note(f"report: {result['report']} ({len(result['figures'])} figure files)", fmt)


@app.command()
def plot(run_dir: RunDirArg, fmt: FormatOpt = Format.table):
    """Redraw the plots of a run directory (PNG and SVG in RUN_DIR/figures).

    Example: effscale plot runs/figure3
    """
    from effscale.report.plots import all_plots
    from effscale.study.store import RunDir

    store = RunDir(run_dir)
    paths = all_plots(store.write_results(), store.path / "figures")
    output.rows([{"figure": str(p)} for p in paths], fmt, title="Figures")


def main() -> None:
    app()
