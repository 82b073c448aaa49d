"""A job's run directory (`~/.ciao/runs/<job>/`): what outlives the kernel that ran it.

    spec.json     what was submitted (framework, replicas, owner, backend, created, plan)
    events.jsonl  every event of the job, one record a line, in order (see `encode`)
    shown.json    how far into events.jsonl each notebook has shown (bytes), for %attach
                  of a local job: the only file reading a local job writes
    metrics.json  the metrics of its lines (backend/metrics.py), kept by the record's writer
                  with the byte of events.jsonl they cover (recorder.py)
    cursors.json  a Kubeflow job's: how far into each container's log was recorded
    supervisor    a local job's supervisor process: [pid, start time, boot id]
    replicas.json its replicas' processes, the same way
    work/         the job's own directory: its code (local jobs) and what it writes

A study's record (a `%tune` cell, ciao/tune/record.py) has the same shape, `backend:
study` in its spec.

The job runs in `work/` and never beside its record, so nothing it writes is taken for
the record. Directories are 0700 and files 0600: a job's code and logs are its user's.

Local jobs write events.jsonl from their supervisor; Kubeflow jobs from the kernel that
follows them (an %attach of a running one records what it sees, so `%logs` works once the
pods are gone; a record that has its verdict is never written again).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ciao.backend.identity import ProcessIdentity
from ciao.backend.metrics import Metrics
from ciao.backend.types import (
    Diagnosis,
    Event,
    JobDone,
    LogLine,
    LogLines,
    Progress,
    ReplicaState,
    StreamName,
    TrialUpdate,
)

#: A local job whose supervisor ended without writing a verdict (it was killed).
LOST = JobDone(False, "Lost", "its supervisor process ended without a verdict")
#: How many notebooks' "shown" marks a job keeps.
MAX_VIEWERS = 32

_EVENT_TYPES = {
    cls.__name__: cls for cls in (LogLine, Progress, ReplicaState, Diagnosis, JobDone, TrialUpdate)
}
#: `backend` of a study's record (a `%tune` cell): its driver runs here, its trials are
#: ordinary jobs with records of their own (ciao/tune/).
STUDY = "study"
#: Compact records: `o<replica>\t<text>` (a stdout line), `e…` (stderr), `p…` (progress of
#: a stdout line), `q…` (of a stderr line); any other event is a JSON object.
_LINE_TAGS: dict[tuple[type[LogLine | Progress], StreamName], str] = {
    (LogLine, "stdout"): "o",
    (LogLine, "stderr"): "e",
    (Progress, "stdout"): "p",
    (Progress, "stderr"): "q",
}
_TAG_TYPES = {ord(tag): (cls, stream) for (cls, stream), tag in _LINE_TAGS.items()}


def encode(event: Event) -> bytes:
    """One record: a compact line for log lines and progress (about 12 bytes more than the
    text), a JSON object for the rest."""
    if isinstance(event, LogLines):
        joined = "\n".join(event.lines)
        if joined.count("\n") == len(event.lines) - 1:  # no line holds a newline
            prefix = f"{_LINE_TAGS[(LogLine, event.stream)]}{event.replica}\t"
            return (prefix + joined.replace("\n", "\n" + prefix) + "\n").encode("utf-8", "replace")
        return encode_all(LogLine(event.replica, text, event.stream) for text in event.lines)
    if isinstance(event, LogLine | Progress) and "\n" not in event.text:
        tag = _LINE_TAGS[(type(event), event.stream)]
        return f"{tag}{event.replica}\t{event.text}\n".encode("utf-8", "replace")
    record = {"type": type(event).__name__, **dataclasses.asdict(event)}
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def encode_all(events: Iterable[Event]) -> bytes:
    """Records of several events, for one write (a reader sees all of them or a prefix)."""
    return b"".join(encode(event) for event in events)


def decode(line: bytes) -> Event | None:
    """The event of one record; None for a line that is not one (a torn last write)."""
    if not line.endswith(b"\n"):
        return None
    return _decode(line[:-1])


def _decode(body: bytes) -> Event | None:
    kind = _TAG_TYPES.get(body[0]) if body else None
    if kind is not None:
        tab = body.find(b"\t")
        if tab < 0:
            return None
        line_type, stream = kind
        return line_type(
            body[1:tab].decode("utf-8", "replace"),
            body[tab + 1 :].decode("utf-8", "replace"),
            stream,
        )
    try:
        record = json.loads(body)
        event_type = _EVENT_TYPES[record.pop("type")]
        if "tail" in record:
            record["tail"] = tuple(record["tail"])
        return event_type(**record)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _grouped(bodies: list[bytes], offset: int) -> Iterator[tuple[Event, int]]:
    """The events of complete records, runs of one replica's lines grouped."""
    prefix, run_end = b"", offset
    run: list[bytes] = []
    stream: StreamName = "stdout"
    for body in bodies:
        offset += len(body) + 1
        if run and body.startswith(prefix):
            run.append(body[len(prefix) :])
            run_end = offset
            continue
        if run:
            yield _lines(prefix, run, stream), run_end
            run = []
        kind = _TAG_TYPES.get(body[0]) if body else None
        tab = body.find(b"\t") if kind is not None and kind[0] is LogLine else -1
        if tab > 0 and kind is not None:
            prefix, run, run_end, stream = body[: tab + 1], [body[tab + 1 :]], offset, kind[1]
            continue
        event = _decode(body)
        if event is not None:
            yield event, offset
    if run:
        yield _lines(prefix, run, stream), run_end


def _metric_line(body: bytes) -> tuple[str, str] | None:
    """(replica, text) of a record that is a log line; None for any other."""
    if body[:1] in (b"o", b"e"):
        tab = body.find(b"\t")
        if tab < 0:
            return None
        return body[1:tab].decode("utf-8", "replace"), body[tab + 1 :].decode("utf-8", "replace")
    if body.startswith(b"{"):  # a line that held a newline is kept as JSON
        event = _decode(body)
        if isinstance(event, LogLine):
            return event.replica, event.text
    return None


def _lines(prefix: bytes, run: list[bytes], stream: StreamName) -> LogLines:
    text = b"\n".join(run).decode("utf-8", "replace")
    return LogLines(prefix[1:-1].decode("utf-8", "replace"), tuple(text.split("\n")), stream)


class RunDir:
    def __init__(self, root: Path, name: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"{name!r} cannot name a job")
        self.root = Path(root)
        self.path = self.root / name
        self.name = name

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def work(self) -> Path:
        """The job's working directory (local jobs' code is there)."""
        return self.path / "work"

    def exists(self) -> bool:
        return (self.path / "spec.json").is_file()

    def create(self) -> None:
        """The run directory and its work directory, private to the user."""
        private_dirs(self.root)
        for directory in (self.path, self.work):
            directory.mkdir(mode=0o700, exist_ok=True)
            directory.chmod(0o700)

    def start(self, backend: str, **details: Any) -> None:
        """The record of a job submitted now (by `backend`): its spec, with what that
        backend keeps of it (the one place a run record's spec is built)."""
        spec = {"name": self.name, "backend": backend, "created": time.time(), **details}
        self.write_spec(spec)

    def write_spec(self, spec: dict[str, Any]) -> None:
        self.create()
        write_atomic(self.path / "spec.json", json.dumps(spec, indent=1))

    def is_study(self) -> bool:
        """Whether this is a study's record (a `%tune` cell), not a job's."""
        return self.spec().get("backend") == STUDY

    def travels(self) -> str:
        """What travelled with the job's code from the notebook, as submitted (one line)."""
        return str(self.spec().get("travels") or "")

    def spec(self) -> dict[str, Any]:
        try:
            spec = json.loads((self.path / "spec.json").read_text())
            return spec if isinstance(spec, dict) else {}
        except (OSError, ValueError):
            return {}

    # ---- the event log ---------------------------------------------------------------

    def open_for_append(self) -> int:
        self.create()
        return os.open(self.events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def read_events(self, offset: int = 0, chunk: int = 1 << 18) -> Iterator[tuple[Event, int]]:
        """The complete events from byte `offset` on, each with the offset just after it.

        Read and decoded a chunk at a time; memory is bounded by the chunk and the longest
        record, whatever the size of the file.
        """
        for bodies, start in self._chunks(offset, chunk):
            for body in bodies:
                start += len(body) + 1
                event = _decode(body)
                if event is not None:
                    yield event, start

    def read_states(self, until: int, chunk: int = 1 << 18) -> Iterator[Event]:
        """The events before byte `until` that are not log lines or progress (replica
        states, diagnoses, a verdict): log records are passed over by their first byte,
        never decoded, so a record of gigabytes of log is skimmed, not parsed."""
        for bodies, start in self._chunks(0, chunk):
            for body in bodies:
                start += len(body) + 1
                if start > until:
                    return
                if body and body[0] in _TAG_TYPES:
                    continue
                event = _decode(body)
                if event is not None:
                    yield event

    def last_lines(self, replica: str, count: int, until: int, chunk: int = 1 << 18) -> list[str]:
        """`replica`'s last `count` log lines recorded before byte `until`: other records
        are passed over by their first bytes, never decoded."""
        prefixes = (f"o{replica}\t".encode(), f"e{replica}\t".encode())
        kept: deque[str] = deque(maxlen=count)
        for bodies, start in self._chunks(0, chunk):
            for body in bodies:
                start += len(body) + 1
                if start > until:
                    return list(kept)
                if body.startswith(prefixes):
                    kept.append(body[len(prefixes[0]) :].decode("utf-8", "replace"))
                elif body.startswith(b"{"):  # a line that held a newline is kept as JSON
                    event = _decode(body)
                    if isinstance(event, LogLine) and event.replica == replica:
                        kept.append(event.text)
        return list(kept)

    def size(self) -> int:
        """How many bytes of events are recorded."""
        try:
            return self.events_path.stat().st_size
        except FileNotFoundError:
            return 0

    # ---- metrics -----------------------------------------------------------------------

    def metrics(self) -> Metrics:
        """The job's metrics: what metrics.json kept and the metric lines recorded after
        the byte it covers (all of them, where there is no such file). Read, never
        written: a writer killed between two saves loses nothing."""
        return self.metrics_through()[0]

    def metrics_through(self) -> tuple[Metrics, int]:
        """The job's metrics (see `metrics`) and the byte of events.jsonl they cover."""
        metrics, offset = Metrics(), 0
        saved = self._json("metrics.json")
        if isinstance(saved, dict):
            kept, through = Metrics.from_dict(saved.get("metrics")), saved.get("offset")
            if kept is not None and isinstance(through, int) and 0 <= through <= self.size():
                metrics, offset = kept, through
        for bodies, start in self._chunks(offset, 1 << 18):
            for body in bodies:
                if b"=" in body:  # a line without one holds no metric: never decoded
                    line = _metric_line(body)
                    if line is not None:
                        metrics.add_line(*line)
            offset = start + sum(len(body) + 1 for body in bodies)
        return metrics, offset

    def write_metrics(self, metrics: Metrics, offset: int) -> None:
        """Keep `metrics`, which cover events.jsonl up to byte `offset` (its writer's)."""
        saved = {"offset": offset, "metrics": metrics.as_dict()}
        write_atomic(self.path / "metrics.json", json.dumps(saved))

    def read_batches(self, offset: int = 0, chunk: int = 1 << 18) -> Iterator[tuple[Event, int]]:
        """As `read_events`, with consecutive lines of one replica's stream as one
        `LogLines` (how the kernel follows a job: per chunk, not per line)."""
        for bodies, start in self._chunks(offset, chunk):
            yield from _grouped(bodies, start)

    def _chunks(self, offset: int, chunk: int) -> Iterator[tuple[list[bytes], int]]:
        """The complete records of each chunk read (without their newlines), and the
        offset of the first; a torn last record waits for the rest of it."""
        try:
            handle = self.events_path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            handle.seek(offset)
            pending = b""
            while data := handle.read(chunk):
                if pending:
                    data, pending = pending + data, b""
                end = data.rfind(b"\n")
                if end < 0:
                    pending = data
                    continue
                pending = data[end + 1 :]
                yield data[:end].split(b"\n"), offset
                offset += end + 1

    def verdict(self) -> JobDone | None:
        """The job's verdict as every view says it: the recorded one; for a local job whose
        supervisor is gone without writing one, LOST (said, never written); None while it
        runs, or for a Kubeflow record without one (its cluster knows)."""
        final = self.final()
        if final is not None or self.spec().get("backend", "local") != "local":
            return final
        supervisor = self.supervisor()
        return None if supervisor is not None and supervisor.is_running() else LOST

    def final(self) -> JobDone | None:
        """The job's verdict, if it has one (the last event of a finished job)."""
        last = None
        for event, _ in self.read_events(self._tail_offset()):
            last = event
        return last if isinstance(last, JobDone) else None

    def _tail_offset(self) -> int:
        size = self.size()
        if size <= 8192:
            return 0
        with self.events_path.open("rb") as handle:
            handle.seek(size - 8192)
            skip = handle.read().find(b"\n")
        return size - 8192 + skip + 1 if skip >= 0 else 0

    # ---- how far each notebook has shown --------------------------------------------

    def shown(self, viewer: str) -> int:
        """How far into the record `viewer` (a notebook, see `viewer_of`) has shown."""
        marks = self._json("shown.json")
        mark = marks.get(viewer) if isinstance(marks, dict) else None
        return mark if isinstance(mark, int) and mark >= 0 else 0

    def set_shown(self, viewer: str, offset: int) -> None:
        """Remember how far `viewer` has shown, beside the record (never in it); under a
        lock, as two kernels may follow one job; nothing once the record is deleted."""
        try:
            lock = os.open(self.path / ".shown.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        except FileNotFoundError:  # %delete took the record meanwhile
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marks = self._json("shown.json")
            marks = marks if isinstance(marks, dict) else {}
            marks.pop(viewer, None)  # the newest last: the oldest go first
            marks[viewer] = offset
            if len(marks) > MAX_VIEWERS:  # a job is seldom watched by many notebooks
                marks = dict(list(marks.items())[-MAX_VIEWERS:])
            write_atomic(self.path / "shown.json", json.dumps(marks))
        except FileNotFoundError:
            return
        finally:
            os.close(lock)

    # ---- the supervisor and replicas (local jobs) --------------------------------------

    def supervisor(self) -> ProcessIdentity | None:
        return ProcessIdentity.from_list(self._json("supervisor"))

    def set_supervisor(self, identity: ProcessIdentity) -> None:
        write_atomic(self.path / "supervisor", json.dumps(identity.as_list()))

    def replicas(self) -> dict[str, ProcessIdentity]:
        recorded = self._json("replicas.json")
        if not isinstance(recorded, dict):
            return {}
        found = {name: ProcessIdentity.from_list(data) for name, data in recorded.items()}
        return {name: identity for name, identity in found.items() if identity is not None}

    def set_replicas(self, identities: dict[str, ProcessIdentity]) -> None:
        data = {name: identity.as_list() for name, identity in identities.items()}
        write_atomic(self.path / "replicas.json", json.dumps(data))

    def _json(self, name: str) -> Any:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def created(self) -> float:
        return float(self.spec().get("created") or modified(self.path) or time.time())


def viewer_of(owner: dict[str, str]) -> str:
    """Who is watching, for "shown" marks: the notebook (its file, as the frontend names
    it), else the kernel; a restarted or new kernel of the same notebook goes on where it
    left off."""
    return owner.get("notebook-id") or owner.get("kernel-id") or ""


def list_run_dirs(root: Path) -> list[RunDir]:
    """Every job with a run directory under `root`, newest first."""
    try:
        names = [p.name for p in Path(root).iterdir() if (p / "spec.json").is_file()]
    except FileNotFoundError:
        return []
    dirs = [RunDir(root, name) for name in names]
    return sorted(dirs, key=lambda d: d.created(), reverse=True)


def private_dirs(root: Path) -> None:
    """`root` (and `~/.ciao` when it is inside it), created 0700 and kept so."""
    root = Path(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for directory in (root, *[p for p in root.parents if p.name == ".ciao"]):
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)


def write_atomic(path: Path, text: str) -> None:
    """`text` as the whole of `path` (readers see the old or the new, never half), 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def modified(path: Path) -> float | None:
    """When `path` was last written (seconds since the epoch); None if it is not there."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None
