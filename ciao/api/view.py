"""Where a followed job shows: in an IPython kernel the kernel's live view (display, then
updates in place) and the `[replica]` lines; in a terminal the lines and, on a tty, a
progress line on stderr."""

from __future__ import annotations

import re
import sys
import time
from typing import Any, Protocol

from ciao.backend.types import Event


class View(Protocol):
    """A job's or a study's live view (kernel/render.py JobView, study_view.py StudyView)."""

    def apply(self, event: Event, now: float | None = None) -> bool: ...

    def bundle(self, now: float | None = None) -> dict[str, Any]: ...


#: At most one update of the live view this often (seconds), as the kernel's.
INTERVAL = 1.0


class Sink(Protocol):
    def line(self, replica: str, text: str, stream: str) -> None: ...

    def notice(self, text: str) -> None: ...

    def refresh(self, view: View, force: bool = False) -> None: ...


def sink_for(view: View) -> Sink:
    """The IPython kernel's view when running in one, else the terminal's."""
    return NotebookSink(view) if _kernel_shell() else TerminalSink()


def _kernel_shell() -> bool:
    """Whether an IPython kernel (not a terminal IPython) runs this code."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class NotebookSink:
    """display_data once, then update_display_data at most every INTERVAL."""

    def __init__(self, view: View) -> None:
        from IPython.display import display

        self.handle = display(view.bundle(), raw=True, display_id=True)
        self.shown = time.monotonic()

    def line(self, replica: str, text: str, stream: str) -> None:
        print(f"[{replica}] {text}", file=sys.stderr if stream == "stderr" else sys.stdout)

    def notice(self, text: str) -> None:
        print(text, file=sys.stderr)

    def refresh(self, view: View, force: bool = False) -> None:
        if self.handle is not None and (force or time.monotonic() - self.shown >= INTERVAL):
            self.handle.update(view.bundle(), raw=True)
            self.shown = time.monotonic()


class TerminalSink:
    """Prefixed lines on stdout/stderr; on a tty, the view's headline on stderr when it
    changes (other than its clock)."""

    def __init__(self) -> None:
        self.last = ""

    def line(self, replica: str, text: str, stream: str) -> None:
        out = sys.stderr if stream == "stderr" else sys.stdout
        print(f"[{replica}] {text}", file=out, flush=True)

    def notice(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def refresh(self, view: View, force: bool = False) -> None:
        if not sys.stderr.isatty():
            return
        headline = str(view.bundle().get("text/plain", "")).split("\n", 1)[0]
        state = re.sub(r"\d+(\.\d+)?[smh]\b", "", headline)
        if force or state != self.last:
            print(f"[ciao] {headline}", file=sys.stderr, flush=True)
        self.last = state
