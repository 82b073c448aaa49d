"""A cell's output: IOPub messages for its streams, its result, its error and the live
view of its job (one display_data, then update_display_data in place)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from ciao.backend.types import Event
from ciao.kernel.display import JobView
from ciao.protocol.server import Request

#: How long replica output may wait before it is sent (it is coalesced meanwhile).
FLUSH_INTERVAL = 0.05
#: A stream message is sent earlier when this much text is waiting.
FLUSH_BYTES = 64 * 1024
#: The live view is re-rendered at most this often while events arrive...
VIEW_INTERVAL = 0.25
#: ...and this often when nothing happens (its clocks move on).
VIEW_TICK = 2.0


class Output:
    """Where a cell's output goes: IOPub, unless the request was silent."""

    def __init__(self, request: Request, silent: bool) -> None:
        self.request = request
        self.silent = silent

    def stream(self, name: str, text: str) -> None:
        if not self.silent:
            self.request.publish("stream", {"name": name, "text": text})

    def progress(self, line: str) -> None:
        """A line of phase 2 (building the image), shown as it comes."""
        self.stream("stdout", line.rstrip("\n") + "\n")

    def display(self, data: dict[str, Any], display_id: str, update: bool) -> None:
        if not self.silent:
            self.request.publish(
                "update_display_data" if update else "display_data",
                {"data": data, "metadata": {}, "transient": {"display_id": display_id}},
            )

    def result(self, count: int, data: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish(
                "execute_result", {"execution_count": count, "data": data, "metadata": {}}
            )

    def error(self, error: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish("error", error)


class StreamBuffer:
    """Coalesces replica lines into few `stream` messages, stdout and stderr kept apart
    and in order relative to each other."""

    def __init__(self, send: Callable[[str, str], None]) -> None:
        self._send = send
        self._name: str | None = None
        self._parts: list[str] = []
        self._size = 0
        self._since = 0.0

    def add(self, name: str, text: str) -> None:
        if self._name is not None and name != self._name:
            self.flush()
        if not self._parts:
            self._since = time.monotonic()
        self._name = name
        self._parts.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def due_in(self) -> float:
        """Seconds until the waiting text must go out (a long wait when nothing waits)."""
        if not self._parts:
            return 0.5
        return max(0.0, self._since + FLUSH_INTERVAL - time.monotonic())

    def flush(self) -> None:
        if self._parts and self._name:
            self._send(self._name, "".join(self._parts))
        self._parts, self._size, self._name = [], 0, None


class LiveView:
    """Publishes a JobView: display_data once, then update_display_data when it changed,
    at most every VIEW_INTERVAL (and every few seconds anyway, for the clocks)."""

    def __init__(self, view: JobView, out: Output) -> None:
        self.view = view
        self.out = out
        self.display_id = f"ciao-job-{view.job.name}-{uuid.uuid4().hex[:8]}"
        self.dirty = False
        self.shown_at = time.monotonic()
        out.display(view.bundle(), self.display_id, update=False)

    def apply(self, event: Event) -> None:
        self.dirty = self.view.apply(event) or self.dirty
        self.refresh()

    def due_in(self) -> float:
        wait = VIEW_INTERVAL if self.dirty else VIEW_TICK
        return max(0.0, self.shown_at + wait - time.monotonic())

    def refresh(self, force: bool = False) -> None:
        if force or self.due_in() <= 0:
            self.out.display(self.view.bundle(), self.display_id, update=True)
            self.dirty = False
            self.shown_at = time.monotonic()
