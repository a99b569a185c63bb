"""The JSON files of one training run, read as untrusted input.

A run directory is copied between machines and shared on clusters, and a kill or a full
disk can leave any file in it damaged. train writes config.json (what the run is) first and
result.json (how it ended) last; these readers return the object, or None and a phrase
saying what is wrong with the file ("is not valid JSON (...)", "has no status"), so that
status, report and a rerun can name the file and treat the run as not finished.
"""

from pathlib import Path

from effscale import io

RESULT_STATUSES = ("done", "diverged")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def result_problem(result: dict) -> str | None:
    """What is wrong with a result.json's content, or None."""
    if "status" not in result:
        return "has no status"
    if result["status"] not in RESULT_STATUSES:
        return f"has status {result['status']!r}, not one of {', '.join(RESULT_STATUSES)}"
    for k in ("top1", "top5", "loss", "late_gain", "train_seconds", "images_per_s"):
        if result.get(k) is not None and not _is_number(result[k]):
            return f"has {k} {result[k]!r}, not a number"
    for k in ("samples", "epochs"):
        if result.get(k) is not None and not (isinstance(result[k], int) and result[k] >= 0):
            return f"has {k} {result[k]!r}, not a count"
    if result["status"] == "done" and not _is_number(result.get("top1")):
        return "says done but has no top1"
    if not isinstance(result.get("notes", []), list):
        return "has notes that are not a list"
    return None


def config_problem(config: dict) -> str | None:
    """What is wrong with a config.json's content, or None."""
    if not isinstance(config.get("identity", {}), dict):
        return "has an identity (what the run is) that is not an object"
    if not (isinstance(config.get("num_classes", 1), int) and config.get("num_classes", 1) >= 1):
        return f"has num_classes {config.get('num_classes')!r}, not a positive count"
    if not isinstance(config.get("environment", {}), dict):
        return "has an environment that is not an object"
    return None


def read_result(path: str | Path) -> tuple[dict | None, str | None]:
    """result.json: (result, None), (None, what is wrong), or (None, None) when absent."""
    obj, problem = io.read_json(path)
    if obj is not None and (problem := result_problem(obj)):
        obj = None
    return obj, problem


def read_config(path: str | Path) -> tuple[dict | None, str | None]:
    """config.json: (config, None), (None, what is wrong), or (None, None) when absent."""
    obj, problem = io.read_json(path)
    if obj is not None and (problem := config_problem(obj)):
        obj = None
    return obj, problem
