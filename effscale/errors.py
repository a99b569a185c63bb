"""The one exception type for problems a user can fix, and the one for Ctrl-C."""


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
