"""Each replica's last lines, bounded, for the verdict of a job that failed (`JobDone.tail`).

Both backends keep them as lines pass, the one copy there is: the kernel shows the failing
replica's from the verdict. Bounded in lines and in characters per replica, so a job of a
thousand replicas writing long lines holds a few megabytes, not gigabytes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

#: Lines of the failing replica a verdict carries.
TAIL_LINES = 20
#: Characters of one replica's lines kept (its latest line is kept whole, however long).
TAIL_CHARS = 16 * 1024


class LastLines:
    """The latest lines of every replica; `add` may be called from several threads."""

    def __init__(self, lines: int = TAIL_LINES, chars: int = TAIL_CHARS) -> None:
        self.lines = lines
        self.chars = chars
        self._kept: dict[str, deque[str]] = {}
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, replica: str, texts: Sequence[str]) -> None:
        """Lines `replica` wrote, in order (of a long run, only the last are looked at)."""
        with self._lock:
            kept = self._kept.get(replica)
            if kept is None:
                kept = self._kept[replica] = deque()
            size = self._sizes.get(replica, 0)
            for text in texts[-self.lines :]:
                kept.append(text)
                size += len(text)
            while len(kept) > self.lines or (size > self.chars and len(kept) > 1):
                size -= len(kept.popleft())
            self._sizes[replica] = size

    def of(self, replica: str) -> tuple[str, ...]:
        """`replica`'s last lines, oldest first (none for a replica that wrote none)."""
        with self._lock:
            return tuple(self._kept.get(replica, ()))
