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


@pytest.mark.slow
def test_a_damaged_cache_entry_never_crashes_a_run_or_a_dry_run(tmp_path, monkeypatch):
    """The caches (counted costs, decoded folders, the speed probe) damaged entry by entry:
    each is recounted, worked out again or measured again, never a traceback."""
    from PIL import Image

    from effscale.study import estimate

    cache = tmp_path / "cache"
    monkeypatch.setenv("EFFSCALE_CACHE", str(cache))
    monkeypatch.setattr(estimate, "BUSY_SHARE", 0.0)  # cached even beside other work
    data = tmp_path / "folder"
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (data / split / c).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(data / split / c / f"{i}.jpg")
    f = tmp_path / "tiny.toml"
    f.write_text(study_toml(seeds=1, samples=64, batch_size=8).replace('"synthetic"', f'"{data}"'))
    args = ["run", str(f), "--out", str(tmp_path / "run")]
    assert runner.invoke(app, args).exit_code == 0
    entries = [p for p in cache.rglob("*") if p.is_file()]
    assert {p.relative_to(cache).parts[0] for p in entries} >= {"cost", "folders", "speed"}
    crashes = []
    for damage in sorted(DAMAGES):
        rng = random.Random(damage)
        for entry in entries:
            saved = entry.read_bytes()
            entry.write_bytes(DAMAGES[damage](rng))
            for extra in (["--dry-run"], []):
                r = runner.invoke(app, [*args, "--out", str(tmp_path / "again"), *extra])
                if crash := _crash(r):
                    crashes.append(f"{damage} in {entry.relative_to(cache)} {extra}: {crash}")
            entry.write_bytes(saved)
            shutil.rmtree(tmp_path / "again", ignore_errors=True)
    assert not crashes, "\n".join(crashes)
