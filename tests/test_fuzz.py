"""Every file of a finished run directory damaged in turn (random bytes, empty, wrong-typed
JSON), then `status`, `report` and a rerun: never a traceback, never a file outside it."""

import json
import os
import random
import shutil

import pytest
from conftest import study_toml
from typer.testing import CliRunner

from effscale.cli import app

runner = CliRunner()

DAMAGES = {
    "bytes": lambda rng: bytes(rng.randrange(256) for _ in range(200)),
    "empty": lambda rng: b"",
    "wrong types": lambda rng: json.dumps(
        {
            "top1": "high",
            "status": 3,
            "points": 7,
            "identity": [],
            "seconds": "x",
            "alpha": None,
            "chosen": "yes",
            "rows": {"a": 1},
        }
    ).encode(),  # fmt: skip
    "a list": lambda rng: b"[1, 2, 3]",
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    f = root / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=128))
    out = root / "run"
    r = runner.invoke(app, ["run", str(f), "--out", str(out), "--latency"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    return f, out


def _files(run_dir):
    return sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.name.startswith("."))


def _crash(r) -> str | None:
    """What went wrong, or None for a clean answer (exit 0, 1 or 2, no traceback)."""
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return f"{type(r.exception).__name__}: {str(r.exception)[:150]}"
    if r.exit_code not in (0, 1, 2) or "Traceback" in r.output:
        return f"exit {r.exit_code}: {r.output[-150:]}"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_file_never_crashes_status_report_or_a_rerun(finished, tmp_path, damage):
    study_file, clean = finished
    rng = random.Random(damage)
    names = [p.relative_to(clean) for p in _files(clean) if p.suffix != ".png"]
    assert len(names) > 10
    outside_before = set(os.listdir(tmp_path))
    crashes = []
    for name in names:
        run = tmp_path / "run"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(clean, run)
        (run / name).write_bytes(DAMAGES[damage](rng))
        what = f"{damage} in {name}"
        for args in (["status", str(run)], ["report", str(run)],
                     ["run", str(study_file), "--out", str(run)]):  # fmt: skip
            if crash := _crash(runner.invoke(app, args)):
                crashes.append(f"{what}: effscale {args[0]}: {crash}")
    assert not crashes, "\n".join(crashes)
    assert set(os.listdir(tmp_path)) - outside_before <= {"run"}
