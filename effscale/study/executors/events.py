"""What every executor shares: the Ctrl-C stop, the events that carry it to a running point,
and a failure's record.

Ctrl-C: while a study runs (stop_on_sigint), the first SIGINT asks for a clean stop. No new
point starts, and each running point stops at the end of its current training step (the
training loop checks ``stop_requested`` after every step, as a flag: no exception is thrown
from a callback) and writes its checkpoint there; files are only ever replaced whole
(effscale.io). A second SIGINT stops at once.
"""

import signal
import threading
import traceback
from contextlib import contextmanager

from effscale.errors import EffscaleError


class Stop:
    """Whether a clean stop was asked for (process-wide, as signals are)."""

    requested = False


def stop_requested() -> bool:
    return Stop.requested


def request_stop() -> None:
    """What the first Ctrl-C does; for callers that stop a study another way."""
    Stop.requested = True


@contextmanager
def stop_on_sigint():
    """While the block runs, the first SIGINT calls request_stop and a second raises
    KeyboardInterrupt (outside the main thread, where signals cannot be caught, Ctrl-C stays
    a plain KeyboardInterrupt)."""
    Stop.requested = False
    main = threading.current_thread() is threading.main_thread()

    def handle(signum, frame):
        if Stop.requested:
            raise KeyboardInterrupt
        request_stop()

    old = signal.signal(signal.SIGINT, handle) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
        Stop.requested = False  # read stop_requested() inside the block


def failure(e: BaseException) -> str:
    """A failed point's record (error.json): an effscale error's message, else the
    exception and where it was raised."""
    if isinstance(e, EffscaleError):
        return str(e)
    return (
        "".join(traceback.format_exception_only(type(e), e)).strip()
        + "\n"
        + traceback.format_exc(limit=-3)
    )
