"""The S2IClient seam (the Go `s2i.S2IClient`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ciao.interpreter.types import Parameter

#: Receives phase 2's output, a line at a time (`[build] Step 3/7 ...`), for the cell.
Progress = Callable[[str], None]


class S2IClient(Protocol):
    """Turns a cell's training code into what the backend runs, and says what that is."""

    def source_to_image(
        self, code: str, parameter: Parameter, progress: Progress | None = None
    ) -> str:
        """The image (or, locally, the code file) the job's replicas run."""
        ...

    def cancel(self) -> None:
        """Stop a build in progress (from another thread, without waiting); source_to_image
        then raises JobCancelled. Nothing to do for providers that do not build."""
        ...
