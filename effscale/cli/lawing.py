"""What `effscale fit`, `predict` and `recommend` share: their options, and loading a
study's points and fitting the chosen form with its bootstrap (effscale.law)."""

from typing import Annotated

import typer

from effscale.errors import EffscaleError

RunDirsArg = Annotated[
    list[str], typer.Argument(metavar="RUN_DIR...", help="Run directories of one study.")
]
FormOpt = Annotated[
    str,
    typer.Option(
        "--form", metavar="[auto|F1|F2|F3]",
        help="The law: auto chooses by extrapolation error within the fitted points.",
    ),
]  # fmt: skip
LawSamplesOpt = Annotated[
    str | None,
    typer.Option("--samples", metavar="N", help="Keep the points at this budget (e.g. 100k)."),
]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", min=1, help="Bootstrap refits for the intervals.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap's resampling.")]
PerParamOpt = Annotated[
    float,
    typer.Option(
        "--configs-per-param", min=0.5,
        help="Distinct configurations a form needs per parameter (the rule: 3). Lower it "
        "only knowingly: a small study then fits a law it cannot pin down.",
    ),
]  # fmt: skip


def ratio(text: str, flag: str) -> float:
    """A FLOPs ratio as written: 2.6x or 2.6."""
    try:
        value = float(str(text).strip().lower().removesuffix("x"))
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < 1e6):
        raise EffscaleError(f"{flag} {text!r} is not a FLOPs ratio", "write e.g. 2.6x")
    return value


def samples_of(text: str | None) -> int | None:
    if text is None:
        return None
    from effscale.recipe import parse_budgets

    budgets = parse_budgets(text)
    if len(budgets) != 1:
        raise EffscaleError(f"--samples {text!r} names several budgets", "give one, e.g. 100k")
    return budgets[0]


def fitted(run_dirs, form: str, samples, per_param: float, draws: int, seed: int, points=None):
    """(points, selection or None, bootstrap) of the chosen form on the study's points."""
    from effscale.law import bootstrap, fit_form, load_points
    from effscale.law.validate import candidates, select

    points = points or load_points(run_dirs, samples_of(samples))
    selection = None
    if form == "auto":
        selection = select(points, per_param)
        form = selection.chosen
    elif form not in candidates(points) and form in ("F1", "F2", "F3"):
        raise EffscaleError(f"{form} needs points at 3 budgets or more", "use F1 or F3")
    elif form not in ("F1", "F2", "F3"):
        raise EffscaleError(f"unknown form {form!r}", "choose auto, F1, F2 or F3")
    fit = fit_form(points, form, per_param)
    return points, selection, bootstrap(points, fit, draws, seed)
