"""The S2IClient seam (the Go `s2i.S2IClient`) and the record of what it shipped."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ciao.interpreter.types import Parameter

#: Receives phase 2's output, a line at a time (`[build] Step 3/7 ...`), for the cell.
LineCallback = Callable[[str], None]


@dataclass(frozen=True)
class Shipment:
    """What phase 2 made of the cell's code: what the replicas run, and how.

    `image` is the container image (locally: the code file). `command` is the container
    command when the image alone does not run the code. `files` ride beside the image, to
    be mounted at `ciao.constants.CODE_DIR` (the configmap provider: code and requirements,
    and what the cell carries from the notebook: texts, or bytes for its values and files);
    the backend that submits the job creates their ConfigMap with it. `build` describes an
    image build for `%dryrun` (commands, files), empty when nothing is built.
    """

    image: str
    command: tuple[str, ...] = ()
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    build: Mapping[str, Any] = field(default_factory=dict)
    #: The code's path in the container, for a backend that starts it its own way
    #: (Trainer v2 runs it under torchrun), and a shell step that must come first
    #: (the configmap provider's pip install of the requirements), if any.
    script: str = ""
    setup: str = ""
    #: What travels with the code from the notebook (definitions, values, files), in full
    #: for `%dryrun`, and the one line the cell shows ("carried: np (imports), Net (In [2])").
    travels: Mapping[str, Any] = field(default_factory=dict)
    travels_line: str = ""
    #: The command runs inside another that goes on after it (a Katib trial's container:
    #: `<command> && echo completed > ...`), so a setup step does not `exec` the code.
    wrapped: bool = False

    def run_with(self, runner: Sequence[str]) -> tuple[str, ...]:
        """The container command that runs the code with `runner` (`torchrun`, ...)."""
        if not self.script:
            raise ValueError("this shipment does not say where its code is in the image")
        if not self.setup:
            return (*runner, self.script)
        launch = " ".join(shlex.quote(arg) for arg in (*runner, self.script))
        return ("sh", "-c", f"{self.setup} && {'' if self.wrapped else 'exec '}{launch}")


class S2IClient(Protocol):
    """Turns a cell's training code into what the backend runs (the Go `s2i.S2IClient`):
    planned first, with every check, then shipped exactly as planned."""

    def plan(self, parameter: Parameter) -> Shipment:
        """What `source_to_image` will ship for the cell (`parameter.code`), checked (a
        ConfigMap too large fails here); nothing is built or written."""
        ...

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: LineCallback | None = None
    ) -> Shipment:
        """Make `shipment` (this provider's plan for `parameter`) real: build and push the
        image, or write the code file; `progress` gets the build's lines."""
        ...

    def cancel(self) -> None:
        """Stop a build in progress (from another thread, without waiting); source_to_image
        then raises JobCancelled. Nothing to do for providers that do not build."""
        ...
