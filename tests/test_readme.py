"""The manual's Python API example (docs/guide.md, "Python API"; the README links to it) runs
as written, and ``import effscale`` stays light."""

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"  # the README's manual


def python_api_example() -> str:
    """The first Python block of the guide's "## Python API" section."""
    section = GUIDE.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_needs_at_most_two_imports():
    imports = [ln for ln in python_api_example().splitlines() if re.match(r"(import|from) ", ln)]
    assert 1 <= len(imports) <= 2, imports


def test_readme_example_runs(tmp_path, monkeypatch):
    """As written, but at the smoke budget: "short" takes ~10 minutes on a small CPU
    (EFFSCALE_README_BUDGET=short runs the example verbatim)."""
    code = python_api_example()
    assert 'budget("short")' in code
    budget = os.environ.get("EFFSCALE_README_BUDGET", "smoke")
    code = code.replace('budget("short")', f"budget({budget!r})")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(GUIDE), "exec"), namespace)
    assert 0.0 <= namespace["result"]["top1"] <= 100.0
    assert (tmp_path / "runs" / "mine").is_dir()


def test_import_effscale_does_not_import_torch():
    code = (
        "import sys, effscale; effscale.make_variant('efficientnet-b0', w=0.5); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_top_level_names_resolve():
    import effscale

    for name in effscale.__all__:
        assert getattr(effscale, name) is not None, name
    assert effscale.train_variant is __import__("effscale.training.loop", fromlist=["train"]).train
