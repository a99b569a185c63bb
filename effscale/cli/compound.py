"""effscale compound: compound scaling by phi (Equation 3, or the official B0-B7 table).

Examples:
    effscale compound --phi 0..7 --cost-only
    effscale compound --model efficientnet-b0 --phi 1..3 --match-single --seeds 3
    effscale compound --flops 2x,4x --cost-only --base-resolution 224
"""

from typing import Annotated

import typer

from effscale import output
from effscale.cli import running
from effscale.cli.app import app
from effscale.cli.options import (
    BASE,
    EXECUTOR,
    RUN,
    STUDY,
    VARIANT,
    FormatOpt,
    ModelOpt,
    takes,
)
from effscale.errors import EffscaleError
from effscale.output import Format

COST_SCREEN = ["phi", "d", "w", "r", "resolution", "params", "gflops"]
COST_SCREEN += ["target_flops_ratio", "realised_flops_ratio"]
FromSearchOpt = Annotated[
    str | None,
    typer.Option(
        "--from-search",
        metavar="RUN_DIR",
        help="Use the alpha, beta, gamma chosen by `effscale search` in this run directory "
        "(Step 2); not together with --alpha/--beta/--gamma.",
    ),
]
TableOpt = Annotated[
    str,
    typer.Option(
        "--table",
        metavar="[formula|official]",
        help="formula: Equation 3; official: the published B0-B7 table.",
    ),
]
MatchOpt = Annotated[
    str,
    typer.Option(
        "--match",
        metavar="[flops|params|activations|latency]",
        help="With --match-single: what each dimension alone is matched to the compound point "
        "by (activations predict GPU time better than FLOPs; latency is measured at batch 1 "
        "on --device; at equal params resolution is no match, since it adds none).",
    ),
]
FlopsOpt = Annotated[
    str | None,
    typer.Option(
        "--flops",
        metavar="RATIOS",
        help="Instead of --phi: the phi whose compound network realises the closest counted "
        "FLOPs to these multiples of the base's, after rounding (e.g. 4x or 2x,4x).",
    ),
]
MatchSingleOpt = Annotated[
    bool,
    typer.Option(
        "--match-single",
        help="Add, per phi, each dimension alone at the same counted FLOPs (paper Figure 8).",
    ),
]


@app.command(name="compound")
@takes
def compound_cmd(
    ctx: typer.Context,
    model: ModelOpt = "efficientnet-b0",
    phi: Annotated[
        str, typer.Option(metavar="RANGE", help="Range of phi: 1..7, 0..2:0.5 or 1,2,3.")
    ] = "1..7",
    flops: FlopsOpt = None,
    coefficients: dict = VARIANT.pick("alpha beta gamma"),
    from_search: FromSearchOpt = None,
    table_: TableOpt = "formula",
    match_single: MatchSingleOpt = False,
    match: MatchOpt = "flops",
    study: dict = STUDY,
    cluster: dict = EXECUTOR,
    run: dict = RUN,
    base: dict = BASE,
    fmt: FormatOpt = Format.table,
):
    """Compound scaling by phi (Equation 3, or the official B0-B7 table), trained briefly.

    With --cost-only: per phi, (d, w, r), cost, and target vs realised FLOPs ratio.
    Examples: effscale compound --phi 0..7 --cost-only;
    effscale compound --model efficientnet-b0 --phi 1..3 --match-single --seeds 3
    """
    from effscale.scaling import parse_range
    from effscale.study.kinds import compound_costs, compound_study

    alpha, beta, gamma = coefficients.values()
    if from_search:
        alpha, beta, gamma = _from_search(ctx, from_search, table_)
    rule = (
        "the official B0-B7 table (efficientnet_builder.py)"
        if table_ == "official"
        else f"Equation 3 with alpha={alpha:g}, beta={beta:g}, gamma={gamma:g}"
        + (f" (chosen by the search in {from_search})" if from_search else "")
    )
    running.one_of(run["cost_only"], run["dry_run"])
    scaling = {"alpha": alpha, "beta": beta, "gamma": gamma, "table": table_}
    if flops is not None:
        _only_flops(ctx, table_)
    phis = parse_range(phi) if flops is None else None
    if run["cost_only"]:
        b, classes, where = running.cost_base(model, study["data"], base)
        with output.planning("counting"):
            phis = phis or _phis_for(flops, b, classes, scaling)
            rows = compound_costs(b, phis, classes, **scaling)
        output.rows(rows, fmt, title=f"Compound scaling of {model}", screen=COST_SCREEN)
        output.note(
            f"Scaling rule: {rule}. Target ratio = (alpha*beta^2*gamma^2)^phi; "
            f"realised = counted FLOPs / base FLOPs after rounding. {where}.",
            fmt,
        )
        return
    s, seeds = running.setting(model, study, base)
    if phis is None:
        with output.planning("solving phi for the FLOPs targets"):
            phis = _phis_for(flops, s.base, s.dataset.num_classes, scaling)
        output.note(f"phi for {flops}: {', '.join(f'{p:g}' for p in phis)}", fmt)
    planned = compound_study(
        s,
        phis,
        seeds,
        **scaling,
        match_single=match_single,
        planning=output.planning,
        match=match,
        **_where_timed(match, run["device"]),
    )
    output.note(f"Scaling rule: {rule}", fmt)
    running.run_and_print(planned, fmt, cluster, run)


def _from_search(ctx: typer.Context, run_dir: str, table_: str) -> tuple[float, float, float]:
    """The alpha, beta, gamma a search chose (--from-search), refused beside another rule."""
    from effscale.study.search import chosen_coefficients

    given = [n for n in ("alpha", "beta", "gamma") if ctx.get_parameter_source(n).name != "DEFAULT"]
    if given or table_ == "official":
        other = f"--{given[0]}" if given else "--table official"
        raise EffscaleError(f"--from-search and {other} both set the scaling", "give one")
    return chosen_coefficients(run_dir)


def _only_flops(ctx: typer.Context, table_: str) -> None:
    """--flops chooses phi: not beside --phi, nor with the official table (whole phis)."""
    if ctx.get_parameter_source("phi").name != "DEFAULT":
        raise EffscaleError("--flops and --phi both choose phi", "give one of them")
    if table_ == "official":
        raise EffscaleError("--flops solves phi for Equation 3", "drop --table official")


def _phis_for(ratios: str, base, num_classes: int, scaling: dict) -> list[float]:
    """--flops RATIOS ("4x", "2x,4x") as the phi realising each (kinds.phi_for_flops)."""
    from effscale.study.kinds import phi_for_flops

    try:
        targets = [float(r.strip().removesuffix("x")) for r in ratios.split(",")]
    except ValueError:
        raise EffscaleError(f"--flops {ratios!r}: not ratios", "write e.g. 4x or 2x,4x") from None
    rule = {k: scaling[k] for k in ("alpha", "beta", "gamma")}
    return [phi_for_flops(base, t, num_classes, **rule) for t in targets]


def _where_timed(match: str, device: str) -> dict:
    """The device a latency match is measured on (the run's), named as torch names it."""
    if match != "latency":
        return {}
    from effscale.training.device import resolve_device

    return {"device": str(resolve_device(device))}
