"""One report from several run directories: the same study run on two machines, or a width
sweep and a compound scaling run on different days (`effscale report DIR1 DIR2 --out DIR`).

Their points must be trained alike (backbone, base design, data and recipe but for the
budget): a mixture would compare unlike runs, and is refused in one line. The combined
directory gets a plan holding every point (roles merged by key, as a study's own points are)
and a copy of each finished point's small files (config, metrics, result; not its
checkpoint), so `report` and `plot` read it as any run directory.
"""

from pathlib import Path

from effscale import io
from effscale.errors import EffscaleError
from effscale.rundir import CONFIG, METRICS, RESULT, StudyDir
from effscale.study.plan import Point, Study, recipe_identity


def trained_alike(point: Point) -> tuple:
    """What two points compared in one report must share."""
    v = point.variant
    recipe = recipe_identity(point.recipe)
    return (v.backbone, v.base_width, v.base_depth, v.base_resolution, v.small_input,
            point.data, tuple(sorted(recipe.items())))  # fmt: skip


def combine_runs(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Write the combined run directory ``out`` of ``run_dirs``; its path."""
    if len({Path(d).resolve() for d in run_dirs}) < len(run_dirs):
        raise EffscaleError("a run directory is named twice", "name each once")
    stores = [StudyDir(d) for d in run_dirs]
    studies = [s.load_study() for s in stores]
    first = None
    for store, study in zip(stores, studies):
        for p in study.points:
            alike = trained_alike(p)
            if first is None:
                first = (store.path, alike)
            elif alike != first[1]:
                what = [n for n, a, b in zip(_NAMES, alike, first[1]) if a != b]
                raise EffscaleError(
                    f"{store.path} holds points trained otherwise than {first[0]} "
                    f"({', '.join(what)} differ): one report compares like with like",
                    "report them separately",
                )
    combined = Study("combined", {"kind": "combined", "runs": [str(s.path) for s in stores]})
    for study in studies:
        combined.add_all(study.points)
    target = StudyDir(io.writable_dir(out, what="`out`"))
    for p in combined.points:
        source = next((s for s in stores if s.finished_result(p.key) is not None), None)
        if source is not None:
            _copy_point(source.point_dir(p.key), target.point_dir(p.key))
    target.save_study(combined)
    return target.path


_NAMES = ("backbone", "base width", "base depth", "base resolution", "stem", "data", "recipe")


def _copy_point(source: Path, target: Path) -> None:
    """A finished point's small files, copied whole (each written atomically, the result
    last, so a killed copy leaves a point that counts as not finished)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, METRICS, RESULT):
        f = source / name
        if f.is_file() and not f.is_symlink():
            io.write_text(target / name, f.read_text(errors="replace"))
