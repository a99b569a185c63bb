"""The package's shape, checked: what each module may name and import.

Scans the source with ast, so comments and docstrings do not count.
"""

import ast
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
