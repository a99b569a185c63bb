"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every result effscale keeps (costs, checkpoints, metrics, tables, plots) is written to a
temporary file in the same directory, ``.<name>.<random>.tmp``, flushed to disk, then renamed
over the target. The writer holds an flock on the temporary file until the rename, so a later
run can tell a temporary file left by a killed writer (unlocked) from one being written now
(locked) and remove only the first kind (remove_orphans).

Files get the mode any ordinary tool would give them, 0666 less the umask (0644 under the
usual 022, group-readable), not mkstemp's private 0600: run directories are shared.
"""

import fcntl
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from effscale.errors import EffscaleError

# atomic_path's temporary names: "." + the target's name + "." + mkstemp's 8 random
# characters + ".tmp".
TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# A temporary file that is unlocked and empty may be one a writer has just created and not
# yet locked (a few microseconds): it is left alone until it is this old.
FRESH_SECONDS = 60.0


def umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore it
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it over ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # ours until the rename: remove_orphans leaves it
        os.fchmod(fd, 0o666 & ~umask())
        yield Path(tmp)
        os.fsync(fd)  # the data of every descriptor of the file, the block's writes included
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of atomic_path that a killed writer left in ``folder``.

    Only unlocked ones are removed (a live writer holds its lock), and of those only ones
    with content or older than FRESH_SECONDS (a writer locks its file right after creating
    it, before writing anything). Returns the paths removed.
    """
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if TEMP_NAME.match(e.name) and e.is_file()]
    except OSError:  # absent, or not a directory: nothing to clean
        return removed
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
            if st.st_size == 0 and time.time() - st.st_mtime < FRESH_SECONDS:
                continue
            if os.stat(entry.path).st_ino == st.st_ino:  # still the file we looked at
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # locked by its writer, or gone already
            continue
        finally:
            os.close(fd)
    return removed


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | os.PathLike, table) -> None:
    """A pandas table as CSV, atomically: floats to 6 significant digits (a float32
    multiplier reads 2.33333, not 2.3333332538604736), whole numbers exact."""

    def rounded(v):
        return v if v != v or float(v).is_integer() else float(f"{v:.6g}")  # v != v: NaN

    out = table.copy()
    for column in out.columns:
        if out[column].dtype.kind == "f":
            out[column] = out[column].map(rounded)
    write_text(path, out.to_csv(index=False))


def read_json(path: str | os.PathLike, kind: type = dict):
    """The JSON object in ``path`` and None, or None and what is wrong with the file (absent
    files give None, None). For files that may have been damaged or planted: a truncated or
    mistyped file is reported, never raised."""
    path = Path(path)
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):  # absent, or a file where a folder is
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"cannot be read ({getattr(e, 'strerror', None) or e})"
    if not text.strip():
        return None, "is empty"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"is not valid JSON ({e.msg} at line {e.lineno}; truncated?)"
    except ValueError as e:  # e.g. a number too long to convert
        return None, f"is not valid JSON ({e})"
    if not isinstance(obj, kind):
        return None, f"holds a JSON {_json_type(obj)}, not an {_json_type(kind())}"
    return obj, None


def _json_type(obj) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(obj), "number")


def writable_dir(path: str | os.PathLike, what: str = "`out`", create: bool = True) -> Path:
    """``path`` as a directory effscale can write into, created if needed (``create=False``:
    only checked, as a dry run does); else one line saying why not (a file, under a file,
    not writable)."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"lies under {probe}, which is a file"
        raise EffscaleError(f"{what} {path} {where}", "choose a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" (in {probe})"
        raise EffscaleError(f"{what} {path} is not writable{where}", "choose another directory")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        elif probe != path:  # try the first missing directory, and leave nothing behind
            first = path
            while first.parent != probe:
                first = first.parent
            first.mkdir()
            first.rmdir()
        if path.exists() and not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise EffscaleError(
            f"{what} {path} cannot be written: {e.strerror or e}", "choose another directory"
        ) from None
    return path


def cache_dir() -> Path:
    """Where derived data is cached: $EFFSCALE_CACHE, else ~/.cache/effscale."""
    root = os.environ.get("EFFSCALE_CACHE") or Path.home() / ".cache" / "effscale"
    return Path(root)
