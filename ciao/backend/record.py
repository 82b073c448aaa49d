"""A job's run directory (`~/.ciao/runs/<job>/`): what outlives the kernel that ran it.

    spec.json     what was submitted (framework, replicas, owner, backend, created)
    code.py       the cell's training code (local jobs run it from here)
    events.jsonl  every event of the job, one JSON object a line, in order
    shown         how far into events.jsonl a notebook has shown (bytes), for %attach
    supervisor    the pid of a local job's supervisor process

Local jobs write events.jsonl from their supervisor; Kubeflow jobs from the kernel that
follows them, so `%logs` works once pods (or processes) are gone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ciao.backend.types import Diagnosis, Event, JobDone, LogLine, ReplicaState

_EVENT_TYPES = {cls.__name__: cls for cls in (LogLine, ReplicaState, Diagnosis, JobDone)}


def encode(event: Event) -> bytes:
    record = {"type": type(event).__name__, **dataclasses.asdict(event)}
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def decode(line: bytes) -> Event | None:
    """The event of one line; None for a line that is not one (a torn last write)."""
    try:
        record = json.loads(line)
        cls = _EVENT_TYPES[record.pop("type")]
        return cls(**record)
    except (ValueError, KeyError, TypeError):
        return None


class RunDir:
    def __init__(self, root: Path, name: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} cannot name a job")
        self.path = Path(root) / name
        self.name = name

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    def exists(self) -> bool:
        return (self.path / "spec.json").is_file()

    def write_spec(self, spec: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.path / "spec.json", json.dumps(spec, indent=1))

    def spec(self) -> dict[str, Any]:
        try:
            spec = json.loads((self.path / "spec.json").read_text())
            return spec if isinstance(spec, dict) else {}
        except (OSError, ValueError):
            return {}

    # ---- the event log ---------------------------------------------------------------

    def open_for_append(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True)
        return os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def read_events(self, offset: int = 0, chunk: int = 1 << 16) -> Iterator[tuple[Event, int]]:
        """The complete events from byte `offset` on, each with the offset just after it."""
        try:
            handle = self.events_path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            handle.seek(offset)
            pending = b""
            while True:
                data = handle.read(chunk)
                if not data:
                    return
                pending += data
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    offset += end + 1 - start
                    event = decode(pending[start : end + 1])
                    start = end + 1
                    if event is not None:
                        yield event, offset
                pending = pending[start:]

    def final(self) -> JobDone | None:
        """The job's verdict, if it has one (the last event of a finished job)."""
        last = None
        for event, _ in self.read_events(self._tail_offset()):
            last = event
        return last if isinstance(last, JobDone) else None

    def _tail_offset(self) -> int:
        try:
            size = self.events_path.stat().st_size
        except FileNotFoundError:
            return 0
        if size <= 8192:
            return 0
        with self.events_path.open("rb") as handle:
            handle.seek(size - 8192)
            skip = handle.read().find(b"\n")
        return size - 8192 + skip + 1 if skip >= 0 else 0

    # ---- how far a notebook has shown ----------------------------------------------

    def shown(self) -> int:
        try:
            return int((self.path / "shown").read_text() or 0)
        except (OSError, ValueError):
            return 0

    def set_shown(self, offset: int) -> None:
        _write_atomic(self.path / "shown", str(offset))

    # ---- the supervisor (local jobs) -------------------------------------------------

    def supervisor_pid(self) -> int | None:
        try:
            return int((self.path / "supervisor").read_text())
        except (OSError, ValueError):
            return None

    def set_supervisor_pid(self, pid: int) -> None:
        _write_atomic(self.path / "supervisor", str(pid))

    def created(self) -> float:
        return float(self.spec().get("created") or _mtime(self.path))


def list_run_dirs(root: Path) -> list[RunDir]:
    """Every job with a run directory under `root`, newest first."""
    try:
        names = [p.name for p in Path(root).iterdir() if (p / "spec.json").is_file()]
    except FileNotFoundError:
        return []
    dirs = [RunDir(root, name) for name in names]
    return sorted(dirs, key=lambda d: d.created(), reverse=True)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
