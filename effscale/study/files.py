"""Study files: a whole study written as TOML, checked like nanoGPT's configurator.

    name = "figure3"                      # run directory: runs/<name>
    model = "efficientnet-b0"
    data = "cifar10"                      # as --data: embedded, synthetic, cifar10, a path
    budget = "short"                      # smoke, short, paper
    samples = [100_000, 200_000]          # training budgets, each its own points (optional;
                                          # default: the budget's); also per table below
    seeds = 3                             # seeds 0 .. n-1 (or a list: [0, 5, 7])
    base_width = 0.5                      # the study's base design (optional)
    threads = 1                           # torch threads per point (optional; --threads wins)
    log = ["tensorboard"]                 # trackers (optional; --log wins): mlflow, wandb

    [slurm]                               # for --executor slurm (optional; the CLI's win)
    account = "lab"                       # also partition, qos, mem, cpus_per_point,
    setup = ["module load cuda"]          # constraint, time_min, max_parallel,
    sbatch = { reservation = "r1" }       # gpus_per_point

    [recipe]                              # overrides of the budget's fields (optional)
    lr = 0.1

    [[sweep]]                             # paper Figure 3: one dimension alone
    dim = "width"
    values = [1.0, 1.4, 2.0, 2.8]

    [[compound]]                          # Equation 3 (or table = "official")
    phi = [1, 2, 3]                       # or "1..3"
    match_single = true                   # Figure 8: each dimension at the same FLOPs
    match = "flops"                       # (or params, activations: the same of those)

    [[variant]]                           # one explicit variant (paper Tables 3 and 7)
    d = 1.4
    w = 1.2
    r = 1.3
    role = "compound"                     # optional: inferred from what is scaled

    [[transfer]]                          # paper Table 5: pre-train, then fine-tune
    pretrain = "embedded"                 # optional: default, the study's data (--data)
    finetune = "cifar100"                 # effscale run --finetune-data replaces it
    w = 1.4                               # optional: the variant (d, w, r), as [[variant]],
    phi = [2]                             # or variants as [[compound]] plans them (phi,
    match_single = true                   # match_single, alpha, beta, gamma, table)
    finetune_samples = 50000              # optional: default, the recipe's samples
    pretrain_seeds = 1                    # optional: pre-train fewer seeds than fine-tune
    scratch = true                        # optional: each also from scratch on finetune

A [[transfer]] plans, per variant and seed, a "pretrain" point and a "transfer" point that
starts from its checkpoint (a fresh classifier when the class counts differ), at the
variant's resolution (the fine-tune images resized to it); with pretrain_seeds = 1, every
seed from one checkpoint. The report shows both accuracies, from scratch, and the gain.

An unknown key, or a value of the wrong type, is refused with the file, the key and its line;
so is a dataset that is not at hand (a path that does not exist, a download that fails), before
anything is planned.
"""

from dataclasses import fields
from pathlib import Path

import tomllib

from effscale import limits
from effscale.errors import EffscaleError
from effscale.recipe import Recipe, budget, parse_budgets
from effscale.scaling import ALPHA, BETA, GAMMA, parse_range
from effscale.study.packaged import find_study, packaged_studies
from effscale.study.plan import (
    FIGURE3_VALUES,
    Base,
    Point,
    Study,
    at_budgets,
    plan_compound,
    plan_sweep,
    plan_transfer,
    recipe_identity,
)

NUMBER = (int, float)
TOP = {
    "name": str,
    "description": str,
    "model": str,
    "data": str,
    "budget": str,
    "samples": (int, list, str),
    "seeds": (int, list),
    "base_resolution": int,
    "base_width": NUMBER,
    "base_depth": NUMBER,
    "multiple": int,
    "small_input": bool,
    "threads": int,
    "slurm": dict,
    "log": list,
    "recipe": dict,
    "sweep": list,
    "compound": list,
    "variant": list,
    "transfer": list,
}
SAMPLES = (int, list, str)
SWEEP = {"dim": str, "values": (list, str), "model": str, "samples": SAMPLES}
VARIANT = {"model": str, "d": NUMBER, "w": NUMBER, "r": NUMBER, "role": str, "samples": SAMPLES}
COMPOUND = {
    "phi": (list, str, int, float), "alpha": NUMBER, "beta": NUMBER, "gamma": NUMBER,
    "table": str, "match_single": bool, "match": str, "model": str, "samples": SAMPLES,
}  # fmt: skip
TRANSFER = {
    "pretrain": str,
    "finetune": str,
    "model": str,
    "d": NUMBER,
    "w": NUMBER,
    "r": NUMBER,
    **{k: v for k, v in COMPOUND.items() if k not in ("model", "samples")},
    "finetune_samples": int,
    "pretrain_seeds": int,
    "scratch": bool,
}
SLURM = {
    **{k: str for k in ("partition", "account", "qos", "mem", "constraint")},
    **{k: int for k in ("cpus_per_point", "time_min", "max_parallel", "gpus_per_point")},
    "setup": list,
    "sbatch": dict,
}
RECIPE = {f.name: NUMBER if f.type is float else f.type for f in fields(Recipe)}


REQUIRED = {"sweep": ("dim",), "compound": (), "variant": (), "transfer": ("finetune",)}
EXAMPLE = {
    "dim": 'write e.g. dim = "width" (depth, width or resolution)',
    "finetune": 'write e.g. pretrain = "embedded" and finetune = "cifar100"',
}


def _line_of(text: str, key: str, table: str | None) -> int:
    """The line where ``key`` is set (after its table header, when it has one)."""
    lines = text.splitlines()
    start = 0
    if table:
        for i, line in enumerate(lines):
            if line.strip().strip("[]").strip() == table.strip("[]"):  # [[sweep]] too
                start = i
                break
    for i in range(start, len(lines)):
        stripped = lines[i].split("#")[0].strip()
        if stripped.split("=")[0].strip() == key:
            return i + 1
    return 0


def _check(path: Path, text: str, table: dict, schema: dict, where: str | None) -> None:
    for key, value in table.items():
        line = _line_of(text, key, where)
        at = f"{path}:{line}" if line else str(path)
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise EffscaleError(
                f"{at}: unknown key {key!r}" + (f" in [{where}]" if where else ""),
                f"known keys: {known}",
            )
        expected = schema[key]
        if isinstance(value, bool) and expected in (NUMBER, int):
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            want = " or ".join(
                t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,))
            )
            raise EffscaleError(
                f"{at}: {key!r} must be {want}, got {type(value).__name__} {value!r}",
                "fix the value in the study file",
            )


def load_study(
    path: str | Path,
    *,
    data: str | None = None,
    budget_name: str | None = None,
    seeds: int | None = None,
    samples: list[int] | None = None,
    num_classes: int | None = None,
    finetune: str | None = None,
    fetch: bool = True,
) -> Study:
    """Parse and plan a study file; keyword arguments override the file (e.g. in CI).

    ``samples``: training budgets replacing every budget the file names; ``finetune``: the
    dataset every [[transfer]] fine-tunes on. Every dataset the study names is checked
    first (names.missing: downloads are fetched then; not with ``fetch=False``: a dry run)."""
    path = find_study(path)
    text, spec = _read(path)
    if finetune is not None:
        spec["transfer"] = _fine_tuned_on(path, spec, finetune)
    name = spec.get("name", path.stem)
    if not plain_name(name):
        line = _line_of(text, "name", None)
        raise EffscaleError(
            f"{path}:{line}: name {name!r} is not a plain file name",
            "the run directory is runs/<name>: give one folder name, without '/' or '..'",
        )

    from effscale.data.cache import facts
    from effscale.study.kinds import study_base

    _check_data(path, text, spec, data, finetune, fetch)
    data = data or spec.get("data", "embedded")
    recipe = budget(budget_name or spec.get("budget", "short"), **spec.get("recipe", {}))
    try:
        recipe.validate()  # train's messages, with the file's name
    except EffscaleError as e:
        raise EffscaleError(f"{path}: [recipe] {e.message}", e.hint) from None
    top_budgets = samples or _budgets(path, spec)

    def recipes(entry: dict) -> list[Recipe]:
        return at_budgets(recipe, samples or _budgets(path, entry) or top_budgets)

    seed_list = _seeds(path, spec, seeds)
    design = {k: spec[k] for k in BASE_KEYS[1:] if k in spec}
    num_classes = num_classes or facts(data).num_classes

    def base_for(entry: dict) -> Base:
        model = entry.get("model", spec.get("model", "efficientnet-b0"))
        return study_base(model, data, **design)[0]

    threads = spec.get("threads")
    if threads is not None and threads < 1:
        line = _line_of(text, "threads", None)
        raise EffscaleError(f"{path}:{line}: threads = {threads}: give 1 or more", "threads = 1")
    slurm = spec.get("slurm", {})
    log = tuple(str(t) for t in spec.get("log", []))  # trackers: checked before anything runs
    study = Study(name, _identity(name, data, recipe, spec), threads=threads, slurm=slurm, log=log)
    for entry in spec.get("sweep", []):
        dim = entry["dim"]
        values = entry.get("values", FIGURE3_VALUES.get(dim, []))
        values = parse_range(values) if isinstance(values, str) else [float(v) for v in values]
        for r in recipes(entry):
            study.add_all(plan_sweep(base_for(entry), dim, values, seed_list, r, data))
    for entry in spec.get("compound", []):
        for r in recipes(entry):
            study.add_all(_compound(entry, base_for(entry), seed_list, r, data, num_classes))
    for entry in spec.get("variant", []):
        for r in recipes(entry):
            study.add_all(_variant(entry, base_for(entry), seed_list, r, data))
    for entry in spec.get("transfer", []):
        pre_recipe = at_budgets(recipe, top_budgets)[0]
        study.add_all(_transfer(path, text, entry, base_for(entry), seed_list, pre_recipe, data))
    return study


def _transfer(path: Path, text: str, entry: dict, base: Base, seeds, recipe, data) -> list:
    """A [[transfer]]: its variants pre-trained on its pretrain data (the study's unless it
    says) with the study's first pretrain_seeds seeds, each fine-tuned with every seed."""
    from effscale.data.cache import facts

    n = entry.get("pretrain_seeds", len(seeds))
    if not 1 <= n <= len(seeds):
        line = _line_of(text, "pretrain_seeds", "[transfer]") or "?"
        raise EffscaleError(
            f"{path}:{line}: pretrain_seeds = {n}: give 1 to {len(seeds)} (the study's seeds)",
            "pretrain_seeds = 1 fine-tunes every seed from one pre-trained checkpoint",
        )
    pretrain = entry.get("pretrain", data)
    sources = (
        _compound(entry, base, seeds[:n], recipe, pretrain, facts(pretrain).num_classes)
        if "phi" in entry
        else _variant(entry, base, seeds[:n], recipe, pretrain)
    )
    tune = {
        "finetune_samples": entry.get("finetune_samples"),
        "scratch": entry.get("scratch", False),
    }
    return plan_transfer(sources, seeds, entry["finetune"], **tune)


def _read(path: Path) -> tuple[str, dict]:
    """A study file's text and its tables, every key and value checked."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise EffscaleError(
            f"{path}: not a text file (not UTF-8)", "give a TOML study file"
        ) from None
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EffscaleError(f"{path}: not valid TOML ({e})") from None
    _check(path, text, spec, TOP, None)
    _check(path, text, spec.get("recipe", {}), RECIPE, "recipe")
    _check(path, text, spec.get("slurm", {}), SLURM, "slurm")
    for kind, schema in (
        ("sweep", SWEEP),
        ("compound", COMPOUND),
        ("variant", VARIANT),
        ("transfer", TRANSFER),
    ):
        for entry in _tables(path, text, spec, kind):
            _check(path, text, entry, schema, f"[{kind}]")
            for key in REQUIRED[kind]:
                if key not in entry:
                    raise EffscaleError(
                        f"{path}:{_line_of(text, f'[[{kind}]]', None) or '?'}: "
                        f"a [[{kind}]] table needs {key!r}",
                        EXAMPLE[key],
                    )
            for key in ("values", "phi"):
                if isinstance(entry.get(key), list):
                    _numbers(path, text, entry[key], key, f"[{kind}]")
    if not any(spec.get(k) for k in ("sweep", "compound", "variant", "transfer")):
        raise EffscaleError(
            f"{path}: the study plans no points",
            "add a [[sweep]], [[compound]], [[variant]] or [[transfer]]",
        )
    return text, spec


def _fine_tuned_on(path: Path, spec: dict, finetune: str) -> list[dict]:
    """The study's [[transfer]] tables, each fine-tuning on ``finetune`` instead."""
    if not spec.get("transfer"):
        raise EffscaleError(
            f"{path} has no [[transfer]] table, so no fine-tune data to replace",
            "drop `finetune_data`, or give a study with [[transfer]] tables",
        )
    return [{**entry, "finetune": finetune} for entry in spec["transfer"]]


def named_data(spec: dict) -> list[tuple[str, str]]:
    """(dataset, key) for every dataset a study file names: its data and, per [[transfer]],
    its pretrain and finetune data."""
    named = [(spec.get("data", "embedded"), "data")]
    for entry in spec.get("transfer", []):
        named += [(entry["pretrain"], "pretrain")] if "pretrain" in entry else []
        named += [(entry["finetune"], "finetune")]
    return named


def _check_data(path: Path, text: str, spec: dict, data, finetune, fetch: bool = True):
    """Each dataset the study names is at hand, or one line says which is not, where it was
    named and how to give its path; cheap, so it comes before planning (a study whose
    fine-tune set cannot be downloaded used to plan and cost everything first)."""
    from effscale.data import names

    flags = {"data": ("`data`", data), "finetune": ("`finetune_data`", finetune)}
    seen = set()
    for dataset, key in named_data({**spec, "data": data or spec.get("data", "embedded")}):
        why = None if dataset in seen else names.missing(dataset, fetch)
        seen.add(dataset)
        if why is None:
            continue
        flag, given = flags.get(key, (None, None))
        table = None if key == "data" else "[transfer]"
        line = _line_of(text, key, table) or "?"
        where = f"{flag} {dataset}" if given else f"{path}:{line} ({key})"
        example = names.local_example(dataset)
        ways = ([f"{flag} {example}"] if flag else []) + [f'{key} = "{example}" in the study file']
        raise EffscaleError(f"{where}: {why}", "give its path: " + " or ".join(ways))


def _seeds(path: Path, spec: dict, seeds: int | None) -> list[int]:
    """The seeds: ``seeds`` (a count) when given, else the file's count or list."""
    n_seeds = seeds if seeds is not None else spec.get("seeds", 1)
    count = n_seeds if isinstance(n_seeds, int) else len(n_seeds)
    limits.count_at_most(f"{path}: seeds", count)  # before a billion seeds are listed
    seed_list = list(range(n_seeds)) if isinstance(n_seeds, int) else list(n_seeds)
    if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) for s in seed_list):
        raise EffscaleError(
            f"{path}: seeds must be a positive count or a list of integers",
            "write seeds = 3 or seeds = [0, 1, 2]",
        )
    return seed_list


BASE_KEYS = ("model", "base_width", "base_depth", "base_resolution", "multiple", "small_input")


def _identity(name: str, data: str, recipe: Recipe, spec: dict) -> dict:
    """What a run directory must agree on to take this study file's points."""
    return {
        "kind": "study file",
        "name": name,
        "data": data,
        "recipe": recipe_identity(recipe),
        "base": {k: spec.get(k) for k in BASE_KEYS},
    }


def _compound(entry: dict, base: Base, seeds, recipe, data, num_classes) -> list[Point]:
    phi = entry.get("phi", "1..3")
    phis = parse_range(str(phi)) if not isinstance(phi, list) else [float(p) for p in phi]
    return plan_compound(
        base,
        phis,
        seeds,
        recipe,
        data,
        alpha=entry.get("alpha", ALPHA),
        beta=entry.get("beta", BETA),
        gamma=entry.get("gamma", GAMMA),
        table=entry.get("table", "formula"),
        match_single=entry.get("match_single", False),
        num_classes=num_classes,
        match=_match(entry),
    )


def _variant(entry: dict, base: Base, seeds, recipe, data) -> list[Point]:
    """A [[variant]]: one explicit (d, w, r), its role inferred from what it scales."""
    variant = base.variant(*(float(entry.get(k, 1.0)) for k in ("d", "w", "r")))
    scaled = variant.scaled_dimensions
    role = entry.get("role") or (
        "base" if not scaled else scaled[0] if len(scaled) == 1 else "compound"
    )
    return [Point(variant, seed, recipe, data, (role,)) for seed in seeds]


def _tables(path: Path, text: str, spec: dict, kind: str) -> list[dict]:
    """The [[kind]] tables of a study file; anything else under that key is refused."""
    entries = spec.get(kind, [])
    if not all(isinstance(e, dict) for e in entries):
        line = _line_of(text, kind, None)
        raise EffscaleError(
            f"{path}:{line or '?'}: {kind!r} must be a list of [[{kind}]] tables, got {entries!r}"[
                :300
            ],
            f"write each one as a [[{kind}]] table",
        )
    return entries


def _numbers(path: Path, text: str, values: list, key: str, where: str) -> None:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, NUMBER)]
    if bad:
        line = _line_of(text, key, where)
        raise EffscaleError(
            f"{path}:{line or '?'}: {key!r} must hold numbers, got {bad[0]!r}",
            'write e.g. values = [1.0, 1.4, 2.0], phi = [1, 2, 3] or a range such as "1..3"',
        )


def plain_name(name: str) -> bool:
    """Whether ``name`` is one directory name (runs/<name> stays inside runs/)."""
    return (
        name not in ("", ".", "..")
        and name.strip() == name
        and not any(c in "/\\" or not c.isprintable() for c in name)
    )


def _budgets(path: Path, table: dict) -> list[int] | None:
    """A table's ``samples`` as a list of budgets, or None when it names none."""
    if "samples" not in table:
        return None
    try:
        return parse_budgets(table["samples"])
    except EffscaleError as e:
        raise EffscaleError(f"{path}: samples: {e.message}", e.hint) from None


def describe_studies() -> list[dict]:
    """One row per packaged study: name, what it is for, model, data, budget, seeds, what
    its data need (a download, a path to give: effscale.data.names.needs), file."""
    from effscale.data import names

    rows = []
    for name, path in packaged_studies().items():
        text = path.read_text()
        spec = tomllib.loads(text)
        comment = next((line for line in text.splitlines() if line.startswith("#")), "# ")
        rows.append(
            {
                "name": spec.get("name", name),
                "description": spec.get("description") or comment.lstrip("# ").strip(),
                "model": spec.get("model", "efficientnet-b0"),
                "data": spec.get("data", "embedded"),
                "budget": spec.get("budget", "short"),
                "seeds": spec.get("seeds", 1),
                "needs": names.needs([d for d, _ in named_data(spec)]),
                "file": str(path),
            }
        )
    return rows


def _match(entry: dict) -> str:
    match = entry.get("match", "flops")
    if match == "latency":  # timed on the run's device, which a study file does not know
        raise EffscaleError(
            'match = "latency" in a study file: latency is measured where the study runs',
            "use `match`=latency with a `device` to time on, or match by activations",
        )
    return match
