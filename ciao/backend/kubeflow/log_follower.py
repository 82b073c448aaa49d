"""Follows one container's log across stream drops and restarts, delivering each line once.

Logs are read with `timestamps=true`: the kubelet starts each line with its RFC 3339 time
and a space (a line the runtime stored as 16 KiB partial entries carries one timestamp, its
first entry's). The follower keeps a cursor: the last delivered line's timestamp, how many
lines carried exactly that timestamp, and, while that line is still open, how many of its
pieces were delivered. A dropped stream is resumed with `sinceTime` (whole seconds, so some
lines come again): the lines at or before the cursor are dropped, and an open line is read
again from its start with its delivered pieces dropped. When the container restarts, what
the old instance wrote after the cursor is read with `previous=true` before the new
instance is followed.

Reading is linear in the bytes and bounded in memory whatever a line's length: lines go
through the shared `LineSplitter` (pieces of 64 KiB, `\r` progress lines, invalid UTF-8),
fed in blocks that depend only on the line's bytes, never on how the stream was chunked,
so a line read twice is cut into the same pieces twice.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster, StreamWorker
from ciao.backend.splitter import LONG_LINE, MAX_LINE_BYTES, LineSplitter
from ciao.backend.types import Diagnosis, Event, LogLine, Progress

#: Bytes asked of the log stream per read.
CHUNK_BYTES = 64 * 1024
#: A line's body goes to the splitter in blocks of this size (counted from the line's
#: start), and in one last block with its newline.
BLOCK_BYTES = MAX_LINE_BYTES
#: Longest timestamp prefix looked for ("2024-05-01T10:00:00.123456789+00:00" is 35).
MAX_STAMP_BYTES = 40

_LOST = (
    "its pod was deleted (cleanPodPolicy, or by someone) before Ciao could read its log: "
    "whatever it printed is gone; %cleanPolicy=none keeps finished pods"
)

#: Cursor: (timestamp in ns, lines at exactly that time, pieces delivered of the last of
#: them while it is open; 0 once it is delivered whole).
Position = tuple[int, int, int]

log = logging.getLogger("ciao.kubernetes")


@dataclass(frozen=True)
class ContainerView:
    """What the pod informer last saw of the followed container."""

    exists: bool = True
    started: bool = False  # running or terminated: it has a log
    running: bool = False
    restarts: int = 0
    final: bool = False  # the pod is Succeeded/Failed: no further instance will come


def parse_timestamp(text: str) -> int | None:
    """RFC 3339 (nano) -> integer nanoseconds since the epoch; None if not a timestamp."""
    try:
        date, _, rest = text.partition("T")
        clock = rest.rstrip("Z")
        if "+" in clock or clock.count("-"):
            return None  # kubelet writes UTC with Z
        whole, _, fraction = clock.partition(".")
        year, month, day = (int(p) for p in date.split("-"))
        hour, minute, second = (int(p) for p in whole.split(":"))
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        return None


def since_time(nanos: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nanos // 1_000_000_000))


class ContainerFollower(StreamWorker):
    """One thread per (pod, container): the pod informer creates it when the pod appears."""

    def __init__(
        self,
        cluster: Cluster,
        pod_path: str,
        container: str,
        replica: str,
        view: Callable[[], ContainerView],
        changed: threading.Condition,
        put: Callable[[Event], bool],
        start: tuple[int, ...] | None = None,
        job: str = "",
    ) -> None:
        self.cluster = cluster
        self.pod_path = pod_path
        self.container = container
        self.replica = replica
        self.job = job
        self._view = view
        self._changed = changed
        self._put = put
        # one tuple, replaced only once a line (or piece) is in the queue, so a reader on
        # another thread (the cursors saved for %attach) never sees half of it or an
        # undelivered line
        self._position: Position | None = _position(start)
        self._opened = False  # a log request of this container has succeeded
        self._said_long = False  # the LongLine diagnosis is given once per container
        self._abandoned = False  # stopped by the job's end, not by the user
        self._unread = False  # stopped while reading an ended container's log
        self.done = threading.Event()
        super().__init__(f"ciao-log {replica}")

    @property
    def cursor(self) -> tuple[int, ...] | None:
        """Where the delivered lines end: (timestamp in ns, lines at exactly that time),
        and the pieces delivered of the last of them while it is still open."""
        position = self._position
        if position is None:
            return None
        return position if position[2] else position[:2]

    @property
    def _cursor(self) -> int | None:
        return None if self._position is None else self._position[0]

    def stop(self) -> None:
        super().stop()
        with self._changed:
            self._changed.notify_all()

    def abandon(self) -> None:
        """Stop because the job ended a while ago (a replica left running, a log still
        being read): if an ended container's log was cut short, the cell says so."""
        self._abandoned = True
        self.stop()

    def _run(self) -> None:
        try:
            self._follow_all()
            if self._abandoned and self._unread:
                self._put(Diagnosis(self.replica, "LogsLost", self._lost_hint("unread")))
        except Exception as exc:  # a bug or a malformed log: the cell must not say "ok" silently
            log.exception("following %s failed", self.replica)
            self._put(Diagnosis(self.replica, "LogsLost", self._lost_hint(exc)))
        finally:
            self.done.set()

    def _lost_hint(self, cause: Exception | str) -> str:
        """What went wrong, and where the rest of the log may still be."""
        rest = f"%logs {self.job} {self.replica}" if self.job else f"%logs NAME {self.replica}"
        if isinstance(cause, Exception):
            what = f"{type(cause).__name__}: {cause}"
            if len(what) > 200:
                what = what[:200] + "..."
            why = f"Ciao stopped reading this replica's log ({what})"
        else:
            why = "Ciao stopped reading this replica's log when the job ended, before its end"
        return f"{why}; what it printed after that is not shown here; `{rest}` may have the rest"

    def _follow_all(self) -> None:
        instance = 0  # the container instance (restart count) being read
        while not self._stop.is_set():
            view = self._wait(lambda v: not v.exists or v.started or v.final)
            if view is None or not view.exists:
                return
            if view.restarts > instance:
                self._read(previous=True)  # the rest of the instance that ended
            if not view.started:  # final without ever starting (image pull failure...)
                return
            instance = view.restarts
            cut = self._read(follow=view.running)
            if not cut and view.running:  # ended with its container: let the status catch up
                self._wait(_ended_or_restarted(instance), timeout=0.5)
            view = self._view()
            if not view.exists:
                if not self._opened:  # deleted (cleanPodPolicy) before its log could be read
                    self._put(Diagnosis(self.replica, "LogsLost", _LOST))
                return
            if view.final and not view.running:
                if cut or view.restarts > instance:
                    self._read(previous=view.restarts > instance)
                    self._read()
                return
            if not view.running and view.restarts == instance:
                # terminated, a restart is coming: wait for it (or for the end)
                self._wait(_gone_final_or_restarted(instance))

    def _wait(
        self, ready: Callable[[ContainerView], bool], timeout: float | None = None
    ) -> ContainerView | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._stop.is_set():
                view = self._view()
                if ready(view):
                    return view
                if deadline is not None and time.monotonic() >= deadline:
                    return view
                self._changed.wait(
                    1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                )
        return None

    def _read(self, follow: bool = False, previous: bool = False) -> bool:
        """Read (and deliver) the log from the cursor on; True if a line was cut short."""
        since = since_time(self._cursor) if self._cursor is not None else None
        query: dict[str, Any] = {
            "container": self.container,
            "timestamps": True,
            "follow": follow or None,
            "previous": previous or None,
            "sinceTime": since,
        }
        try:
            response = self.cluster.stream(f"{self.pod_path}/log", query, timeout=(10, None))
        except ApiError as exc:
            if exc.status in (400, 404):  # not started yet, no previous, or the pod is gone
                log.debug("log of %s unavailable: %s", self.replica, exc)
                return False
            if exc.status == 403:  # RBAC without pods/log: say so once, follow no further
                hint = f"Ciao may not read this replica's log ({exc}); allow get on pods/log"
                self._put(Diagnosis(self.replica, "LogForbidden", hint))
                self._stop.set()
                return False
            raise
        self._opened = True
        reader = _LogReader(self, resumed=since is not None)
        with self._streaming(response):
            return self._drain(response, reader, follow)

    def _drain(self, response: Any, reader: _LogReader, follow: bool) -> bool:
        """Feed the stream's chunks to `reader`. Only reading the stream is treated as a
        dropped connection (the caller resumes); an error in what is read propagates."""
        chunks = response.stream(CHUNK_BYTES, decode_content=True)
        while True:
            try:
                chunk = next(chunks, None)
            except Exception as exc:  # the connection dropped, or stop() closed it
                self._note_stopped()
                log.info("log stream of %s dropped: %s", self.replica, exc)
                return True
            if chunk is None:
                break
            if not reader.feed(chunk):  # following stopped: nothing more is delivered
                return False
        if self._stop.is_set():
            self._note_stopped()
            return True
        if follow and reader.open:
            return True  # a line cut short: its pieces so far are delivered, the rest follows
        reader.close()
        return False

    def _note_stopped(self) -> None:
        if self._stop.is_set() and not self._view().running:
            self._unread = True

    # ---- what the reader delivers --------------------------------------------------------

    def _deliver(self, event: Event, position: Position | None) -> bool:
        """Put one event in the queue, then move the cursor to `position` (if any); False
        once following stopped (the event was not delivered: the cursor stays before it)."""
        if not self._put(event):
            return False
        if position is not None:
            self._position = position
        return True

    def _say_long(self, diagnosis: Diagnosis) -> bool:
        """The LongLine diagnosis, once per container (each stream has its own splitter)."""
        if self._said_long:
            return True
        self._said_long = True
        return self._put(diagnosis)


class _Line:
    """The line being read: its place among lines at its timestamp, and what to deliver."""

    __slots__ = ("nanos", "index", "deliver", "skip", "given")

    def __init__(self, nanos: int | None, index: int, deliver: bool = True, skip: int = 0):
        self.nanos = nanos  # None: no timestamp (delivered, the cursor does not move)
        self.index = index  # the index-th line with exactly this timestamp
        self.deliver = deliver  # False: delivered before (or the tail of an earlier line)
        self.skip = skip  # pieces delivered before, from a stream cut while it was open
        self.given = 0  # pieces the splitter gave so far, skipped ones included

    def at(self, pieces: int) -> Position | None:
        return None if self.nanos is None else (self.nanos, self.index, pieces)


class _LogReader:
    """One log response: `<timestamp> <text>\\n` lines, in chunks cut anywhere, to the
    follower's events. Holds at most a block and the splitter's open line, never a whole
    long line."""

    def __init__(self, follower: ContainerFollower, resumed: bool) -> None:
        self.follower = follower
        self.resumed = resumed  # read with sinceTime: it may start inside an earlier line
        self.splitter = LineSplitter(follower.replica, "stdout")
        self.line: _Line | None = None  # None: at a line's start, reading its timestamp
        self.stamp = bytearray()  # the timestamp read so far
        self.block = bytearray()  # the open line's body not yet given to the splitter
        self.started = 0  # lines begun in this stream
        self.last_nanos: int | None = None
        self.same_nanos = 0  # lines in this stream with exactly last_nanos
        self.progress: Progress | None = None  # the open line's latest state, unsent
        self.shown_progress = ""

    @property
    def open(self) -> bool:
        """A line (or its timestamp) has begun and not ended."""
        return self.line is not None or bool(self.stamp)

    def feed(self, data: bytes) -> bool:
        """Deliver what `data` completes; False once following stopped."""
        pos, size = 0, len(data)
        while pos < size:
            if self.line is None:
                pos = self._read_stamp(data, pos)
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                if not self._body(data[pos:] if pos else data):
                    return False
                break
            if not (self._body(data[pos:end]) and self._end()):
                return False
            pos = end + 1
        return self._send_progress()

    def close(self) -> None:
        """The stream ended: its last line, even without a newline, is whole."""
        if self.line is None and self.stamp:
            self._begin(None, bytes(self.stamp))
        if self.line is not None:
            self._end()

    # ---- a line's start ------------------------------------------------------------------

    def _read_stamp(self, data: bytes, pos: int) -> int:
        """Read the timestamp prefix from `pos`; where the line's text starts."""
        limit = min(len(data), pos + MAX_STAMP_BYTES + 1 - len(self.stamp))
        space = data.find(b" ", pos, limit)
        newline = data.find(b"\n", pos, limit)
        if space >= 0 and (newline < 0 or space < newline):
            head = bytes(self.stamp) + data[pos:space]
            self.stamp.clear()
            nanos = parse_timestamp(head.decode("ascii", "replace"))
            self._begin(nanos, b"" if nanos is not None else head + b" ")
            return space + 1
        if newline >= 0 or len(self.stamp) + limit - pos > MAX_STAMP_BYTES:
            # no timestamp: a line as it is (the next chunk of text is its body)
            head = bytes(self.stamp)
            self.stamp.clear()
            self._begin(None, head)
            return pos
        self.stamp += data[pos:limit]
        return limit

    def _begin(self, nanos: int | None, body: bytes) -> None:
        """A line starts: decide from the cursor whether (and from which piece) it is new."""
        first = self.started == 0
        self.started += 1
        if nanos is None:
            # with sinceTime, the kubelet may start inside a long line that began before
            # it: that line's tail has no timestamp, and it was delivered before
            self.line = _Line(None, 0, deliver=not (self.resumed and first))
        else:
            if nanos == self.last_nanos:
                self.same_nanos += 1
            else:
                self.last_nanos, self.same_nanos = nanos, 1
            self.line = self._placed(nanos, self.same_nanos)
        self.progress, self.shown_progress = None, ""
        if body:
            self.block += body

    def _placed(self, nanos: int, index: int) -> _Line:
        position = self.follower._position
        if position is None or nanos > position[0]:
            return _Line(nanos, index)
        stamp, count, pieces = position
        if nanos < stamp or index < count or (index == count and not pieces):
            return _Line(nanos, index, deliver=False)
        if index == count:
            return _Line(nanos, index, skip=pieces)  # open when the stream was cut
        return _Line(nanos, index)

    # ---- a line's text -------------------------------------------------------------------

    def _body(self, data: bytes) -> bool:
        """Text of the open line: into the block, the block to the splitter when full."""
        line = self.line
        assert line is not None
        if not line.deliver or not data:
            return True
        pos = 0
        while len(self.block) + len(data) - pos >= BLOCK_BYTES:
            take = BLOCK_BYTES - len(self.block)
            self.block += data[pos : pos + take]
            pos += take
            block = bytes(self.block)
            self.block.clear()
            if not self._split(line, block, ending=False):
                return False
        self.block += data[pos:]
        return True

    def _end(self) -> bool:
        """The line ends: its last block with the newline, so the splitter gives the line's
        final text (of a `\\r` line, its last state)."""
        line = self.line
        assert line is not None
        self.line = None
        block = bytes(self.block) + b"\n"
        self.block.clear()
        self.progress = None
        if not line.deliver:
            return True
        return self._split(line, block, ending=True)

    def _split(self, line: _Line, block: bytes, ending: bool) -> bool:
        """Deliver what the splitter makes of `block`: the pieces past those delivered
        before, each moving the cursor; once the line has ended it is delivered whole."""
        for event in self.splitter.feed(block):
            if isinstance(event, LogLine):
                line.given += 1
                if line.given > line.skip and not self.follower._deliver(
                    event, line.at(line.given)
                ):
                    return False
            elif isinstance(event, Diagnosis) and event.reason == LONG_LINE:
                if not self.follower._say_long(event):
                    return False
            elif isinstance(event, Progress) and line.given >= line.skip:
                self.progress = event
        if ending and line.nanos is not None:
            self.follower._position = line.at(0)
        return True

    # ---- progress ------------------------------------------------------------------------

    def _send_progress(self) -> bool:
        """The open `\\r` line's latest state, at most once per chunk read (optional: the
        final text comes as a LogLine whatever happens here)."""
        line = self.line
        if line is None or not line.deliver or line.given < line.skip:
            return True
        latest = self._block_state() or self.progress
        self.progress = None
        if latest is None or latest.text == self.shown_progress:
            return True
        self.shown_progress = latest.text
        return self.follower._put(latest)

    def _block_state(self) -> Progress | None:
        """What a terminal shows of the block after its last `\\r`, if it has one."""
        block = self.block
        cr = block.rfind(b"\r", 0, max(0, len(block) - 1))
        if cr < 0:
            return None
        shown = bytes(block[cr + 1 :]).rstrip(b"\r")
        if not shown:
            return None
        text = shown.decode("utf-8", "replace")
        return Progress(self.follower.replica, text)


def _position(start: tuple[int, ...] | list[int] | None) -> Position | None:
    """A cursor given (or saved for %attach) as 2 or 3 numbers."""
    if not start:
        return None
    values = [int(v) for v in start]
    return (values[0], values[1], values[2] if len(values) > 2 else 0)


def _ended_or_restarted(instance: int) -> Callable[[ContainerView], bool]:
    return lambda view: not view.running or view.restarts > instance


def _gone_final_or_restarted(instance: int) -> Callable[[ContainerView], bool]:
    return lambda view: not view.exists or view.final or view.restarts > instance
