"""The largest numbers effscale accepts, checked before anything is built, allocated or
enumerated: a typo such as --width 1e308 or --values 0..1000000000 is one line and exit 2,
not an overflow, an allocator's traceback or an hour-long hang.

Each limit is far beyond any study effscale can run (the footprint check, zoo.footprint,
refuses networks too large for the machine well below them); they only catch numbers that
cannot be meant.
"""

import math

from effscale.errors import EffscaleError

MAX_MULTIPLIER = 1e9  # d, w, r and the base design's (B7: d 3.1); the footprint check
#                      refuses far smaller ones with the memory they would need
MAX_RESOLUTION = 10**7  # px; the footprint check refuses far smaller ones too
MAX_CLASSES = 1_000_000  # ImageNet-21k has 21,841
MAX_BATCH = 65_536
MAX_SAMPLES = 10**12  # a training budget: 780,000 ImageNet epochs
MAX_EPOCHS = 1_000_000
MAX_VALUES = 10_000  # values of a range or list: swept multipliers, phis, seeds, grid axes
MAX_SYNTHETIC_PER_CLASS = 1_000_000


def at_most(name: str, value, limit, hint: str = "") -> None:
    """Refuse ``value`` above ``limit`` (or not a finite number) in one line."""
    if not (isinstance(value, int) or math.isfinite(value)) or value > limit:
        shown = f"{value:g}" if isinstance(value, float) else f"{value:,}"
        raise EffscaleError(
            f"{name} {shown} is beyond what effscale can mean (at most {limit:,g})",
            hint or "check the number for a typo",
        )


def count_at_most(what: str, n: int, limit: int = MAX_VALUES) -> None:
    """Refuse a range or list of ``n`` values before it is made."""
    if n > limit:
        raise EffscaleError(
            f"{what} has {n:,} values, more than effscale takes ({limit:,})",
            "give fewer values, or a coarser step",
        )
