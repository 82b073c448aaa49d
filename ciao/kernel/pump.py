"""The loop every followed job (a job's cell, a study's cell) runs: its events into the live
view and the cell's stream, paced by the stream's budget, until the verdict."""

from __future__ import annotations

import logging

from ciao.backend.types import Diagnosis, JobDone, LogLine, LogLines, ReplicaState
from ciao.kernel.logstream import LogStream
from ciao.kernel.output import LiveView
from ciao.manager import ActiveJob

log = logging.getLogger(__name__)


def pump(active: ActiveJob, view: LiveView, stream: LogStream) -> JobDone | None:
    """Show `active`'s events until it ends; its JobDone, or None when it ended without one
    (detached, or its events stopped)."""
    done: JobDone | None = None
    while True:
        try:
            event = active.next_event()
        except StopIteration:
            return done
        if event is None:  # idle: what is due goes out, the view's clock moves on
            if stream.due_in() <= 0:
                stream.flush()
            view.refresh()
            continue
        view.apply(event)
        if isinstance(event, LogLines | LogLine):
            texts = event.lines if isinstance(event, LogLines) else (event.text,)
            stream.lines(event.replica, texts, event.stream)
            if stream.due_in() <= 0:
                stream.flush()
        elif isinstance(event, Diagnosis):
            over = " is over" if event.resolved else ""
            stream.notice(f"[{event.replica}] {event.reason}{over}: {event.hint}\n")
        elif isinstance(event, ReplicaState):
            log.debug("%s: %s %s", event.replica, event.phase, event.reason)
        elif isinstance(event, JobDone):
            done = event
