"""Bad inputs through the command line: each gives one line on stderr, exit code 2, and no
traceback, and none starts training (issue 13; the README's "Reliability" lists them).

Each case builds what it needs in a fresh directory and returns the command's arguments.
"""

import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN, error_lines, study_toml
from typer.testing import CliRunner

from effscale.cli import app

runner = CliRunner()
TINY = ["--model", "resnet18", "--data", "synthetic", "--budget", "smoke"]
TINY += ["--base-width", "0.25", "--base-depth", "0.5", "--device", "cpu"]
SWEEP = ["sweep", *TINY, "--samples", "128", "--dim", "width", "--values", "1.5"]
COMPOUND = ["compound", *TINY, "--samples", "128", "--phi", "1"]
TRAIN = ["train", *TINY_TRAIN, "--samples", "64", "--device", "cpu"]
STUDY = study_toml(name="bad", seeds=None, samples=128, batch_size=None, blank_first=False)
SWEEP_TABLE = '[[sweep]]\ndim = "width"\nvalues = [1.0, 1.5]'
GARBAGE = bytes(i * 7 % 256 for i in range(256))
ROOT = os.geteuid() == 0  # root writes where permissions say no
NO_CUDA = not torch.cuda.is_available()


def study_file(t: Path, old: str = "", new: str = "", *more: tuple[str, str]) -> str:
    text = STUDY
    for a, b in [(old, new), *more]:
        text = text.replace(a, b, 1)
    f = t / "bad.toml"
    f.write_text(text)
    return str(f)


def a_file(t: Path, content: bytes = b"x") -> Path:
    f = t / "a-file"
    f.write_bytes(content)
    return f


def read_only_dir(t: Path) -> Path:
    d = t / "read-only"
    d.mkdir()
    d.chmod(0o500)
    return d


def run_dir_read_only(t: Path) -> Path:
    from effscale.recipe import budget
    from effscale.rundir import StudyDir
    from effscale.study.plan import Base, Study, plan_sweep

    study = Study("tiny", {"kind": "test"})
    study.add_all(
        plan_sweep(Base("resnet18", 32), "width", [1.0], [0], budget("smoke"), "synthetic")
    )
    StudyDir(t / "run").save_study(study)
    (t / "run").chmod(0o500)
    return t / "run"


def weights(t: Path, obj=None, raw: bytes | None = None) -> str:
    f = t / "weights.pt"
    if raw is not None:
        f.write_bytes(raw)
    elif isinstance(obj, tuple):  # a plain pickle, not a torch.save archive
        with open(f, "wb") as fh:
            pickle.dump(list(obj), fh)
    else:
        torch.save(obj, f)
    return str(f)


OUT = lambda t: ["--out", str(t / "out")]  # noqa: E731

CASES = {
    # 1. a dry run refuses what the run would (issue 33: these printed a plan and exit 0)
    **{
        f"train --dry-run {' '.join(args)}": (
            lambda t, args=args: [*TRAIN, *args, "--dry-run", *OUT(t)],
            says,
        )
        for args, says in (
            (["--lr", "0"], "lr must be positive, got 0"),
            (["--lr", "nan"], "lr must be positive, got nan"),
            (["--batch-size", "0"], "batch size must be at least 1, got 0"),
            (["--seed", "-1"], "--seed must be 0 or more, got -1"),
            (["--from", "/nonexistent.pt"], "no weights file at /nonexistent.pt"),
        )
    },
    **{
        f"{' '.join(args)}": (lambda t, args=args: list(args), "--threads")
        for args in (
            ("speed", "--threads", "0"),
            ("speed", "--threads", "-1"),
            ("speed", "--threads", "100000"),
            ("latency", "mobilenet-v2", "--threads", "0"),
            (*SWEEP, "--threads", "0"),
        )
    },
    "a study file with a negative weight decay": (
        lambda t: ["run", study_file(t, "[recipe]", "[recipe]\nweight_decay = -0.1"), "--dry-run"],
        "weight_decay must be 0 or more, got -0.1",
    ),
    # 2. the plan is refused before any point starts, with train's messages
    "sweep --lr -1": (lambda t: [*SWEEP, "--lr", "-1", *OUT(t)], "lr must be positive, got -1"),
    "sweep --batch-size 0": (
        lambda t: [*SWEEP, "--batch-size", "0", *OUT(t)],
        "batch size must be at least 1, got 0",
    ),
    "sweep --epochs 0": (
        lambda t: ["sweep", *TINY, "--epochs", "0", "--dim", "width", "--values", "2", *OUT(t)],
        "--epochs must be a positive number, got 0",
    ),
    "sweep --seeds 0": (lambda t: [*SWEEP, "--seeds", "0", *OUT(t)], "--seeds must be at least 1"),
    "sweep --workers 0": (
        lambda t: [*SWEEP, "--workers", "0", *OUT(t)],
        "--workers must be at least 1, got 0",
    ),
    "compound --lr -1": (lambda t: [*COMPOUND, "--lr", "-1", *OUT(t)], "lr must be positive"),
    "compound --batch-size 0": (
        lambda t: [*COMPOUND, "--batch-size", "0", *OUT(t)],
        "batch size must be at least 1",
    ),
    "compound --seeds 0": (lambda t: [*COMPOUND, "--seeds", "0", *OUT(t)], "--seeds must be"),
    "compound --workers 0": (lambda t: [*COMPOUND, "--workers", "0", *OUT(t)], "--workers must"),
    "run [recipe] lr = -1": (
        lambda t: ["run", study_file(t, "samples = 128", "samples = 128\nlr = -1"), *OUT(t)],
        "bad.toml: [recipe] lr must be positive, got -1",
    ),
    "run --seeds 0": (
        lambda t: ["run", study_file(t), "--seeds", "0", *OUT(t)],
        "seeds must be a positive count",
    ),
    "run --workers 0": (
        lambda t: ["run", study_file(t), "--workers", "0", *OUT(t)],
        "--workers must be at least 1",
    ),
    # 3. --out that is a file, lies under a file, or cannot be written
    "sweep --out FILE": (lambda t: [*SWEEP, "--out", str(a_file(t))], "a-file is a file"),
    "compound --out FILE": (lambda t: [*COMPOUND, "--out", str(a_file(t))], "a-file is a file"),
    "run --out FILE": (lambda t: ["run", study_file(t), "--out", str(a_file(t))], "is a file"),
    "train --out FILE": (lambda t: [*TRAIN, "--out", str(a_file(t))], "a-file is a file"),
    "sweep --out FILE/x": (
        lambda t: [*SWEEP, "--out", str(a_file(t) / "x")],
        "lies under",
    ),
    "run --out FILE/x": (
        lambda t: ["run", study_file(t), "--out", str(a_file(t) / "x" / "y")],
        "a-file, which is a file",
    ),
    "train --out FILE/x": (lambda t: [*TRAIN, "--out", str(a_file(t) / "x")], "lies under"),
    "sweep --out /sys/...": (lambda t: [*SWEEP, "--out", "/sys/effscale-test"], "/sys/effscale"),
    "train --out /sys/...": (lambda t: [*TRAIN, "--out", "/sys/effscale-test"], "/sys/effscale"),
    "compound --out read-only": (
        lambda t: [*COMPOUND, "--out", str(read_only_dir(t) / "x")],
        "is not writable",
    ),
    "report FILE": (lambda t: ["report", str(a_file(t))], "not a study run directory"),
    "report read-only": (lambda t: ["report", str(run_dir_read_only(t))], "is not writable"),
    # 3. overflowing or absurd phi, variants too large to build: refused with the size
    "compound --phi 1..100000": (  # a range of 100,000 values: refused before it is listed
        lambda t: ["compound", "--phi", "1..100000", "--cost-only"],
        "100,000 values",
    ),
    "cost --phi 10000": (lambda t: ["cost", "resnet50", "--phi", "10000"], "phi=10000 overflows"),
    "compound --phi 1..60": (
        lambda t: ["compound", "--phi", "1..60", "--cost-only"],
        "would need about",
    ),
    "cost --resolution 30000": (
        lambda t: ["cost", "resnet50", "--resolution", "30000"],
        "30000px) would need about 2.2 TiB",
    ),
    "cost --width 300": (lambda t: ["cost", "resnet50", "--width", "300"], "would need about"),
    "cost --depth 1e6": (lambda t: ["cost", "resnet50", "--depth", "1e6"], "TiB to build"),
    "train --width 300": (
        lambda t: [*TRAIN[:3], "300", *TRAIN[4:], *OUT(t)],
        "would need about",
    ),
    "sweep --values 3000": (lambda t: [*SWEEP[:-1], "3000", *OUT(t)], "would need about"),
    # 3. study files with tables or values of the wrong shape
    "[[sweep]] without dim": (
        lambda t: ["run", study_file(t, 'dim = "width"\n'), *OUT(t)],
        "a [[sweep]] table needs 'dim'",
    ),
    'values = ["big"]': (
        lambda t: ["run", study_file(t, "values = [1.0, 1.5]", 'values = ["big"]'), *OUT(t)],
        ":13: 'values' must hold numbers, got 'big'",
    ),
    'phi = ["one"]': (
        lambda t: [
            "run",
            study_file(
                t, '[[sweep]]\ndim = "width"\nvalues = [1.0, 1.5]', '[[compound]]\nphi = ["one"]'
            ),
            *OUT(t),
        ],
        "'phi' must hold numbers, got 'one'",
    ),
    "sweep = [1, 2]": (
        lambda t: [
            "run",
            study_file(t, SWEEP_TABLE, "", ("base_width", "sweep = [1, 2]\nbase_width")),
            *OUT(t),
        ],
        "'sweep' must be a list of [[sweep]] tables, got [1, 2]",
    ),
    "study file not UTF-8": (
        lambda t: ["run", str(a_file(t, b"\xff\xfe name = 1")), *OUT(t)],
        "not a text file",
    ),
    # 3. --from a file that is not weights: say what it is
    "--from a pickled list": (
        lambda t: [*TRAIN, "--from", weights(t, (1, 2)), *OUT(t)],
        "it is not a file of tensors and plain data",
    ),
    "--from a saved list": (
        lambda t: [*TRAIN, "--from", weights(t, [torch.zeros(1)]), *OUT(t)],
        "holds a list, not a checkpoint or a state dict",
    ),
    "--from garbage": (
        lambda t: [*TRAIN, "--from", weights(t, raw=GARBAGE), *OUT(t)],
        "it is not a file torch.save wrote",
    ),
    "--from an empty file": (
        lambda t: [*TRAIN, "--from", weights(t, raw=b""), *OUT(t)],
        "weights.pt is empty, not weights",
    ),
    "--from a text file": (
        lambda t: [*TRAIN, "--from", weights(t, raw=b"hello world\n"), *OUT(t)],
        "it is not a file torch.save wrote",
    ),
}


def loop_folder(t: Path) -> str:
    """An ImageFolder whose class folder holds a link back to its split: os.walk looped."""
    from PIL import Image

    for split in ("train", "val"):
        (t / "loop" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(t / "loop" / split / "cat" / "a.jpg")
    (t / "loop" / "train" / "cat" / "back").symlink_to("..")
    return str(t / "loop")


def search_dir(t: Path, chosen) -> str:
    import json

    (t / "search").mkdir()
    (t / "search" / "search.json").write_text(json.dumps({"chosen": chosen}))
    return str(t / "search")


def checkpoint_dir(t: Path, change: dict) -> str:
    """A trained point's directory whose checkpoint has ``change`` applied."""
    run = t / "run"
    r = runner.invoke(app, [*TRAIN, "--samples", "32", "--out", str(run)])
    assert r.exit_code == 0, r.output
    blob = torch.load(run / "checkpoint.pt", weights_only=True)
    blob.update(change)
    if "fc.weight" in change:
        blob["ema"], blob["model"] = None, {**blob["model"], "fc.weight": change["fc.weight"]}
    torch.save(blob, run / "checkpoint.pt")
    return str(run)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# Issue 33, second pass: huge numbers, hangs, damaged files, refused checkpoints.
CASES |= {
    **{
        " ".join(args): (lambda t, args=args: list(args), says)
        for args, says in (
            (["cost", "efficientnet-b0", "--width", "1e308"], "width 1e+308 is beyond"),
            (["cost", "efficientnet-b0", "--depth", "inf"], "depth must be a positive number"),
            (["cost", "efficientnet-b0", "--num-classes", "1000000000"], "num_classes 1,000,"),
            (["cost", "efficientnet-b0", "--num-classes", "0"], "num_classes must be at least 1"),
            (["cost", "efficientnet-b0", "--base-resolution", "0"], "--base-resolution"),
            (["train", *TINY_TRAIN, "--epochs", "1e308", "--dry-run"], "--epochs 1e+308 is beyond"),
            (["train", *TINY_TRAIN, "--samples", "1e308", "--dry-run"], "budget 1e+308 is beyond"),
            (["train", "resnet18", "--data", "synthetic:100000000", "--dry-run"], "100,000,000"),
            ([*SWEEP, "--values", "1e308", "--dry-run"], "width 1e+308 is beyond"),
            ([*SWEEP, "--seeds", "1000000000", "--dry-run"], "1,000,000,000 values"),
            ([*COMPOUND, "--beta", "1e308", "--dry-run"], "width 1e+308 is beyond"),
            (["latency", "mobilenet-v2", "--batch", "1000000000"], "at most 4,096"),
        )
    },
    # hangs: each refused before anything is enumerated or walked
    "sweep --values 0..1000000000": (
        lambda t: [*SWEEP, "--values", "0..1000000000", "--dry-run", *OUT(t)],
        "1,000,000,001 values",
    ),
    "compound --phi 0..100000000 --cost-only": (
        lambda t: ["compound", "--phi", "0..100000000", "--cost-only"],
        "100,000,001 values",
    ),
    "study file with a billion seeds": (
        lambda t: [
            "run",
            study_file(t, 'name = "bad"', 'name = "bad"\nseeds = 1000000000'),
            "--dry-run",
            *OUT(t),
        ],  # fmt: skip
        "1,000,000,000 values",
    ),
    "search --max 1e9": (
        lambda t: ["search", *TINY, "--max", "1e9", "--dry-run", *OUT(t)],
        "more than effscale",
    ),
    "search --step 1e-9": (
        lambda t: ["search", *TINY, "--step", "1e-9", "--dry-run", *OUT(t)],
        "more than effscale",
    ),
    "study file base_resolution = 0": (
        lambda t: [
            "run",
            study_file(t, 'name = "bad"', 'name = "bad"\nbase_resolution = 0'),
            "--dry-run",
            *OUT(t),
        ],  # fmt: skip
        "base resolution must be positive, got 0",
    ),
    "--data on a folder with a symlink loop": (
        lambda t: ["train", "resnet18", "--data", loop_folder(t), "--dry-run", *OUT(t)],
        "a symbolic link to a folder already listed",
    ),
    # damaged files
    **{
        f"compound --from-search, chosen {chosen!r}": (
            lambda t, chosen=chosen: [
                "compound",
                "--from-search",
                search_dir(t, chosen),
                "--phi",
                "1",
                "--cost-only",
            ],  # fmt: skip
            says,
        )
        for chosen, says in (
            ("yes", "chosen coefficients are damaged"),
            ({"alpha": "x", "beta": 1.1, "gamma": 1.15}, "chosen coefficients are damaged"),
            ({"alpha": 1.2}, "chosen coefficients are damaged"),
        )
    },
    **{
        f"cam on a checkpoint with {what}": (
            lambda t, change=change: [
                "cam",
                checkpoint_dir(t, change),
                "--data",
                "synthetic",
                "--count",
                "2",
                "--out",
                str(t / "cam.png"),
            ],  # fmt: skip
            says,
        )
        for what, change, says in (
            ("classes 5", {"classes": 5}, "class names do not match"),
            ("a string classifier", {"fc.weight": "w"}, "no classifier weights"),
            ("a damaged variant", {"variant": {"model": 3}}, "variant it records cannot be read"),
        )
    },
    "cam on a checkpoint weights_only refuses": (
        lambda t: ["cam", weights(t, {"model": Evil()}), "--data", "synthetic"],
        "anything else is refused: unpickling it could run code",
    ),
}

NEEDS = {  # cases that cannot be staged everywhere
    "compound --out read-only": (ROOT, "root writes into read-only directories"),
    "report read-only": (ROOT, "root writes into read-only directories"),
    "sweep --out /sys/...": (not Path("/sys").is_dir(), "no /sys here"),
    "train --out /sys/...": (not Path("/sys").is_dir(), "no /sys here"),
}
if NO_CUDA:
    for cmd in (SWEEP, COMPOUND):
        CASES[f"{cmd[0]} --device cuda"] = (
            lambda t, cmd=cmd: [*(a if a != "cpu" else "cuda" for a in cmd), *OUT(t)],
            "--device cuda was asked for but no CUDA device is visible",
        )


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_no_traceback(case, tmp_path):
    skip, why = NEEDS.get(case, (False, ""))
    if skip:
        pytest.skip(why)
    make_args, says = CASES[case]
    r = runner.invoke(app, [str(a) for a in make_args(tmp_path)])
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert says in lines[0], lines[0]
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not list(tmp_path.glob("**/points/*/config.json"))  # nothing started training


def test_a_cost_cache_entry_that_is_a_directory_is_recounted(tmp_path, monkeypatch):
    from effscale.cost import _cache_key, count_cost
    from effscale.scaling import make_variant
    from effscale.zoo import resolve_spec

    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    v = make_variant("resnet18", w=0.37, base_resolution=64)
    expected = count_cost(v, cache=False)
    spec = resolve_spec(v).to_dict()
    for k in ("name", "reference", "dropout", "drop_path"):
        spec.pop(k)
    (tmp_path / "cost" / f"{_cache_key(spec, v.resolution, 1000)}.json").mkdir(parents=True)
    assert count_cost(v) == expected
    r = runner.invoke(app, ["cost", "resnet18", "--width", "0.37", "--base-resolution", "64"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("entry", ['{"flops": "many", "params": 1, "activations": 1}', "[]"])
def test_a_damaged_cost_cache_entry_is_recounted(tmp_path, monkeypatch, entry):
    from effscale.cost import count_cost
    from effscale.scaling import make_variant

    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path))
    v = make_variant("resnet18", w=0.37, base_resolution=64)
    expected = count_cost(v)
    for f in (tmp_path / "cost").iterdir():
        f.write_text(entry)
    assert count_cost(v) == expected


def test_a_cost_cache_root_that_is_a_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("EFFSCALE_CACHE", str(a_file(tmp_path)))
    r = runner.invoke(app, ["cost", "resnet18", "--width", "0.41", "--base-resolution", "64"])
    assert r.exit_code == 2, r.output
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"cannot write the cost cache at {tmp_path}/a-file/cost" in lines[0]


@pytest.mark.parametrize(
    "meta",
    [
        '{"own": "32"}',
        "[1, 2]",
        '{"own": 32, "stream_stats_32": {"mean": "x", "std": [1], "sample": 1, "bad": []}}',
    ],
)
def test_a_folder_cache_with_wrong_field_types_is_worked_out_again(tmp_path, monkeypatch, meta):
    from PIL import Image

    from effscale.data import load_dataset

    monkeypatch.setenv("EFFSCALE_CACHE", str(tmp_path / "cache"))
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "tree" / split / c).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (32, 32), (40 * i, 80, 120)).save(
                    tmp_path / "tree" / split / c / f"{i}.png"
                )
    first = load_dataset(str(tmp_path / "tree"))
    for f in (tmp_path / "cache" / "folders").glob("*.json"):
        f.write_text(meta)
    for stream in (None, True):
        again = load_dataset(str(tmp_path / "tree"), stream=stream)
        assert again.resolution == first.resolution and len(again.train_labels) == 4
