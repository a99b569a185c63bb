"""The one exception type for problems a user can fix."""


class EffscaleError(Exception):
    """Bad input or an unusable environment, told in one line with what to do about it.

    The CLI prints ``message`` (and ``hint`` when given) on stderr and exits with code 2;
    library callers get an ordinary exception they can catch.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
