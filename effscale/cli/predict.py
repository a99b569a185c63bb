"""effscale predict: a fitted law's top-1 for any shape, with its interval and FLOPs.

Examples:
    effscale predict runs/imagenette -d 1.2 -w 1.4 -r 1.3 --samples 100k
    effscale predict docs/results/imagenette --resolution 96 --format json
"""

from effscale import output
from effscale.cli.app import app
from effscale.cli.lawing import (
    BootstrapOpt,
    FormOpt,
    LawSamplesOpt,
    PerParamOpt,
    RunDirsArg,
    SeedOpt,
    fitted,
    samples_of,
)  # fmt: skip
from effscale.cli.options import VARIANT, FormatOpt, takes, variant_of
from effscale.cli.recommend import SeedsOpt
from effscale.output import Format


@app.command()
@takes
def predict(
    run_dirs: RunDirsArg,
    options: dict = VARIANT.pick("depth width res_mult resolution phi alpha beta gamma"),
    samples: LawSamplesOpt = None,
    seeds: SeedsOpt = 1,
    form: FormOpt = "auto",
    draws: BootstrapOpt = 200,
    seed: SeedOpt = 0,
    per_param: PerParamOpt = 3.0,
    fmt: FormatOpt = Format.table,
):
    """The predicted top-1 of a shape of the study's base (the same variant flags as
    `effscale train`) at a budget, with its 80 % interval (the law's bootstrap spread and
    the seeds' noise) and the network's counted FLOPs.

    --samples picks the budget (default: the study's largest) and fits on all budgets.
    Example: effscale predict docs/results/imagenette -w 1.8 -r 1.25 --samples 100k
    """
    import numpy as np

    from effscale.cost import count_cost
    from effscale.errors import EffscaleError
    from effscale.law import load_points
    from effscale.law.points import SAMPLES_REF, realised
    from effscale.law.recommend import base_variant

    points = load_points(run_dirs)
    budget = samples_of(samples) or max(points.budgets)
    if not 1 <= budget <= 1e12:
        raise EffscaleError(f"--samples {budget} is not a budget to predict at")
    points, _, boot = fitted(run_dirs, form, None, per_param, draws, seed, points)
    base = base_variant(points)
    variant = variant_of(base.backbone, options, base_resolution=base.base_resolution,
                         small_input=base.small_input, base_width=base.base_width,
                         base_depth=base.base_depth)  # fmt: skip
    classes = int(points.identity.get("num_classes", 1000))
    flops, base_flops = count_cost(variant, classes).flops, count_cost(base, classes).flops
    x = realised(variant)
    pred = boot.predict(np.array([[*x, budget / SAMPLES_REF]]), n_seeds=seeds).iloc[0]
    result = {
        **variant.to_dict(), "realised_d": x[0], "realised_w": x[1], "samples": budget,
        "flops": flops, "flops_ratio": flops / base_flops, "form": boot.fit.form.name,
        "top1": float(pred["top1"]), "lo": float(pred["lo"]), "hi": float(pred["hi"]),
        "level": boot.level, "seeds": seeds,
    }  # fmt: skip
    if fmt is Format.csv:
        output.rows([result], fmt)
    else:
        output.record(result, fmt, title=f"{variant.label}: predicted top-1")
