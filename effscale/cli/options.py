"""Options shared by several commands, defined once: each one an ``Annotated`` alias, and
the bundles that several commands take together (variant, study, executor, run)."""

import functools
import inspect
from typing import Annotated

import typer

from effscale.output import Format


class Bundle:
    """Options several commands take together: name -> (alias, default), in help order.

    A command takes a bundle as one parameter whose default is the bundle (or ``pick`` of
    it); ``@takes`` spreads it into the command's options where that parameter stands, and
    hands the command their values as one dict under that parameter's name.
    """

    def __init__(self, **options: tuple):
        self.options = options

    def defaults(self) -> dict:
        """Each option's default value, by name."""
        return {name: default for name, (_, default) in self.options.items()}

    def pick(self, names: str) -> "Bundle":
        """The options named (space-separated), in that order."""
        return Bundle(**{n: self.options[n] for n in names.split()})


def takes(command):
    """Spread the command's Bundle parameters into options (see Bundle)."""
    signature = inspect.signature(command)
    params, bundles = [], {}
    for p in signature.parameters.values():
        if not isinstance(p.default, Bundle):
            params.append(p)
            continue
        bundles[p.name] = list(p.default.options)
        params += [
            inspect.Parameter(n, p.POSITIONAL_OR_KEYWORD, annotation=a, default=d)
            for n, (a, d) in p.default.options.items()
        ]

    @functools.wraps(command)
    def spread(*args, **kwargs):
        for name, names in bundles.items():
            kwargs[name] = {n: kwargs.pop(n) for n in names}
        return command(*args, **kwargs)

    spread.__signature__ = signature.replace(parameters=params)
    spread.__annotations__ = {p.name: p.annotation for p in params}
    return spread


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help="A registered backbone, see `effscale models`.")
]
ModelOpt = Annotated[
    str, typer.Option("--model", "-m", metavar="MODEL", help="A registered backbone.")
]
DepthOpt = Annotated[float | None, typer.Option("--depth", "-d", help="Depth multiplier d.")]
WidthOpt = Annotated[float | None, typer.Option("--width", "-w", help="Width multiplier w.")]
ResMultOpt = Annotated[
    float | None,
    typer.Option("--res-mult", "-r", help="Resolution multiplier r of the base resolution."),
]
ResolutionOpt = Annotated[
    int | None,
    typer.Option(
        "--resolution",
        min=1,
        help="Input resolution in pixels (instead of --res-mult).",
    ),
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
        "--base-resolution",
        min=1,
        help="Resolution at r=1 (default: the data's image size when training, the "
        "backbone's native one in cost, models and --cost-only without --data).",
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


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        metavar="DATA",
        help="embedded (default, ships with effscale), synthetic, cifar10, cifar100, "
        "or a path: an ImageFolder tree (train/ and test/ or val/) or a CIFAR python directory.",
    ),
]
StudyDataOpt = Annotated[  # a study's: None is "embedded", or for --cost-only, no data
    str | None,
    typer.Option(
        "--data",
        metavar="DATA",
        help="embedded (default, ships with effscale), synthetic, cifar10, cifar100, "
        "or a path: an ImageFolder tree (train/ and test/ or val/) or a CIFAR python directory. "
        "--cost-only counts at the data's resolution and classes when --data is given, else at "
        "the backbone's native resolution and 1000 classes.",
    ),
]
BUDGET_CHOICES = "[smoke|short|paper]"
BudgetOpt = Annotated[
    str, typer.Option("--budget", metavar=BUDGET_CHOICES, help="A named training budget.")
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", metavar="[auto|cpu|cuda|cuda:N]", help="The training device."),
]


SeedsOpt = Annotated[int, typer.Option("--seeds", help="Seeds per variant (0 .. N-1).")]
WorkersOpt = Annotated[
    int,
    typer.Option("--workers", help="Local worker processes (one per GPU, or CPU threads split)."),
]
MAX_THREADS = 1024  # more torch threads than this is a typo, not a machine
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        max=MAX_THREADS,
        help="Torch threads per point on a CPU (default: the cores split between the "
        "--workers; in one process, every core). Next to other work, 1 is often fastest.",
    ),
]
OutOpt = Annotated[
    str | None, typer.Option("--out", metavar="DIR", help="Run directory (default runs/<name>).")
]
CostOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--cost-only",
        help="Count costs at the resolution and class count training would use, do not train.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan (every point, its FLOPs, whether stored results cover it) and "
        "the estimated time on this machine; train nothing, write nothing.",
    ),
]
YES_HELP = "Start without asking when the estimate exceeds an hour (effscale asks only on a "
YES_HELP += "terminal)."
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help=YES_HELP)]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Reuse a run directory made for a different study.")
]
EpochsOpt = Annotated[
    float | None,
    typer.Option(
        "--epochs", help="Passes over the data per point (instead of the budget's samples)."
    ),
]
SamplesOpt = Annotated[
    str | None,
    typer.Option(
        "--samples",
        metavar="N[,N...]",
        help="Training samples per point (100000, 100k, 1.5M), or several budgets, each its "
        "own points: 100k,200k. Not with --epochs.",
    ),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option(
        "--compile/--no-compile",
        help="torch.compile each point's training step, or not (default: where a probe of "
        "this device found it faster and the point is long enough to pay for a compile).",
    ),
]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
ScheduleOpt = Annotated[
    str | None,
    typer.Option(
        "--schedule",
        metavar="[cosine|onecycle|exponential|wsd]",
        help="Learning-rate schedule (default: the budget's, cosine). wsd: warm-up, constant, "
        "then a linear cool-down over the last 20 %; a study's shorter budgets branch off its "
        "longest run, so they cost only their cool-downs.",
    ),
]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Batch size.")]
RunDirArg = Annotated[str, typer.Argument(metavar="RUN_DIR", help="A study's run directory.")]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        metavar="[local|ray|slurm]",
        help="local (this machine: in process, or --workers processes), ray (a Ray cluster, "
        "or a local Ray) or slurm (a job array through submitit).",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster to join: auto or HOST:PORT (default: start a local Ray)."
    ),
]
PartitionOpt = Annotated[str | None, typer.Option("--partition", help="Slurm partition.")]
GPUS_HELP = "GPUs per point: Ray takes fractions (default 0.25 under 1 GFLOP, else 1, when the "
GPUS_HELP += "cluster has GPUs); Slurm whole GPUs (default 0)."
GpusPerPointOpt = Annotated[float | None, typer.Option("--gpus-per-point", help=GPUS_HELP)]
TimeOpt = Annotated[
    int, typer.Option("--time", help="Slurm time limit per point in minutes (then requeued).")
]
MaxParallelOpt = Annotated[
    int | None, typer.Option("--max-parallel", help="Slurm: at most this many points at once.")
]
AccountOpt = Annotated[str | None, typer.Option("--account", help="Slurm account.")]
QosOpt = Annotated[str | None, typer.Option("--qos", help="Slurm quality of service.")]
MemOpt = Annotated[
    str | None, typer.Option("--mem", help="Slurm memory per point, e.g. 16G (default: Slurm's).")
]
CpusPerPointOpt = Annotated[
    int | None,
    typer.Option("--cpus-per-point", help="Slurm CPUs per point (default 4 with a GPU, else 1)."),
]
ConstraintOpt = Annotated[
    str | None, typer.Option("--constraint", help="Slurm node features, e.g. a100.")
]
SetupOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--setup",
        metavar="COMMAND",
        help="Slurm: a shell line run before each point (module load ..., conda activate "
        "...); repeatable, in order.",
    ),
]
SbatchOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sbatch",
        metavar="NAME=VALUE",
        help="Slurm: one more #SBATCH option, e.g. reservation=lab; repeatable.",
    ),
]
LatencyOpt = Annotated[
    bool,
    typer.Option(
        "--latency",
        help="Also time each variant at batch 1 (one thread on a CPU) for the report's "
        "accuracy-vs-latency plot; kept in RUN_DIR/latency.csv.",
    ),
]


# -- bundles --------------------------------------------------------------------------------

VARIANT = Bundle(  # a variant of a backbone; commands pick the ones they take
    depth=(DepthOpt, None),
    width=(WidthOpt, None),
    res_mult=(ResMultOpt, None),
    resolution=(ResolutionOpt, None),
    phi=(PhiOpt, None),
    alpha=(AlphaOpt, 1.2),
    beta=(BetaOpt, 1.1),
    gamma=(GammaOpt, 1.15),
    base_resolution=(BaseResOpt, None),
    multiple=(MultipleOpt, 4),
    small_input=(SmallInputOpt, None),
    base_width=(BaseWidthOpt, 1.0),
    base_depth=(BaseDepthOpt, 1.0),
    num_classes=(ClassesOpt, 1000),
)
BASE = VARIANT.pick("base_resolution base_width base_depth multiple small_input")  # a study's
STUDY = Bundle(  # what a study trains on, and how long
    data=(StudyDataOpt, None),
    budget_=(BudgetOpt, "short"),
    epochs=(EpochsOpt, None),
    samples=(SamplesOpt, None),
    lr=(LrOpt, None),
    schedule=(ScheduleOpt, None),
    batch_size=(BatchOpt, None),
    seeds=(SeedsOpt, 1),
)
EXECUTOR = Bundle(  # where a study's points run (effscale.study.executors.make_executor)
    workers=(WorkersOpt, 1),
    threads=(ThreadsOpt, None),
    executor=(ExecutorOpt, "local"),
    address=(AddressOpt, None),
    partition=(PartitionOpt, None),
    gpus_per_point=(GpusPerPointOpt, None),
    time_min=(TimeOpt, 60),
    max_parallel=(MaxParallelOpt, None),
    account=(AccountOpt, None),
    qos=(QosOpt, None),
    mem=(MemOpt, None),
    cpus_per_point=(CpusPerPointOpt, None),
    constraint=(ConstraintOpt, None),
    setup=(SetupOpt, None),
    sbatch=(SbatchOpt, None),
)
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log",
        metavar="[tensorboard|mlflow|wandb]",
        help="Also log each point's parameters and per-epoch metrics to this tracker "
        "(repeatable; effscale[track] installs TensorBoard and MLflow, effscale[wandb] W&B).",
    ),
]
RUN = Bundle(  # how a study runs, or is only printed
    latency=(LatencyOpt, False),
    log=(LogOpt, None),
    compile_=(CompileOpt, None),
    device=(DeviceOpt, "auto"),
    out=(OutOpt, None),
    force=(ForceOpt, False),
    cost_only=(CostOnlyOpt, False),
    dry_run=(DryRunOpt, False),
    yes=(YesOpt, False),
)


def variant_of(model: str, options: dict, **given):
    """The variant the VARIANT options name (effscale.zoo.variant_for); ``given``: options
    set by the command itself (train: the data's base resolution)."""
    from effscale.errors import EffscaleError
    from effscale.zoo import variant_for

    kw = {k: v for k, v in options.items() if k != "num_classes"} | given
    scaled = [
        flag_of(k) for k in ("depth", "width", "res_mult", "resolution") if kw.get(k) is not None
    ]
    if kw.get("phi") is not None and scaled:  # variant_for's checks, in the flags' words
        raise EffscaleError(
            f"--phi sets depth, width and resolution together; it cannot be combined "
            f"with {', '.join(scaled)}",
            "drop one of them",
        )
    if kw.get("resolution") is not None and kw.get("res_mult") is not None:
        raise EffscaleError(
            "--resolution and --res-mult both set the input size", "give one of them"
        )
    return variant_for(model, **kw)


def flag_of(name: str, bundle: Bundle = VARIANT) -> str:
    """The flag of a bundle's option, as the command line spells it: res_mult -> --res-mult."""
    alias = bundle.options[name][0]
    option = next(m for m in alias.__metadata__ if isinstance(m, typer.models.OptionInfo))
    names = [option.default, *option.param_decls]  # typer takes the first name as `default`
    return next(
        (n.split("/")[0] for n in names if isinstance(n, str) and n.startswith("--")),
        "--" + name.rstrip("_").replace("_", "-"),
    )
