"""Container logs: one file per container instance, read the way the kubelet serves them.

Records are kept in the CRI log format (`<RFC3339Nano> <stream> <F|P> <text>`), one line per
record, on disk, so memory stays flat however much a process prints, and `previous`
still works after a restart (each instance has its own file).
"""

from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .timeutil import now_ns, rfc3339nano


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

    def read(self, offset: int) -> tuple[list[LogRecord], int]:
        """Complete records from `offset` up to what has been committed."""
        with self._cond:
            end = self.size
        if end <= offset:
            return [], offset
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                data = f.read(end - offset)
        except FileNotFoundError:
            return [], end
        records = []
        for line in data.split(b"\n")[:-1]:
            ts, stream, tag, text = line.split(b" ", 3)
            records.append(LogRecord(int(ts), stream.decode(), tag == b"P", text))
        return records, end


def format_record(record: LogRecord, timestamps: bool) -> bytes:
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
    sent = 0
    offset = 0

    def wanted(r: LogRecord) -> bool:
        if since_ns is not None and r.ts_ns < since_ns:
            return False
        return stream == "All" or r.stream == stream.lower()

    records, offset = log.read(0)
    records = [r for r in records if wanted(r)]
    if tail_lines is not None:
        records = list(deque(records, maxlen=max(tail_lines, 0)))
    while True:
        for r in records:
            chunk = format_record(r, timestamps)
            if limit_bytes is not None and sent + len(chunk) >= limit_bytes:
                yield chunk[: limit_bytes - sent]
                return
            sent += len(chunk)
            yield chunk
        if not follow:
            return
        while True:
            if stop is not None and stop.is_set():
                return
            finished = log.finished
            records, offset = log.read(offset)
            records = [r for r in records if wanted(r)]
            if records or finished:
                break
            log.wait(offset, 0.2)
        if not records:
            return


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
