"""Waking when a run record grows: inotify where the platform has it, a short sleep if not.

The kernel follows a local job by reading the record its supervisor writes (the supervisor
outlives the kernel, so there is no pipe between them to wait on). inotify (through
inotify_simple, a thin ctypes binding) wakes the reader as soon as a write lands instead
of at the next tick of a polling interval.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import TracebackType

#: Without inotify: how often the record is looked at.
POLL = 0.02


class RecordWatch:
    """`wait(timeout)` returns when a file in `directory` was written, or after `timeout`."""

    def __init__(self, directory: Path) -> None:
        self._inotify = None
        try:
            from inotify_simple import INotify, flags

            inotify = INotify()
            try:
                inotify.add_watch(str(directory), flags.MODIFY | flags.CLOSE_WRITE)
            except OSError:
                inotify.close()
                raise
            self._inotify = inotify
        except (ImportError, OSError):  # not Linux, or no watches left: poll
            self._inotify = None

    @property
    def polling(self) -> bool:
        return self._inotify is None

    def wait(self, timeout: float) -> None:
        if self._inotify is None:
            time.sleep(min(timeout, POLL))
            return
        self._inotify.read(timeout=int(timeout * 1000))

    def close(self) -> None:
        if self._inotify is not None:
            with contextlib.suppress(OSError):
                self._inotify.close()
            self._inotify = None

    def __enter__(self) -> RecordWatch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
