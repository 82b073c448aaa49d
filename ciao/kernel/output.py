"""A cell's output: IOPub messages for its streams, its result, its error and the live
view of its job (one display_data, then update_display_data in place); log lines are in
logstream.py."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Protocol

from ciao.backend.types import Event, Job
from ciao.kernel.budget import OutputBudget
from ciao.protocol.server import Request

#: The live view is re-rendered at most this often while events arrive...
VIEW_INTERVAL = 0.25
#: ...and this often when nothing happens (its clocks move on).
VIEW_TICK = 2.0


class Output:
    """Where a cell's output goes: IOPub, unless the request was silent.

    Everything sent is counted in the cell's budget; only log lines (`log`) give way to
    it: the view, notices, results and errors always go.
    """

    def __init__(self, request: Request, silent: bool, budget: OutputBudget | None = None) -> None:
        self.request = request
        self.silent = silent
        self.budget = budget or OutputBudget(0, 0)

    def stream(self, name: str, text: str) -> None:
        if not self.silent:
            self.request.publish("stream", {"name": name, "text": text})
            self.budget.spend(len(text.encode("utf-8", "replace")))

    def log(self, name: str, text: str, wait: float = 0.0) -> bool:
        """Send log text if the budget allows it within `wait` seconds; False if not."""
        nbytes = len(text.encode("utf-8", "replace"))
        delay = self.budget.wait_for(nbytes)
        if delay > wait:
            return False
        if delay:
            time.sleep(delay)
        self.stream(name, text)
        return True

    def progress(self, line: str) -> None:
        """A line of phase 2 (building the image), shown as it comes."""
        self.stream("stdout", line.rstrip("\n") + "\n")

    def display(self, data: dict[str, Any], display_id: str, update: bool) -> None:
        if not self.silent:
            self.request.publish(
                "update_display_data" if update else "display_data",
                {"data": data, "metadata": {}, "transient": {"display_id": display_id}},
            )
            self.budget.spend()

    def result(self, count: int, data: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish(
                "execute_result", {"execution_count": count, "data": data, "metadata": {}}
            )
            self.budget.spend()

    def relay(
        self,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """A message of the session as it published it (an execute_result with all its
        representations and their metadata, display_data, clear_output, error); comm
        messages go even from a silent cell: they are a widget's state, not output."""
        if self.silent and not msg_type.startswith("comm_"):
            return
        self.request.publish(msg_type, content, metadata=metadata or {}, buffers=buffers)
        self.budget.spend()

    def error(self, error: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish("error", error)
            self.budget.spend()


class View(Protocol):
    """A live view of a job or a study (render.JobView, study_view.StudyView)."""

    @property
    def job(self) -> Job[Any]: ...

    def apply(self, event: Event) -> bool: ...

    def bundle(self) -> dict[str, str]: ...


class LiveView:
    """Publishes a view: display_data once, then update_display_data when it changed,
    at most every VIEW_INTERVAL (and every few seconds anyway, for the clocks)."""

    def __init__(self, view: View, out: Output) -> None:
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


def readable_yaml(text: str, data: Any, kind: str) -> dict[str, Any]:
    """A YAML text as a notebook shows it (highlighted Markdown), plain text for terminals
    and nbconvert, and the same data for programs as `application/vnd.ciao.<kind>+json`:
    not `application/json`, which JupyterLab ranks first and shows as a collapsed tree."""
    fence = "```"
    while fence in text:  # a fence no line of the text can close
        fence += "`"
    return {
        "text/markdown": f"{fence}yaml\n{text}\n{fence}",
        "text/plain": text,
        f"application/vnd.ciao.{kind}+json": json.loads(json.dumps(data)),
    }
