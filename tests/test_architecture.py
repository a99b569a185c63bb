"""The package's shape, checked: what each module may name and import.

Scans the source with ast, so comments and docstrings do not count.
"""

import ast
import re
from pathlib import Path

import effscale

PACKAGE = Path(effscale.__file__).parent

# The files of a run directory: spelled in effscale/rundir.py alone.
RUN_DIR_FILES = (
    "checkpoint.pt",
    "config.json",
    "metrics.jsonl",
    "result.json",
    "error.json",
    "study.json",
    "results.csv",
    "summary.csv",
    "latency.csv",
    "estimates.json",
    "search.json",
    "jobs.json",
)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_run_directory_file_names_are_spelled_in_rundir_alone():
    """A string that is a file's name, or a path ending in one ("/result.json" after an
    f-string's directory), is a path spelled outside rundir.py; prose that mentions a
    file (a help text, a message's hint) is not."""
    found = []
    for path, tree in modules():
        if path == PACKAGE / "rundir.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for name in RUN_DIR_FILES:
                    if node.value == name or node.value.endswith("/" + name):
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {name}")
    assert not found, "use effscale.rundir (PointDir, StudyDir) instead:\n" + "\n".join(found)


def _name(path: Path) -> str:
    parts = ["effscale", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the effscale modules it imports, anywhere in it (inside functions too, as
    the imports that break a cycle at load time would): ``from a import b`` counts as a.b
    when b is a module, else as a."""
    trees = {_name(path): (path, tree) for path, tree in modules()}
    graph = {}
    for name, (path, tree) in trees.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for a in node.names:
                    edges.add(f"{base}.{a.name}" if f"{base}.{a.name}" in trees else base)
        graph[name] = {e for e in edges if e in trees and e != name}
    return graph


def test_the_package_has_no_import_cycle():
    graph, cycles = import_graph(), []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_rich_is_imported_by_the_output_layer_and_the_cli_alone():
    """The library reports through events, effscale.output and effscale.display; only
    these draw with rich."""
    allowed = {PACKAGE / "output.py", PACKAGE / "display.py"}
    found = []
    for path, tree in modules():
        if path in allowed or path.is_relative_to(PACKAGE / "cli"):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n == "rich" or n.startswith("rich.") for n in names):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, "rich outside effscale/output.py, display.py and cli/:\n" + "\n".join(found)


def test_planning_does_not_import_the_runner():
    """Plans are made and costed (plan, files, estimate) without the engine or executors."""
    graph = import_graph()
    runner = ("effscale.study.engine", "effscale.study.worker", "effscale.study.executors")
    for start in ("effscale.study.plan", "effscale.study.files", "effscale.study.estimate"):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        assert not [m for m in seen if m.startswith(runner)], start


MAX_MODULE_LINES = 500  # a module over this holds more than one idea: split it
MAX_FUNCTION_LINES = 80  # a function over this no longer reads on one screen


def test_modules_and_functions_stay_short():
    """No module over 500 lines, no function over 80 (decorators excluded, docstring
    included), without exceptions."""
    too_long = []
    for path, tree in modules():
        name = path.relative_to(PACKAGE.parent)
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, too_long


# The layers, bottom to top (issue 29): a module imports only from its own layer or below.
# A module is placed by the longest prefix listed; importing a submodule runs its package's
# __init__, so an edge is counted between the layers of the two modules, wherever it sits.
LAYERS = [
    ("core", ["effscale", "effscale.errors", "effscale.io", "effscale.spec", "effscale.text",
              "effscale.recipe", "effscale.hardware"]),
    ("scaling", ["effscale.scaling"]),
    ("zoo", ["effscale.zoo"]),
    ("cost", ["effscale.cost", "effscale.timm_cost", "effscale.paper"]),
    ("data", ["effscale.data"]),
    ("rundir", ["effscale.rundir", "effscale.runfiles"]),
    ("training", ["effscale.training", "effscale.trained", "effscale.latency", "effscale.cam"]),
    ("study", ["effscale.study"]),
    ("law", ["effscale.law"]),
    ("report", ["effscale.report"]),
    ("output", ["effscale.output", "effscale.display"]),
    ("cli", ["effscale.cli", "effscale.__main__"]),
]  # fmt: skip

# Upward imports not yet removed, each with its reason: this list may only shrink (a new
# upward import fails the test; removing one of these and not its line fails it too).
KNOWN_UPWARD = {
    # the lazy native-resolution default of scaling.variant reads the registry
    ("effscale.scaling", "effscale.zoo.registry"),
    # the planner's Study and Point types (and so results recount costs through the study)
    ("effscale.rundir", "effscale.study.plan"),
}


def layer_of(module: str) -> int:
    best, at = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, at = len(p), i
    assert at >= 0, f"{module} is in no layer: add it to LAYERS"
    return at


def upward_imports(graph: dict[str, set[str]] | None = None) -> set[tuple[str, str]]:
    graph = import_graph() if graph is None else graph
    return {(a, b) for a, edges in graph.items() for b in edges if layer_of(b) > layer_of(a)}


def test_the_layer_check_sees_an_upward_import():
    """A deliberate upward import (cost importing the report) is caught, and so is one
    inside a function, as the import graph counts those too."""
    graph = import_graph()
    graph["effscale.cost"] = graph["effscale.cost"] | {"effscale.report.report"}
    assert ("effscale.cost", "effscale.report.report") in upward_imports(graph) - KNOWN_UPWARD


def test_every_import_goes_down_the_layers():
    found = upward_imports()
    new = sorted(found - KNOWN_UPWARD)
    assert not new, "imports against the layers (see LAYERS):\n" + "\n".join(
        f"{a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})" for a, b in new
    )
    gone = sorted(KNOWN_UPWARD - found)
    assert not gone, "removed upward imports still listed in KNOWN_UPWARD:\n" + "\n".join(
        f"{a} -> {b}" for a, b in gone
    )


def test_the_packages_have_no_import_cycle():
    """Cycles between top-level packages and modules (effscale.X), which a module-level
    check misses: importing effscale.zoo.registry runs effscale/zoo/__init__.py."""
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    graph: dict[str, set[str]] = {}
    for a, edges in import_graph().items():
        graph.setdefault(top(a), set()).update(top(b) for b in edges if top(b) != top(a))
    known = {(top(a), top(b)) for a, b in KNOWN_UPWARD}
    cycles, state = [], {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if (node, nxt) in known:
                continue  # a listed upward import: test_every_import_goes_down_the_layers
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "package cycles:\n" + "\n".join(cycles)


MAX_PARAMETERS = 8  # beyond this, state travels in a record (issue 29), unless a reason says
# Functions allowed more, each with its reason. Typer commands are allowed by their decorator:
# each parameter is a command-line option.
MANY_PARAMETERS = {
    "make_variant": "the one way to build a variant: keyword-only design settings",
    "compound_variants": "Equation 3's coefficients and the base design, keyword-only",
    "variant_for": "the CLI's variant options, keyword-only, resolved in one place",
    "plan_compound": "Figure 8's rule and matching settings, keyword-only",
    "compound_study": "the compound command's settings, keyword-only",
    "candidates": "the grid search's grid settings, keyword-only",
    "run_study": "the public engine call: keyword-only run settings",
    "train": "the public training call: keyword-only run settings",
    "__init__": "SlurmExecutor: one keyword per sbatch setting, as submitit takes them",
    "_run": "the engine's bookkeeping state, shared with _waves",
}


def test_no_function_takes_more_parameters_than_a_record_would_hold():
    too_many = []
    for path, tree in modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            a = node.args
            n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
            n -= bool(a.args and a.args[0].arg in ("self", "cls"))
            command = any("command" in ast.unparse(d) for d in node.decorator_list)
            if n > MAX_PARAMETERS and not command and node.name not in MANY_PARAMETERS:
                too_many.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n}")
    assert not too_many, "pass a record, or give the reason in MANY_PARAMETERS:\n" + "\n".join(
        too_many
    )


def test_no_callback_stops_work_by_throwing_and_the_engine_names_no_executor():
    """Issue 29: stopping was a KeyboardInterrupt raised from inside a progress callback, and
    the engine and the estimate told executors apart by their type names. Now the SIGINT
    handler alone raises it, and both ask the Executor protocol (local, same_process,
    shape(), run())."""
    raising = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "raise KeyboardInterrupt" in path.read_text()
    ]
    assert raising == ["effscale/study/executors/events.py"]  # stop_on_sigint's handler
    for module in ("study/engine.py", "study/estimate.py"):
        source = (PACKAGE / module).read_text()
        for name in ('InProcess"', "LocalWorkers", "RayExecutor", "SlurmExecutor", "__name__"):
            assert name not in source, (module, name)
        assert "getattr(executor" not in source and "hasattr(executor" not in source, module


def _strings(tree):
    """Every string a module's code holds (f-strings with {} for their fields), docstrings
    aside: what its messages can say."""
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docs.add(id(body[0].value))
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield (
                node.lineno,
                "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values),
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docs and id(node) not in parts:
                yield node.lineno, node.value


def test_no_library_message_names_a_cli_flag():
    """Issue 29: about 40 library messages named CLI flags, which a Python caller has not
    got. The library names parameters (`epochs`=3) and the CLI shows them as flags
    (effscale.errors.as_flags); a flag inside a quoted command (`effscale fit --x`) is a
    command to run, not a parameter."""
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
    command = re.compile(r"`[a-z]+ [^`]*`")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text[:60]!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "cli" and path.name != "errors.py"  # as_flags
        for line, text in _strings(ast.parse(path.read_text()))
        if flag.search(command.sub("", text))
    ]
    assert not found


def test_the_cli_shows_parameters_as_flags():
    from effscale.errors import as_flags

    said = "`epochs` must be positive (write e.g. `epochs`=3); `time_min`=0, `new_head`, `x`"
    assert as_flags(said) == (
        "--epochs must be positive (write e.g. --epochs 3); --time 0, --new-head, --x"
    )
