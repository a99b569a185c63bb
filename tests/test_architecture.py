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
