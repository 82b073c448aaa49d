"""Bytes a replica wrote → its lines, in linear time and bounded memory, for every backend.

A line ends at `\\n` (a `\\r\\n` ending is dropped with it). A line rewritten in place with
`\\r` (tqdm, Keras, Lightning progress bars) is a progress line: while it is open its
latest state is a `Progress`, and when it ends its final text (what a terminal shows) is
one `LogLine`. A line longer than `MAX_LINE_BYTES` is cut into pieces of that size, each a
`LogLine` of its own, and a `Diagnosis` says so once per stream. Invalid UTF-8 becomes
U+FFFD; a multi-byte character is never cut in two.

A line that starts with a launcher's process marker (torchrun's `[default<local rank>]:`)
keeps it in its progress and its final text, though it is written once, before the `\\r`
rewrites: which process wrote a line is what tells %procs > 1 processes apart.
"""

from __future__ import annotations

import re

from ciao.backend.types import Diagnosis, Event, LogLine, LogLines, Progress, StreamName

#: Longest line kept whole; a longer one arrives in pieces of this size.
MAX_LINE_BYTES = 64 * 1024

LONG_LINE = "LongLine"

#: A process marker at a line's start: torchrun's `[<role><local rank>]:` (`[default0]:`).
_MARKER = re.compile(rb"\[[A-Za-z_][\w-]*?\d+\]:")


class LineSplitter:
    """One stream of one replica: `feed(chunk)` returns the events the chunk completes.

    With `batch`, a chunk's plain lines come as one `LogLines` (split and decoded at C
    speed); else each is a `LogLine`.
    """

    __slots__ = (
        "replica",
        "stream",
        "max_line",
        "batch",
        "_pending",
        "_pieces",
        "_said_long",
        "_marker",
    )

    def __init__(
        self,
        replica: str,
        stream: StreamName,
        max_line: int = MAX_LINE_BYTES,
        batch: bool = False,
    ) -> None:
        self.replica = replica
        self.stream: StreamName = stream
        self.max_line = max_line
        self.batch = batch
        self._pending = b""  # the open line so far: at most max_line bytes after any `\r`
        self._pieces = 0  # pieces of the open line already given out
        self._said_long = False
        #: The open line's marker (b"" for none) once its start was dropped at a `\r`.
        self._marker: bytes | None = None

    def feed(self, data: bytes) -> list[Event]:
        """The lines `data` ends, pieces of an over-long open line, and the open line's
        progress (at most one `Progress`: the latest)."""
        events: list[Event] = []
        if not data:
            return events
        end = data.rfind(b"\n")
        if end >= 0:
            block = self._pending + data[:end] if self._pending else data[:end]
            self._pending = data[end + 1 :]
            lines = block.split(b"\n")
            if self.batch and self._plain(block, lines):
                text = block.decode("utf-8", "replace")
                events.append(LogLines(self.replica, tuple(text.split("\n")), self.stream))
            else:
                for raw in lines:
                    self._line(raw, events)
        else:
            self._pending += data
        self._open_line(events)
        return events

    def close(self) -> list[Event]:
        """The stream ended: its last line, even without a `\\n`."""
        events: list[Event] = []
        if self._pending or self._pieces:
            raw, self._pending = self._pending, b""
            if raw or not self._pieces:
                self._line(raw, events)
            self._pieces = 0
        return events

    def _plain(self, block: bytes, lines: list[bytes]) -> bool:
        """Whether the block's lines need no care: no `\r`, none too long, no piece open."""
        if self._pieces or self._marker is not None or b"\r" in block:
            return False
        return len(block) <= self.max_line or max(map(len, lines)) <= self.max_line

    def _line(self, raw: bytes, events: list[Event]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        marker, self._marker = self._marker, None
        if b"\r" in raw:
            marker = _marker_of(raw) if marker is None else marker
            raw = _final_state(raw)
        if marker:
            raw = _marked(marker, raw)
        if len(raw) > self.max_line:
            self._cut(raw, events, closing=True)
            return
        if self._pieces and not raw:  # the piece before was the line's last byte
            self._pieces = 0
            return
        self._pieces = 0
        events.append(LogLine(self.replica, raw.decode("utf-8", "replace"), self.stream))

    def _open_line(self, events: list[Event]) -> None:
        pending = self._pending
        cr = pending.rfind(b"\r", 0, len(pending) - 1)  # a `\r` that is not the last byte
        if cr >= 0:
            # rewritten in place: only the state after the last `\r` can still be shown
            if self._marker is None:
                self._marker = _marker_of(pending)
            pending = self._pending = pending[cr + 1 :]
            shown = pending.rstrip(b"\r")
            if shown:
                shown = _marked(self._marker, shown)
                text = shown[: self.max_line].decode("utf-8", "replace")
                events.append(Progress(self.replica, text, self.stream))
        elif len(pending) > self.max_line:
            self._pending = self._cut(pending, events, closing=False)

    def _cut(self, raw: bytes, events: list[Event], closing: bool) -> bytes:
        """Give out whole pieces of `raw`; the rest (when the line is still open) is kept."""
        if not self._said_long:
            self._said_long = True
            events.append(
                Diagnosis(
                    self.replica,
                    LONG_LINE,
                    f"{self.stream} has lines over {self.max_line // 1024} KiB: they are "
                    f"shown in pieces of {self.max_line // 1024} KiB, one line each",
                )
            )
        start = 0
        while len(raw) - start > self.max_line or (closing and start < len(raw)):
            stop = _char_boundary(raw, min(start + self.max_line, len(raw)))
            if stop <= start:
                stop = min(start + self.max_line, len(raw))
            events.append(
                LogLine(self.replica, raw[start:stop].decode("utf-8", "replace"), self.stream)
            )
            self._pieces += 1
            start = stop
        if closing:
            self._pieces = 0
        return raw[start:]


def _marker_of(line: bytes) -> bytes:
    """The process marker `line` starts with, or b""."""
    found = _MARKER.match(line) if line.startswith(b"[") else None
    return found.group() if found else b""


def _marked(marker: bytes, state: bytes) -> bytes:
    """A state of a marked line, with the marker (unless it carries one already)."""
    return state if not marker or _MARKER.match(state) else marker + state


def _final_state(raw: bytes) -> bytes:
    segments = raw.split(b"\r")
    return next((s for s in reversed(segments) if s), b"")


def _char_boundary(data: bytes, index: int) -> int:
    """`index`, moved back (at most 3 bytes) so it does not cut a UTF-8 character."""
    if index >= len(data):
        return len(data)
    back = index
    while back > index - 4 and back > 0 and (data[back] & 0xC0) == 0x80:
        back -= 1
    return back
