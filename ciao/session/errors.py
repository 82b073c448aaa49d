"""What can go wrong with the session, said in the cell (cheap to import: no child)."""

from __future__ import annotations

import signal

from ciao.errors import CiaoError


class SessionError(CiaoError):
    """The session could not do what was asked (start, run code unseen, answer)."""

    ename = "SessionError"


class SessionInterrupted(SessionError):
    """An interrupt came before the cell's code reached the session: it did not run."""

    ename = "KeyboardInterrupt"


class SessionEnded(SessionError):
    """The session's process ended while it was running something: its names are lost."""

    ename = "SessionEnded"


def describe_exit(returncode: int) -> str:
    """How a process ended, as a sentence's middle: `exited with code 3`, `was killed by
    signal 9 (SIGKILL: ...)`."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    why = {
        "SIGKILL": ": the system's out-of-memory killer sends it when memory runs out",
        "SIGSEGV": ": a crash in compiled code",
        "SIGABRT": ": a crash (an abort)",
    }.get(name, "")
    return f"was killed by signal {number} ({name}{why})"
