"""`%pip`: pip in the Python the local replicas run (the kernel's own), so a package a
cell needs is one command away; its output streams into the cell, an interrupt stops it.

Only the local backend has such an environment: on Kubernetes a cell runs in its image,
and `%requirements` (or the image) is where its packages go.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ciao.errors import BackendError, JobCancelled
from ciao.s2i.tools import ToolRunner
from ciao.s2i.types import LineCallback

#: How long one %pip may take (a large wheel over a slow link).
PIP_TIMEOUT = 3600.0


def replicas_python() -> str:
    """The Python local replicas run: the kernel's (LocalBackend's default)."""
    return sys.executable


def pip_argv(args: Sequence[str], python: str | None = None) -> list[str]:
    return [python or replicas_python(), "-m", "pip", "--disable-pip-version-check", *args]


class Pip:
    """One %pip run; `cancel()` from any thread (an interrupt) stops pip's process group."""

    def __init__(self, args: Sequence[str], python: str | None = None) -> None:
        self.argv = pip_argv(args, python)
        self._runner = ToolRunner(PIP_TIMEOUT, env=dict(os.environ, PIP_NO_INPUT="1"))

    def cancel(self) -> None:
        self._runner.cancel()

    def run(self, progress: LineCallback | None) -> None:
        """Run pip to its end, each line of its output to `progress`; raise if it failed."""
        try:
            result = self._runner.run(self.argv, "[pip]", progress, hide_values=False)
        except JobCancelled:
            raise JobCancelled(
                "%pip was interrupted and pip stopped: a package may be half installed; "
                "run the same %pip again"
            ) from None
        if result.timed_out:
            raise BackendError(f"pip took longer than {PIP_TIMEOUT:.0f} s and was stopped")
        if result.returncode != 0:
            last = result.tail[-1] if result.tail else ""
            raise BackendError(f"pip exited with code {result.returncode}: {last}".rstrip(": "))
