"""The name of the hardware a run used: the GPU's, or the CPU model's (not just x86_64)."""

import platform
from functools import cache


@cache
def cpu_name() -> str:
    """The CPU model, e.g. "AMD EPYC 7B13": /proc/cpuinfo's "model name" on Linux, else what
    the platform module knows (which on Linux is often only "x86_64")."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device) -> str:
    """The GPU's name for a CUDA device, the CPU model's otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_name()
