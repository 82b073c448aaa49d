"""The S2IClient seam (the Go `s2i.S2IClient`)."""

from __future__ import annotations

from typing import Protocol

from ciao.interpreter.types import Parameter


class S2IClient(Protocol):
    """Turns a cell's training code into what the backend runs, and says what that is."""

    def source_to_image(self, code: str, parameter: Parameter) -> str:
        """The image (or, locally, the code file) the job's replicas run."""
        ...
