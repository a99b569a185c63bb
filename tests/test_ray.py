"""Studies through Ray: a real local Ray on loopback (2 CPUs), killed workers, a killed driver."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import study_toml
from typer.testing import CliRunner

from effscale.cli import app
from effscale.rundir import StudyDir
from effscale.study.engine import run_study
from effscale.study.executors import Executor
from effscale.study.files import load_study

runner = CliRunner()
TIMING = ["train_seconds", "images_per_s"]
STUDY_TOML = study_toml()


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("study") / "tiny.toml"
    f.write_text(STUDY_TOML)
    return f


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    """The study's results table from an uninterrupted run in this process."""
    out = tmp_path_factory.mktemp("reference")
    run_study(load_study(study_file), out, device="cpu")
    return _table(out)


@pytest.fixture(scope="module")
def ray_installed():
    pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray(ray_installed):
    """One local Ray for the module's in-process tests (each executor joins it)."""
    from effscale.study.executors.ray import RayExecutor

    ex = RayExecutor(num_cpus=2)
    ray = ex.connect()
    yield ray
    ex.close()


def _table(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(Path(run_dir) / "results.csv")
    assert df["key"].is_unique
    return df.drop(columns=TIMING).sort_values("key").reset_index(drop=True)


class Recording(Executor):
    """Wraps an executor and keeps the events the driver received."""

    def __init__(self, inner):
        self.inner, self.seen = inner, []

    def run(self, tasks, events):
        def record(kind, key, payload):
            self.seen.append((kind, key))
            events(kind, key, payload)

        self.inner.run(tasks, record)


def _kill_a_worker_when_training(run_dir: Path, study, killed: list, timeout: float = 120):
    """SIGKILL one Ray worker process as soon as some point is being trained.

    A point trains once its config.json is written and until its result.json is (its lock is
    not probed here: a probe at the moment a task takes the lock would make it skip the point).
    """
    points = [Path(run_dir) / "points" / p.key for p in study.points]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any((d / "config.json").exists() and not (d / "result.json").exists() for d in points):
            pids = [pid for pid, cmd in _processes() if cmd.startswith(b"ray::_train_point")]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.01)


def _processes():
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                yield int(d.name), (d / "cmdline").read_bytes()
            except OSError:
                pass


# -- without Ray --------------------------------------------------------------------------


def test_without_ray_the_executor_says_what_to_install(study_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    r = runner.invoke(app, ["run", str(study_file), "--executor", "ray", "--out", str(tmp_path)])
    assert r.exit_code == 2
    error = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert error == [
        'error: --executor ray needs Ray, which is not installed (pip install "effscale[ray]")'
    ]
    assert "Traceback" not in r.output


def test_options_of_another_executor_are_refused(study_file, tmp_path):
    r = runner.invoke(app, ["run", str(study_file), "--partition", "gpu", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "--partition does not apply to --executor local (it is for --executor slurm)" in r.output


# -- a local Ray --------------------------------------------------------------------------


def test_smoke_study_through_local_ray_equals_an_in_process_run(
    local_ray, study_file, reference, tmp_path
):
    from effscale.study.executors.ray import RayExecutor

    study = load_study(study_file)
    ex = Recording(RayExecutor())
    df = run_study(study, tmp_path, executor=ex, device="cpu")
    assert len(df) == 4 and (df["status"] == "done").all()
    pd.testing.assert_frame_equal(_table(tmp_path), reference)
    for p in study.points:  # the driver heard each point start, train and finish
        kinds = [kind for kind, key in ex.seen if key == p.key]
        assert kinds[0] == "start" and "progress" in kinds and kinds[-1] == "done"
    assert local_ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")


def _run_killing_a_worker(study_file, tmp_path, executor):
    """Run the study with ``executor`` while a thread kills a worker that is training."""
    study, killed = load_study(study_file), []
    killer = threading.Thread(target=_kill_a_worker_when_training, args=(tmp_path, study, killed))
    killer.start()
    df = run_study(study, tmp_path, executor=executor, device="cpu")
    killer.join()
    return study, killed, df


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_every_point_lands_once(
    local_ray, study_file, reference, tmp_path
):
    from effscale.study.executors.ray import RayExecutor

    study, killed, df = _run_killing_a_worker(study_file, tmp_path, RayExecutor())
    assert killed, "no worker was seen training"
    assert len(df) == 4 and (df["status"] == "done").all()
    pd.testing.assert_frame_equal(_table(tmp_path), reference)
    for p in study.points:  # a retried point resumed: no epoch logged twice
        lines = (tmp_path / "points" / p.key / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["epoch"] for x in lines] == list(range(1, len(lines) + 1))


@pytest.mark.slow
def test_a_point_whose_worker_keeps_dying_is_failed_with_its_error_not_lost(
    local_ray, study_file, reference, tmp_path
):
    from effscale.study.executors.ray import RayExecutor

    ex = Recording(RayExecutor(max_retries=0))  # no retry: the first death is the last
    study, killed, df = _run_killing_a_worker(study_file, tmp_path, ex)
    assert killed and len(df) == 3
    [lost] = [key for kind, key in ex.seen if kind == "failed"]
    assert StudyDir(tmp_path).status()["states"][lost] == "failed"
    error = json.loads((tmp_path / "points" / lost / "error.json").read_text())["error"]
    assert "Ray worker was lost" in error and "rerun resumes it" in error
    run_study(study, tmp_path, executor=RayExecutor(), device="cpu")
    pd.testing.assert_frame_equal(_table(tmp_path), reference)


@pytest.mark.slow
def test_driver_sigkill_midway_then_rerun_equals_an_uninterrupted_run(
    ray_installed, study_file, reference, tmp_path
):
    cut = tmp_path / "cut"
    args = ["run", str(study_file), "--executor", "ray", "--device", "cpu", "--out", str(cut)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "effscale", *args]
    proc = subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(cut.glob("points/*/result.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in cut.glob("points/*/result.json")}
    assert 1 <= len(finished) < 4
    store, study = StudyDir(cut), load_study(study_file)
    deadline = time.time() + 30  # the local Ray dies with its driver; wait for its workers
    while any(store.state(p.key) == "running" for p in study.points) and time.time() < deadline:
        time.sleep(0.1)
    rerun = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for key, mtime in finished.items():  # no finished point was trained again
        assert (cut / "points" / key / "result.json").stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(_table(cut), reference)
