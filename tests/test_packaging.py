"""The package as a user gets it: a wheel built from a clean clone, installed in a fresh venv.

Slow (a clone, a build and an install: about half a minute), so it runs in CI (.ci/run) and
with `make test-slow`, not in the fast suite. The fresh venv takes effscale from the wheel
only; its dependencies (torch and the rest) come from this environment through a .pth file,
so no other torch build is downloaded.
"""

import json
import os
import site
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def _build_isolation() -> list[str]:
    """Build with this environment's setuptools when it is recent enough (no download)."""
    try:
        major = int(version("setuptools").split(".")[0])
    except Exception:
        return []
    return ["--no-build-isolation"] if major >= 77 else []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no clean clone to build from")
    tmp = tmp_path_factory.mktemp("wheel")
    _run("git", "clone", "-q", str(ROOT), str(tmp / "src"))
    _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *_build_isolation(),
        "-w", str(tmp / "dist"), str(tmp / "src"),
    )  # fmt: skip
    (path,) = (tmp / "dist").glob("effscale-*.whl")
    return path


def test_the_wheel_holds_the_license_the_studies_and_the_typing_marker(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "effscale/py.typed" in names
    studies = {Path(n).stem for n in names if n.startswith("effscale/studies/")}
    assert {"quick", "figure3", "figure8", "cifar10"} <= studies
    assert "effscale/data/embedded/cifar10-subset.zip" in names
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert "License-Expression: MIT" in metadata and "Classifier: Typing :: Typed" in metadata


def test_the_wheel_installs_in_a_fresh_venv_and_runs(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel))  # fmt: skip
    purelib = _run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    deps = Path(purelib.stdout.strip()) / "_effscale_test_deps.pth"
    deps.write_text("\n".join(site.getsitepackages()) + "\n")  # torch, typer, ... from here
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    where = _run(str(python), "-c", "import effscale; print(effscale.__file__)", cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy, not this one
    effscale = str(venv / "bin" / "effscale")
    assert _run(effscale, "--version", cwd=tmp_path).stdout.startswith("effscale ")
    models = json.loads(_run(effscale, "models", "--format", "json", cwd=tmp_path, env=env).stdout)
    assert {"efficientnet-b0", "resnet50", "mobilenet-v2"} <= {m["model"] for m in models}
    listed = json.loads(_run(effscale, "studies", "--format", "json", cwd=tmp_path).stdout)
    quick = next(s for s in listed if s["name"] == "quick")
    assert quick["file"].startswith(str(venv))  # found in the installed package
