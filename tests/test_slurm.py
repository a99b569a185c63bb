"""Studies on Slurm through submitit: the sbatch array it writes (a stand-in sbatch), and a
study run to completion, one point preempted and requeued, by submitit's local executor."""

import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import study_toml
from typer.testing import CliRunner

from effscale.cli import app
from effscale.study.engine import run_study
from effscale.study.files import load_study

runner = CliRunner()
TIMING = ["train_seconds", "images_per_s"]
STUDY_TOML = study_toml(seeds=1, samples="{samples}")


def _study_file(tmp_path: Path, samples: int = 512) -> Path:
    f = tmp_path / "tiny.toml"
    f.write_text(STUDY_TOML.format(samples=samples))
    return f


def _table(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(Path(run_dir) / "results.csv")
    assert df["key"].is_unique
    return df.drop(columns=TIMING).sort_values("key").reset_index(drop=True)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch, srun and sacct stand-ins on PATH: sbatch keeps the script and answers job 4242,
    sacct says element 0 runs and element 1 waits."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    scripts = {
        "sbatch": f'#!/bin/sh\ncp "$1" {bin_}/submitted.sh\necho >> {bin_}/calls\n'
        'echo "Submitted batch job 4242"\n',
        "srun": "#!/bin/sh\nexit 0\n",
        "sacct": "#!/bin/sh\nprintf 'JobID|State|NodeList\\n4242_0|RUNNING|n1\\n"
        "4242_1|PENDING|None\\n'\n",
    }
    for name, text in scripts.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    return bin_


def test_without_submitit_the_executor_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit now raises ImportError
    r = runner.invoke(
        app, ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--out", str(tmp_path)]
    )
    assert r.exit_code == 2
    error = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert error == [
        "error: --executor slurm needs submitit, which is not installed "
        '(pip install "effscale[slurm]")'
    ]


def test_without_sbatch_slurm_is_refused_in_one_line(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    args = ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--out", str(tmp_path)]
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "error: no Slurm on this machine (sbatch not found)" in r.output
    r = runner.invoke(app, [*args, "--gpus-per-point", "0.5"])
    assert r.exit_code == 2 and "Slurm grants whole GPUs" in r.output


def test_one_job_array_submitted_without_waiting_and_shown_by_status(tmp_path, fake_slurm):
    pytest.importorskip("submitit")
    out = tmp_path / "run"
    args = ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--out", str(out)]
    args += ["--partition", "gpu", "--gpus-per-point", "1", "--time", "30", "--max-parallel", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"watch them with: effscale status {out}" in " ".join(r.output.split())
    script = (fake_slurm / "submitted.sh").read_text()
    for line in (
        "#SBATCH --array=0-1%1",  # one array for the 2 points, one at a time
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --time=30",
        "#SBATCH --signal=USR2@90",  # the warning that lets a preempted point requeue
    ):
        assert line in script
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())["points"]
    assert sorted(j["job_id"] for j in jobs.values()) == ["4242_0", "4242_1"]

    st = json.loads(runner.invoke(app, ["status", str(out), "--format", "json"]).stdout)
    assert st["pending"] == 2  # nothing trained yet: the jobs only wait in the (fake) queue
    assert sorted(s["slurm_state"] for s in st["slurm"].values()) == ["PENDING", "RUNNING"]
    table = runner.invoke(app, ["status", str(out)]).stdout
    assert "4242_0" in table and "RUNNING" in table

    r = runner.invoke(app, args)  # queued points are not submitted twice
    assert r.exit_code == 0 and "2 points already queued or running" in r.output
    assert len((fake_slurm / "calls").read_text().splitlines()) == 1


@pytest.mark.slow
def test_local_submitit_study_completes_with_a_preempted_point_requeued(tmp_path):
    pytest.importorskip("submitit")
    from effscale.study.executors.slurm import SlurmExecutor

    ref = tmp_path / "reference"
    study = load_study(_study_file(tmp_path, samples=3072))
    run_study(study, ref, device="cpu")

    out = tmp_path / "run"
    ex = SlurmExecutor(out / "slurm", cluster="local", time_min=10)
    df = run_study(study, out, executor=ex, device="cpu")
    assert df.empty  # submitted and returned: nothing has finished yet
    key, job = next(iter(ex.jobs.items()))  # the smallest point, first in the array
    metrics = out / "points" / key / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline:  # one epoch in, then preempt it
        time.sleep(0.02)
    worker = Path(f"/proc/{job.job_id}/task/{job.job_id}/children").read_text().split()[0]
    os.kill(int(worker), signal.SIGUSR2)  # what Slurm sends before preempting a job
    for j in ex.jobs.values():
        assert j.result()["status"] == "done"

    assert "Requeued job" in job.stdout()
    lines = metrics.read_text().splitlines()  # resumed from its checkpoint: no epoch twice
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, len(lines) + 1))
    pd.testing.assert_frame_equal(_table(out), _table(ref))  # the jobs rebuilt results.csv
    st = json.loads(runner.invoke(app, ["status", str(out), "--format", "json"]).stdout)
    assert st["done"] == 2
    assert {s["slurm_state"] for s in st["slurm"].values()} == {"COMPLETED"}


SLURM_OPTIONS = ["--account", "lab", "--qos", "high", "--mem", "16G", "--cpus-per-point", "6"]
SLURM_OPTIONS += ["--constraint", "a100", "--setup", "module load cuda"]
SLURM_OPTIONS += ["--setup", "conda activate effscale", "--sbatch", "reservation=r1"]


def test_the_submission_carries_every_slurm_option(tmp_path, fake_slurm):
    pytest.importorskip("submitit")
    args = ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--out"]
    r = runner.invoke(app, [*args, str(tmp_path / "run"), *SLURM_OPTIONS])
    assert r.exit_code == 0, r.output
    script = (fake_slurm / "submitted.sh").read_text()
    for line in (
        "#SBATCH --account=lab",
        "#SBATCH --qos=high",
        "#SBATCH --mem=16G",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --constraint=a100",
        "#SBATCH --reservation=r1",
    ):
        assert line in script
    assert script.index("module load cuda") < script.index("conda activate effscale")
    assert script.index("conda activate effscale") < script.index("srun")


def test_a_study_files_slurm_table_is_used_and_the_options_win(tmp_path, fake_slurm):
    pytest.importorskip("submitit")
    f = tmp_path / "tiny.toml"
    table = '[slurm]\naccount = "fromfile"\npartition = "p1"\nsetup = ["module load x"]\n'
    table += 'sbatch = { reservation = "r9" }\ntime_min = 45\n'
    f.write_text(STUDY_TOML.format(samples=512).replace("[recipe]", table + "\n[recipe]"))
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(f), "--executor", "slurm", "--out", str(out), "--account",
                            "fromcli"])  # fmt: skip
    assert r.exit_code == 0, r.output
    script = (fake_slurm / "submitted.sh").read_text()
    for line in ("#SBATCH --account=fromcli", "#SBATCH --partition=p1", "#SBATCH --time=45",
                 "#SBATCH --reservation=r9", "module load x"):  # fmt: skip
        assert line in script
    r = runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "local"), "--dry-run"])
    assert r.exit_code == 0, r.output  # a local run leaves the [slurm] table alone


def test_a_slurm_dry_run_needs_no_sbatch(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    args = ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--dry-run", "--out"]
    r = runner.invoke(app, [*args, str(tmp_path / "run"), *SLURM_OPTIONS])
    assert r.exit_code == 0, r.output
    assert "Dry run, nothing trained" in r.output and not (tmp_path / "run" / "slurm").exists()


@pytest.mark.parametrize(
    "option, says",
    [(["--mem", "lots"], "not a Slurm memory size"), (["--sbatch", "r1"], "not NAME=VALUE"),
     (["--cpus-per-point", "0"], "at least 1")],
)  # fmt: skip
def test_bad_slurm_options_are_refused_in_one_line(tmp_path, option, says):
    pytest.importorskip("submitit")
    args = ["run", str(_study_file(tmp_path)), "--executor", "slurm", "--dry-run", *option]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
