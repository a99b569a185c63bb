"""Reusing another run directory's finished points: a study that shares points with one
already run (a transfer study pre-training the Figure-7 set) takes them instead of training
them again.

A point is taken when the other directory holds it finished ("done"), its config.json names
the same variant, recipe and seed as the planned point (the key is only a name there: the
directory is untrusted input), and this directory has nothing of it yet. Its files are
copied (hard-linked where the file system allows) into a temporary folder beside the point's
and renamed into place, so a killed copy leaves no half point. Symbolic links are not
followed.
"""

import os
import shutil
import tempfile
from pathlib import Path

from effscale import io
from effscale.errors import EffscaleError
from effscale.rundir import CHECKPOINT, CONFIG, METRICS, RESULT, StudyDir
from effscale.study.plan import Point, Study

FILES = (CONFIG, METRICS, CHECKPOINT, RESULT)


def reusable(study: Study, here: str | Path, sources: list[str | Path]) -> dict[str, Path]:
    """Key -> the point directory elsewhere that a planned point can be taken from: finished
    there, the same run by its config, absent here. The first source that has it wins."""
    for source in sources:
        if not (Path(source) / "points").is_dir():
            raise EffscaleError(
                f"`reuse`={source}: not a run directory (no points/ folder)",
                "give the `out` directory of a finished study",
            )
    mine = StudyDir(here)
    sourced = {p.init_from for p in study.points if p.init_from}  # fine-tunes start there
    found: dict[str, Path] = {}
    for source in sources:
        other = StudyDir(source)
        for point in study.points:
            if point.key in found:
                continue
            if _started(mine, point.key) and not (point.key in sourced and _lacks(mine, point.key)):
                continue
            if other.state(point.key) == "done" and _same_run(other, point):
                if (other.point_dir(point.key) / CHECKPOINT).is_file() or not _started(
                    mine, point.key
                ):
                    found[point.key] = other.point_dir(point.key)
    return found


def _started(store: StudyDir, key: str) -> bool:
    path = store.point_dir(key)
    return path.exists() or path.is_symlink()


def _lacks(store: StudyDir, key: str) -> bool:
    """Finished here without its checkpoint (results are kept without them, as in docs/):
    a point fine-tuned from it takes the checkpoint from a directory that has it."""
    path = store.point_dir(key)
    return store.state(key) == "done" and not (path / CHECKPOINT).exists()


def _same_run(store: StudyDir, point: Point) -> bool:
    """Whether the other directory's config.json is this point's run (variant, recipe and
    seed; the data is named by its path there, which another machine may spell otherwise)."""
    config = store.config(point.key) or {}
    identity = config.get("identity")
    if not isinstance(identity, dict):
        return False
    return (
        identity.get("variant") == point.variant.to_dict()
        and identity.get("recipe") == point.recipe.to_dict()
        and identity.get("seed") == point.seed
        and identity.get("init_from") is None  # a fine-tune names a checkpoint elsewhere
        and point.init_from is None
    )


def take(found: dict[str, Path], here: str | Path) -> list[str]:
    """Copy each found point directory into ``here``; the keys taken."""
    points = Path(here) / "points"
    points.mkdir(parents=True, exist_ok=True)
    taken = []
    for key, source in found.items():
        target = points / key
        if target.is_dir() and not target.is_symlink() and _lacks(StudyDir(here), key):
            _checkpoint_into(source, target)  # its results are here, its weights were not
            taken.append(key)
            continue
        if target.exists() or target.is_symlink():
            continue  # another process took or started it meanwhile
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=points))
        try:
            os.chmod(tmp, 0o777 & ~io.umask())  # mkdtemp's 0700 would hide it from the group
            for name in FILES:
                f = source / name
                if f.is_file() and not f.is_symlink():
                    _link_or_copy(f, tmp / name)
            os.rename(tmp, target)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if target.exists():
                continue
            raise EffscaleError(
                f"could not copy {source} into {points}: {e.strerror or e}",
                "check the disk and the permissions of both run directories",
            ) from None
        taken.append(key)
    return taken


def _checkpoint_into(source: Path, target: Path) -> None:
    """The source point's checkpoint into ``target``, under a temporary name then renamed."""
    tmp = target / f".{CHECKPOINT}.reuse.tmp"
    try:
        _link_or_copy(source / CHECKPOINT, tmp)
        os.replace(tmp, target / CHECKPOINT)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise EffscaleError(
            f"could not copy {source / CHECKPOINT} into {target}: {e.strerror or e}",
            "check the disk and the permissions of both run directories",
        ) from None


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows (a checkpoint costs no space twice; effscale
    replaces files atomically, never writes into them), else a copy."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copyfile(source, target, follow_symlinks=False)
