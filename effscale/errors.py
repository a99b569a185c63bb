"""The one exception type for problems a user can fix, the one for Ctrl-C, and how their
messages name a parameter.

A message names a parameter as its Python name in backticks, with a value after ``=``
where it suggests one: "`epochs` must be positive (write e.g. `epochs`=3)". That reads
right from Python; the command line shows the same message with flags ("--epochs must be
positive (write e.g. --epochs 3)"), translated in one place (as_flags), so no library
message names a CLI flag.
"""

import re


class EffscaleError(Exception):
    """Bad input or an unusable environment, told in one line with what to do about it.

    The CLI prints ``message`` (and ``hint`` when given) on stderr and exits with
    ``exit_code``: 2 for bad input (the default), 1 for work that ran and failed (a study
    with failed points); library callers get an ordinary exception they can catch.
    """

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, after the work stopped cleanly: says what finished and how to resume.

    A KeyboardInterrupt, so whatever stops on Ctrl-C stops on it too (a study's executor
    never records it as a failed point). The CLI prints it in one line and exits 130.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# `name` or `name`=value in a message (the value ends at a space, comma, semicolon or ")").
PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`(?:=([^\s,;)]+))?")
# Parameters whose flag is not --name-with-dashes.
FLAGS = {"time_min": "--time"}


def as_flags(text: str) -> str:
    """A message as the command line shows it: `epochs`=3 -> --epochs 3, `new_head` ->
    --new-head (FLAGS where the flag has another name)."""

    def flag(m: re.Match) -> str:
        name = FLAGS.get(m[1], "--" + m[1].replace("_", "-"))
        return f"{name} {m[2]}" if m[2] else name

    return PARAMETER.sub(flag, text)
