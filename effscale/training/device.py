"""The device a run trains on, and the environment recorded beside its results."""

import platform

import torch

import effscale
from effscale.errors import EffscaleError
from effscale.hardware import device_name


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EffscaleError(
            "`device`=cuda was asked for but no CUDA device is visible", "use `device`=cpu or auto"
        )
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise EffscaleError(f"unknown device {name!r}", "use cpu, cuda, cuda:N or auto")
    return torch.device(name)


def environment(device: torch.device) -> dict:
    """Evidence that travels with results: versions and hardware (the GPU's name, or the
    CPU model's, with the machine's architecture beside it)."""
    return {
        "effscale": effscale.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "hardware": device_name(device),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }
