"""Container logs: one file per container instance, read the way the kubelet serves them.

Records are kept in the CRI log format (`<RFC3339Nano> <stream> <F|P> <text>`), one line per
record, on disk, so memory stays flat however much a process prints, and `previous`
still works after a restart (each instance has its own file).

Served as the kubelet serves them (k8s.io/cri-client pkg/logs ReadLogs): a line the runtime
split into 16 KiB partial (P) records comes out as one line, and with `timestamps=true`
only its first record's timestamp is printed, at the line's start (kubelets before the fix
of kubernetes#77603 printed one per record, in the middle of the line). `sinceTime` drops
records strictly before it, each on its own: a stream may start inside a long line, with
that line's later records and no timestamp. The file is read a block at a time.
"""

from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .timeutil import now_ns, rfc3339nano

#: How much of a log file one read takes (records are at most 16 KiB and a header).
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class LogRecord:
    ts_ns: int
    stream: str  # stdout | stderr
    partial: bool
    text: bytes


class ContainerLog:
    """The log of one container instance (one containerID)."""

    def __init__(self, path: Path, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self._cond = threading.Condition()
        self._writer = path.open("ab")
        self.size = 0
        self.lines = 0
        self.finished = False

    def append(self, stream: str, text: bytes, partial: bool = False) -> None:
        record = b"%d %s %s %s\n" % (
            now_ns(),
            stream.encode(),
            b"P" if partial else b"F",
            text.replace(b"\n", b" "),
        )
        with self._cond:
            if self.finished:
                return
            self._writer.write(record)
            self._writer.flush()
            self.size += len(record)
            if not partial:
                self.lines += 1
            self._cond.notify_all()

    def finish(self) -> None:
        """The instance has exited: followers drain what is left and stop."""
        with self._cond:
            if not self.finished:
                self.finished = True
                self._writer.close()
            self._cond.notify_all()

    def wait(self, offset: int, timeout: float) -> None:
        with self._cond:
            if self.size <= offset and not self.finished:
                self._cond.wait(timeout)

    def read(
        self, offset: int, limit: int = READ_BYTES, end: int | None = None
    ) -> tuple[list[LogRecord], int]:
        """Complete records from `offset`, about `limit` bytes of them (at least one), up
        to what has been committed (and `end`); and the offset after them."""
        with self._cond:
            stop = self.size if end is None else min(end, self.size)
        if stop <= offset:
            return [], offset
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                data = f.read(min(stop - offset, limit))
                while b"\n" not in data and offset + len(data) < stop:  # a huge record
                    data += f.read(min(stop - offset - len(data), limit))
        except FileNotFoundError:
            return [], stop
        whole = data.rfind(b"\n") + 1
        records = []
        for line in data[:whole].split(b"\n")[:-1]:
            ts, stream, tag, text = line.split(b" ", 3)
            records.append(LogRecord(int(ts), stream.decode(), tag == b"P", text))
        return records, offset + whole


def format_record(record: LogRecord, timestamps: bool) -> bytes:
    """One record as served; `timestamps`: prefix its time (a line's first record only)."""
    prefix = (rfc3339nano(record.ts_ns) + " ").encode() if timestamps else b""
    return prefix + record.text + (b"" if record.partial else b"\n")


def stream_log(
    log: ContainerLog,
    *,
    follow: bool = False,
    timestamps: bool = False,
    since_ns: int | None = None,
    tail_lines: int | None = None,
    limit_bytes: int | None = None,
    stream: str = "All",
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """The bytes `GET pods/x/log` returns, chunk by chunk; ends with the instance if following."""
    chunks = _served(log, follow, timestamps, since_ns, tail_lines, stream, stop)
    if limit_bytes is None:
        yield from chunks
        return
    sent = 0
    for chunk in chunks:
        if sent + len(chunk) >= limit_bytes:
            yield chunk[: limit_bytes - sent]
            return
        sent += len(chunk)
        yield chunk


def _served(
    log: ContainerLog,
    follow: bool,
    timestamps: bool,
    since_ns: int | None,
    tail_lines: int | None,
    stream: str,
    stop: threading.Event | None,
) -> Iterator[bytes]:
    """Each wanted record as served: a plain read serves what was committed when asked, a
    follow goes on until the instance has finished and everything is served."""
    end = None if follow else log.size
    new_line = True  # the record before ended a line (skipped ones count, as in ReadLogs)

    def wanted(r: LogRecord) -> bool:
        if since_ns is not None and r.ts_ns < since_ns:
            return False
        return stream == "All" or r.stream == stream.lower()

    def render(records: Iterable[LogRecord]) -> Iterator[bytes]:
        nonlocal new_line
        for r in records:
            if wanted(r):
                yield format_record(r, timestamps and new_line)
            new_line = not r.partial

    offset = 0
    if tail_lines is not None:
        kept: deque[LogRecord] = deque(maxlen=max(tail_lines, 0))
        records, offset = log.read(0, end=end)
        while records:
            kept.extend(filter(wanted, records))
            records, offset = log.read(offset, end=end)
        yield from render(kept)  # ReadLogs starts a tail as a new line
    while True:
        records, offset = log.read(offset, end=end)
        while records:
            yield from render(records)
            records, offset = log.read(offset, end=end)
        if not follow:
            return
        while True:
            if stop is not None and stop.is_set():
                return
            finished = log.finished
            if log.size > offset:
                break
            if finished:
                return
            log.wait(offset, 0.2)


class LogBook:
    """Every container instance's log, under one temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._logs: dict[str, ContainerLog] = {}
        self._by_pod: dict[str, list[str]] = {}

    def new_instance(
        self, pod_uid: str, container: str, restart: int, container_id: str
    ) -> ContainerLog:
        directory = self.root / pod_uid / container
        directory.mkdir(parents=True, exist_ok=True)
        log = ContainerLog(directory / f"{restart}.log", container_id)
        with self._lock:
            self._logs[container_id] = log
            self._by_pod.setdefault(pod_uid, []).append(container_id)
        return log

    def get(self, container_id: str) -> ContainerLog | None:
        with self._lock:
            return self._logs.get(container_id)

    def drop_pod(self, pod_uid: str) -> None:
        """A deleted pod's logs are gone, as on a real node."""
        with self._lock:
            ids = self._by_pod.pop(pod_uid, [])
            logs = [self._logs.pop(i) for i in ids if i in self._logs]
        for log in logs:
            log.finish()
        shutil.rmtree(self.root / pod_uid, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            logs = list(self._logs.values())
        for log in logs:
            log.finish()
