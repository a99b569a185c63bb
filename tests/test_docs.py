"""The README stays true as the manual's first page (issue 32): every `effscale` command it
shows runs (cheap ones for real, training ones with --dry-run, ones that need a run directory
or data that a reader makes first by parsing alone), its "My model and my data" network
registers through the entry point it shows, every relative link and image of the README and the
docs pages points at something that exists, and its first screen sets effscale up."""

import re
import shlex
import sys
from pathlib import Path

import pytest
import tomllib
import typer
from typer.testing import CliRunner

from effscale.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("docs/results/*.md"))]
runner = CliRunner()

TRAINS = {"train", "sweep", "compound", "search", "run"}  # run for real with --dry-run
READS = {"models", "cost", "table", "studies", "status"}  # quick, and write nothing
DATA = {"embedded", "synthetic", "cifar10", "cifar100"}  # --data specs that are not paths
# Plans that count many variants (tens of seconds on a busy 2-core machine): make test-slow.
SLOW = ("--match-single --dry-run", "resnet50 --dim width")


# ---------------------------------------------------------------------------------------
# Reading the Markdown
# ---------------------------------------------------------------------------------------


def fenced(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang blocks of a Markdown text."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def section(text: str, heading: str) -> str:
    """The body of the "## heading" section."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def readme_commands() -> list[list[str]]:
    """Every effscale command line of the README's bash blocks, as the shell splits it
    (continuations joined, comments dropped), without the leading `effscale`."""
    commands = []
    for block in fenced(README.read_text(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name == "effscale":
                commands.append(words[1:])
    return commands


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    """Relative link and image targets of a page, outside code blocks and code spans."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    text = re.sub(r"`[^`]*`", "", text)
    found = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    return [t for t in found if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # no http:, mailto:


# ---------------------------------------------------------------------------------------
# Links and the first screen
# ---------------------------------------------------------------------------------------


def test_the_readme_links_to_the_manual_pages():
    """The pages this test reads are the ones the README's table of contents names."""
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"docs/guide.md", "docs/results.md", "docs/reliability.md"} <= names
    assert {"docs/performance.md", "docs/development.md"} <= names
    assert {"docs/guide.md", "docs/results.md"} <= {t.split("#")[0] for t in links(README)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_image_points_at_something_that_exists(page):
    """Files and folders exist; an anchor into a Markdown page names one of its headings."""
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_the_first_screen_sets_up_and_starts_the_tour():
    """`make demo` and `make test` in the first 40 lines, and the tour's first command too."""
    first = README.read_text().splitlines()[:40]
    assert any(ln.startswith("make demo") for ln in first)
    assert any(ln.startswith("make test") for ln in first)
    assert any(ln.startswith(".venv/bin/effscale ") for ln in first)


def test_the_readme_stays_a_first_page():
    """Roughly 200 lines at most; the rest of the manual lives under docs/."""
    assert len(README.read_text().splitlines()) <= 220


# ---------------------------------------------------------------------------------------
# The README's commands
# ---------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A reader's directory after the README's quickstart: `mynets` installed (its module
    and the entry point the README's pyproject.toml declares, as `pip install -e` leaves
    them), an image folder `my_images`, and the checkout's docs/ to read stored studies."""
    from effscale.zoo import registry

    readme = README.read_text()
    quickstart = section(readme, "My model and my data")
    project = tmp_path / "myproject"
    install_entry_points(project, fenced(quickstart, "python")[0], fenced(quickstart, "toml")[0])
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setattr(registry, "_BACKBONES", dict(registry._BACKBONES))
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    image_folder(tmp_path / "my_images", ["cat", "dog"])
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("mynets", None)


def install_entry_points(project: Path, module: str, pyproject: str) -> None:
    """What `pip install -e project` leaves on sys.path: the module and its dist-info."""
    spec = tomllib.loads(pyproject)
    name, version = spec["project"]["name"], spec["project"]["version"]
    project.mkdir()
    (project / f"{spec['tool']['setuptools']['py-modules'][0]}.py").write_text(module)
    info = project / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = spec["project"]["entry-points"].items()
    lines = [f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups]
    (info / "entry_points.txt").write_text("".join(lines))


def image_folder(root: Path, classes: list[str], size: int = 32) -> None:
    """An ImageFolder tree of plain-colour PNGs: 8 training and 2 test images a class."""
    from PIL import Image

    for split, n in (("train", 8), ("test", 2)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                colour = (60 + 120 * c, 40 + 10 * i, 200 - 120 * c)
                Image.new("RGB", (size, size), colour).save(root / split / name / f"{i}.png")


def placeholders(args: list[str]) -> list[str]:
    """Arguments a reader replaces or makes first: UPPER-CASE words, shell variables, `timm:`
    models without timm, and paths or --data that do not exist (here, --out aside)."""
    found = []
    for i, a in enumerate(args):
        before = args[i - 1] if i else ""
        if re.fullmatch(r"[A-Z][A-Z_]*(\.\.\.)?", a) or "$" in a:
            found.append(a)
        elif a.startswith("timm:") and not _has("timm"):
            found.append(a)
        elif before == "--data" and a not in DATA and not Path(a).exists():
            found.append(a)
        elif "/" in a and before != "--out" and not a.startswith("-") and not Path(a).exists():
            found.append(a)
    return found


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def how_checked(args: list[str]) -> str:
    """How a command is checked: "run" (training ones with --dry-run) or "parse"."""
    if placeholders(args) or args[0] not in TRAINS | READS:
        return "parse"
    return "run"


def parses(args: list[str]) -> None:
    """The subcommand exists, has --help, and takes these options and values."""
    r = runner.invoke(app, [args[0], "--help"])
    assert r.exit_code == 0, r.output
    group = typer.main.get_command(app)
    command = group.get_command(group.make_context("effscale", [args[0]]), args[0])
    command.make_context(args[0], list(args[1:]))  # raises a UsageError on a bad option


def command_params() -> list:
    """Each README command as a test case; the ones that count many variants are slow."""
    params = []
    for args in readme_commands():
        line = " ".join(args)
        marks = [pytest.mark.slow] if any(s in line for s in SLOW) else []
        params.append(pytest.param(args, marks=marks, id=line))
    return params


def test_the_readme_shows_commands_of_every_kind():
    """The parametrised test below has something to check in each way."""
    commands = readme_commands()
    assert len(commands) >= 10
    assert {how_checked(args) for args in commands} == {"run", "parse"}


@pytest.fixture
def fixed_speed(monkeypatch):
    """No speed probe: a dry run's estimate divides by a fixed speed."""
    from effscale.study import estimate

    speed = estimate.Speed(1e9, "cpu", "test CPU", 1, "fixed for the tests")
    monkeypatch.setattr(estimate, "measure_speed", lambda *a, **k: speed)


@pytest.mark.parametrize("args", command_params())
def test_every_readme_command_runs(args, workdir, fixed_speed):
    """Cheap commands run as written, training ones with --dry-run (writing nothing), and
    ones with placeholders parse; every one exits 0."""
    parses(args)
    if how_checked(args) == "parse":
        return
    if args[0] in TRAINS and not {"--dry-run", "--cost-only"} & set(args):
        args = [*args, "--dry-run"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    if args[0] in TRAINS:
        assert not (workdir / "runs").exists()  # a dry run trains and writes nothing


def test_the_quickstart_network_is_registered_through_its_entry_point(workdir):
    """The README's module and pyproject.toml make `tiny-cnn` a backbone of the command."""
    r = runner.invoke(app, ["models", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert "tiny-cnn" in r.stdout
