"""What the writer of a run record keeps beside its events: the job's metrics.

The local supervisor and the kernel following a Kubeflow job append events.jsonl; each
hands what it appended to a MetricsRecorder, which saves metrics.json at most every
SAVE_EVERY seconds while they change, and at the end, with the byte of events.jsonl they
cover. `%metrics` then reads that file and the few lines after it, not the whole log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from ciao.backend.record import RunDir
from ciao.backend.types import Event, LogLine, LogLines

log = logging.getLogger("ciao.backend")

#: How often metrics.json is saved while metrics come.
SAVE_EVERY = 1.0
#: Saved anyway once this much log without metrics follows the last save, so a reader
#: never skims more than this after it.
SKIM_BYTES = 1 << 20


class MetricsRecorder:
    """Folds the log lines a writer appends into the job's Metrics and saves them."""

    def __init__(self, run: RunDir, fd: int, clock: Callable[[], float] = time.monotonic) -> None:
        """`fd`: the writer's descriptor of events.jsonl (appending). A writer that
        resumes a record (an %attach of a Kubeflow job) goes on from what it holds."""
        self.run = run
        self.fd = fd
        self.clock = clock
        self.metrics, self.offset = run.metrics_through()
        self.saved_offset = self.offset
        self.saved_at = clock()
        self.changed = False

    def wrote(self, events: Iterable[Event]) -> None:
        """`events` were just appended through `fd`, whole."""
        for event in events:
            if isinstance(event, LogLines):
                self.changed = self.metrics.add_lines(event.replica, event.lines) or self.changed
            elif isinstance(event, LogLine):
                self.changed = self.metrics.add_line(event.replica, event.text) or self.changed
        self.offset = os.lseek(self.fd, 0, os.SEEK_CUR)  # the end of this writer's records
        due = self.clock() - self.saved_at >= SAVE_EVERY
        if due and (self.changed or self.offset - self.saved_offset > SKIM_BYTES):
            self.save()

    def close(self) -> None:
        """The writer is done: what is not saved yet."""
        if self.changed or self.offset != self.saved_offset:
            self.save()

    def save(self) -> None:
        try:
            self.run.write_metrics(self.metrics, self.offset)
        except OSError as exc:  # a %delete took the record meanwhile: nothing to keep
            log.info("metrics of %s not saved: %s", self.run.name, exc)
        self.changed = False
        self.saved_offset = self.offset
        self.saved_at = self.clock()
