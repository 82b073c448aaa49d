"""Errors a user sees in a cell: each says what went wrong and where."""

from __future__ import annotations

#: Longest part of a user's value an error repeats: a 5,000-digit count or a 150 MB
#: config value is named by its start and its length, not repeated.
EXCERPT_CHARS = 60


def excerpt(value: object) -> str:
    """`value` as an error message quotes it (its repr), cut to EXCERPT_CHARS."""
    if isinstance(value, str):
        if len(value) <= EXCERPT_CHARS:
            return repr(value)
        return f"{value[:EXCERPT_CHARS]!r}... ({len(value):,} characters)"
    text = repr(value)
    if len(text) <= EXCERPT_CHARS:
        return text
    return f"{text[:EXCERPT_CHARS]}... ({len(text):,} characters in all)"


class CiaoError(Exception):
    """Base of every error Ciao reports in a cell instead of a Python traceback."""

    #: The name the notebook shows as the error's type.
    ename = "CiaoError"

    def lines(self) -> list[str]:
        """The traceback lines shown in the cell (one per problem)."""
        return [f"{self.ename}: {self}"]


class ConfigError(CiaoError):
    """The config file (or a value in it) is wrong; names the file and the key."""

    ename = "ConfigError"


class MagicError(CiaoError):
    """One bad magic: which line of the cell, which magic, what is wrong."""

    ename = "MagicError"

    def __init__(self, line: int, magic: str, message: str) -> None:
        self.line = line
        self.magic = magic
        self.message = message
        super().__init__(f"line {line}: {magic}: {message}" if magic else f"line {line}: {message}")


class MagicErrors(CiaoError):
    """Every bad magic of a cell at once, so the user fixes them in one go."""

    ename = "MagicError"

    def __init__(self, errors: list[MagicError]) -> None:
        self.errors = sorted(errors, key=lambda e: e.line)
        if len(self.errors) == 1:
            text = str(self.errors[0])
        else:
            text = f"{len(self.errors)} problems in the cell's magics: " + "; ".join(
                str(e) for e in self.errors
            )
        super().__init__(text)

    def lines(self) -> list[str]:
        return [f"{self.ename}: {e}" for e in self.errors]


class JobFailed(CiaoError):
    """The job ran and failed: names the replica that failed and how, and shows its last
    lines next to the verdict, unless the cell showed them just above (`shown`): then it
    points at them, so a traceback is not printed twice."""

    ename = "JobFailed"

    def __init__(
        self,
        message: str,
        replica: str = "",
        tail: tuple[str, ...] = (),
        hint: str = "",
        *,
        shown: bool = False,
        job: str = "",
    ) -> None:
        super().__init__(message)
        self.replica = replica
        self.tail = tuple(tail)
        #: What to do about it, when the failure is a known one (a missing package).
        self.hint = hint
        #: The tail's lines are all in the cell's output above, marked `[replica]`.
        self.shown = shown
        self.job = job

    def lines(self) -> list[str]:
        lines = super().lines()
        if self.tail and self.shown:
            logs = f"; `%logs {self.job} {self.replica}` shows its whole log" if self.job else ""
            lines.append(f"{self.replica}'s last lines are above, marked [{self.replica}]{logs}")
        elif self.tail:
            lines += [f"last lines of {self.replica}:", *self.tail]
        return [*lines, f"hint: {self.hint}"] if self.hint else lines


class JobCancelled(CiaoError):
    """The user interrupted the cell and the job was stopped."""

    ename = "KeyboardInterrupt"


class JobDetached(CiaoError):
    """The user interrupted a cell whose job detaches instead: it runs on."""

    ename = "KeyboardInterrupt"


class BackendError(CiaoError):
    """The backend could not start or follow the job (not the job's own failure)."""

    ename = "BackendError"
