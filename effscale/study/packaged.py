"""The studies that ship with effscale (effscale/studies/*.toml, package data): found by
name (effscale.study.files.describe_studies lists them)."""

from pathlib import Path

from effscale.errors import EffscaleError


def packaged_studies() -> dict[str, Path]:
    """The packaged study files by name (the file's stem): quick, figure3, cifar10 ..."""
    from importlib.resources import files

    root = Path(str(files("effscale") / "studies"))
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def find_study(name_or_path: str | Path) -> Path:
    """A study file: a path that exists, else ``studies/NAME.toml`` in the working directory,
    else the packaged study of that name (so ``effscale run quick`` works anywhere)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name.removesuffix(".toml")
    local = Path("studies") / f"{stem}.toml"
    if local.is_file():
        return local
    packaged = packaged_studies()
    if stem in packaged and path.parent in (Path("."), Path("studies")):
        return packaged[stem]
    raise EffscaleError(
        f"no study file at {path}",
        f"give a path, or the name of a packaged study: {', '.join(packaged)} "
        "(see `effscale studies`)",
    )
