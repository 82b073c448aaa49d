"""Long lines on the Kubeflow backend: a container log read with `timestamps=true` arrives in
64 KiB pieces, each once, however the stream is chunked, cut and resumed, in bounded memory;
a follower that dies or is stopped before its log's end says so in the cell.

Scripted log responses pin down the cases a real cluster produces by chance (a stream cut
inside a line, a resumed stream starting inside an earlier line); the test cluster, over
the real `kubernetes` client, checks the whole path with a 10 MB and a 32 MB line.
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterable, Iterator

import pytest
from fakecluster import FakeCluster
from fakecluster.logs import ContainerLog, stream_log
from shipping import ship

from ciao.backend.kubeflow import log_follower
from ciao.backend.kubeflow.backend import KubeflowBackend
from ciao.backend.kubeflow.client import connect, lines
from ciao.backend.kubeflow.log_follower import ContainerFollower, ContainerView, since_time
from ciao.backend.splitter import MAX_LINE_BYTES, LineSplitter
from ciao.backend.types import Diagnosis, Event, Idle, JobDone, LogLine, Progress
from ciao.config import parse_config
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.configmap import ConfigMapCode

pytestmark = pytest.mark.timeout(120)

T0 = 1_714_557_600 * 1_000_000_000  # 2024-05-01T10:00:00Z
POD = "/api/v1/namespaces/default/pods/ciao-long-master-0"


def stamp(nanos: int) -> bytes:
    """The kubelet's timestamp prefix (RFC 3339 with nine fraction digits) and its space."""
    return since_time(nanos)[:-1].encode() + b".%09dZ " % (nanos % 1_000_000_000)


def stamped(lines: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(stamp(nanos) + text + b"\n" for nanos, text in lines)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Scripted:
    """A cluster whose log requests get the scripted responses in turn (each a list of
    chunks, or an exception raised after them); it records every query."""

    def __init__(self, *responses: list[bytes] | tuple[list[bytes], Exception]) -> None:
        self.responses = list(responses)
        self.queries: list[dict] = []

    def stream(self, path, query, timeout=None):
        self.queries.append(query)
        script = self.responses.pop(0) if self.responses else []
        chunks, error = script if isinstance(script, tuple) else (script, None)
        return Response(chunks, error)

    @property
    def served(self) -> int:
        return len(self.queries)


class Response:
    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error = chunks, error

    def stream(self, chunk_size, decode_content=True) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        pass


def run_follower(cluster, view, start=None) -> tuple[ContainerFollower, list[Event]]:
    seen: list[Event] = []
    follower = ContainerFollower(
        cluster,
        POD,
        "pytorch",
        "master-0",
        view,
        threading.Condition(),
        lambda event: seen.append(event) or True,
        start=start,
        job="ciao-long",
    )
    follower.start().join(60)
    assert follower.done.is_set()
    return follower, seen


def ended() -> ContainerView:
    return ContainerView(started=True, final=True)


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, LogLine)]


# ---- pieces ------------------------------------------------------------------------------

LINES = [
    (T0, b"short"),
    (T0 + 1, b"x" * (3 * MAX_LINE_BYTES + 17)),
    (T0 + 1, "é€😀".encode() * 20_000),  # multi-byte characters across piece boundaries
    (T0 + 2, b"bad \xff\xfe utf-8"),
    (T0 + 3, b"progress  5%\rprogress 50%\rprogress 100%"),
    (T0 + 3, b"abc\r\r"),
    (T0 + 4, b"crlf\r"),
    (T0 + 5, b"y" * 100_000 + b"\r" + b"z" * 150_000),  # rewritten after 64 KiB: pieces
    (T0 + 6, b""),
    (T0 + 7, b"last"),
]


@pytest.mark.parametrize("size", [7, 4096, 65_536, 1 << 22])
def test_a_log_is_cut_into_the_same_pieces_however_its_stream_is_chunked(size):
    log = stamped(LINES)
    _, seen = run_follower(Scripted(chunked(log, size)), ended)
    _, whole = run_follower(Scripted([log]), ended)
    assert texts(seen) == texts(whole)
    assert all(len(text.encode()) <= MAX_LINE_BYTES for text in texts(seen))
    long_lines = [e for e in seen if isinstance(e, Diagnosis)]
    assert [d.reason for d in long_lines] == ["LongLine"]  # said once per container


def test_pieces_join_into_each_line_and_cr_lines_arrive_as_their_final_text():
    _, seen = run_follower(Scripted(chunked(stamped(LINES), 1000)), ended)
    got = texts(seen)
    assert got[0] == "short"
    assert "".join(got[1:5]) == "x" * (3 * MAX_LINE_BYTES + 17)
    assert "".join(got[5:8]) == "é€😀" * 20_000
    assert got[8] == b"bad \xff\xfe utf-8".decode("utf-8", "replace")
    assert got[9:12] == ["progress 100%", "abc", "crlf"]
    assert got[-2:] == ["", "last"]
    assert all("\r" not in text for text in got)


def test_an_open_cr_line_shows_its_latest_state_as_progress_and_ends_as_one_line():
    log = stamped([(T0, b"\r 10%\r 20%\r 30%\r100%")])
    _, seen = run_follower(Scripted(chunked(log, 40)), ended)
    progress = [e.text for e in seen if isinstance(e, Progress)]
    assert texts(seen) == ["100%"]
    states = (" 10%", " 20%", " 30%", "100%")
    assert progress and all(any(s.startswith(p) for s in states) for p in progress), progress


# ---- cut and resumed --------------------------------------------------------------------


def test_a_stream_cut_inside_a_long_line_resumes_without_losing_or_repeating_a_piece():
    first = stamped([(T0, b"before")]) + stamp(T0 + 10) + b"a" * 200_000  # cut: no newline
    tail_of_earlier = b"q" * 5000 + b"\n"  # sinceTime can start inside an earlier line
    whole = stamped([(T0, b"before"), (T0 + 10, b"a" * 200_000 + b"b" * 100_000)])
    again = tail_of_earlier + whole + stamped([(T0 + 20, b"after")])
    cluster = Scripted(chunked(first, 30_000), chunked(again, 50_000))
    follower, seen = run_follower(
        cluster,
        lambda: ContainerView(started=True, running=cluster.served == 0, final=cluster.served > 0),
    )
    got = texts(seen)
    assert got[0] == "before" and got[-1] == "after"
    assert "".join(got[1:-1]) == "a" * 200_000 + "b" * 100_000
    assert got.count("before") == 1 and "q" not in "".join(got)
    assert all(len(text) <= MAX_LINE_BYTES for text in got)
    assert cluster.queries[0]["follow"] and cluster.queries[1]["sinceTime"] == since_time(T0 + 10)
    assert follower.cursor == (T0 + 20, 1)


def test_the_cursor_of_an_open_line_counts_its_pieces_and_attach_resumes_from_it():
    """A cursor saved while a line was open (%attach from a detached job) delivers the rest
    of that line, and none of the pieces before."""
    first = stamp(T0) + b"a" * 300_000
    cut = Scripted(chunked(first, 65_536))  # then the pod is gone (or the kernel detached)
    follower, seen = run_follower(
        cut, lambda: ContainerView(exists=cut.served == 0, started=True, running=True)
    )
    cursor = follower.cursor
    assert cursor is not None and cursor[:2] == (T0, 1) and cursor[2] >= 1
    whole = stamped([(T0, b"a" * 300_000 + b"b" * 10)])
    _, rest = run_follower(Scripted([whole]), ended, start=cursor)
    assert "".join(texts(seen) + texts(rest)) == "a" * 300_000 + "b" * 10
    assert len(texts(seen)) == cursor[2]


def test_lines_at_the_same_instant_are_told_apart_by_their_count():
    log = stamped([(T0, b"one"), (T0, b"two"), (T0, b"x" * 100_000), (T0, b"three")])
    _, seen = run_follower(Scripted([log]), ended, start=(T0, 2))
    assert "".join(texts(seen)) == "x" * 100_000 + "three"


def test_a_long_line_without_a_newline_at_the_end_of_the_log_is_delivered_whole():
    log = stamped([(T0, b"first")]) + stamp(T0 + 1) + b"n" * 1_000_000
    _, seen = run_follower(Scripted(chunked(log, 65_536)), ended)
    got = texts(seen)
    assert got[0] == "first" and "".join(got[1:]) == "n" * 1_000_000


def test_a_32_mb_line_is_read_in_bounded_memory():
    """The follower holds a chunk, a block and the splitter's open line, never the line:
    its peak allocation stays under 2 MiB (a line held whole would be 32 MiB)."""

    class Lazy(Response):
        def stream(self, chunk_size, decode_content=True):
            yield stamp(T0)
            for _ in range(512):
                yield b"m" * 65_536
            yield b"\n"

    class LazyCluster(Scripted):
        def stream(self, path, query, timeout=None):
            self.queries.append(query)
            return Lazy([])

    size = 0

    def count(event):
        nonlocal size
        if isinstance(event, LogLine):
            size += len(event.text)  # taken and let go, as the kernel does
        return True

    tracemalloc.start()
    try:
        follower = ContainerFollower(
            LazyCluster(), POD, "pytorch", "master-0", ended, threading.Condition(), count
        )
        follower._run()  # on this thread, which tracemalloc traces
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 32 << 20
    assert peak < 2 << 20, peak


# ---- a follower that stops before the end says so ---------------------------------------


def test_a_follower_that_dies_puts_a_diagnosis_naming_the_command_with_the_rest(monkeypatch):
    class Failing(LineSplitter):
        fed = 0

        def feed(self, data: bytes) -> list[Event]:
            Failing.fed += 1
            if Failing.fed > 2:
                raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "invalid start byte")
            return super().feed(data)

    monkeypatch.setattr(log_follower, "LineSplitter", Failing)
    log = stamped([(T0 + i, f"line {i}".encode()) for i in range(5)])
    follower, seen = run_follower(Scripted(chunked(log, 40)), ended)
    assert texts(seen) == ["line 0", "line 1"]
    (diagnosis,) = [e for e in seen if isinstance(e, Diagnosis)]
    assert diagnosis.replica == "master-0" and diagnosis.reason == "LogsLost"
    assert "UnicodeDecodeError" in diagnosis.hint
    assert "`%logs ciao-long master-0`" in diagnosis.hint


class Blocking:
    """A cluster whose log gives one line, then nothing until the stream is closed (a long
    log still being read); a stream opened after that fails at once."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.reading = threading.Event()

    def stream(self, path, query, timeout=None):
        return _BlockingResponse(self)

    def close(self) -> None:
        self.closed.set()

    def _chunks(self) -> Iterator[bytes]:
        if not self.closed.is_set():
            yield stamped([(T0, b"first")])
            self.reading.set()
            self.closed.wait(30)
        raise ConnectionResetError("closed")


class _BlockingResponse:
    def __init__(self, cluster: Blocking) -> None:
        self.cluster = cluster

    def stream(self, chunk_size, decode_content=True) -> Iterator[bytes]:
        return self.cluster._chunks()

    def close(self) -> None:
        self.cluster.close()


def follow_blocking(view: ContainerView, how: str) -> list[Event]:
    cluster = Blocking()
    seen: list[Event] = []
    follower = ContainerFollower(
        cluster,
        POD,
        "pytorch",
        "master-0",
        lambda: view,
        threading.Condition(),
        lambda event: seen.append(event) or True,
        job="ciao-long",
    ).start()
    assert cluster.reading.wait(10)
    if how == "abandon":
        follower.abandon()  # the job ended a while ago (Follow's drain grace)
    else:
        follower.stop()  # an interrupt or a detach
    follower.join(10)
    assert follower.done.is_set()
    return seen


def test_a_follower_stopped_at_the_jobs_end_inside_an_ended_containers_log_says_so():
    seen = follow_blocking(ContainerView(started=True, final=True), "abandon")
    assert texts(seen) == ["first"]
    (diagnosis,) = [e for e in seen if isinstance(e, Diagnosis)]
    assert diagnosis.reason == "LogsLost" and "when the job ended" in diagnosis.hint
    assert "`%logs ciao-long master-0`" in diagnosis.hint


@pytest.mark.parametrize(
    "view, how",
    [
        (ContainerView(started=True, running=True), "abandon"),  # a PS left running
        (ContainerView(started=True, final=True), "stop"),  # interrupt, detach
    ],
)
def test_a_follower_stopped_on_purpose_says_nothing(view, how):
    seen = follow_blocking(view, how)
    assert texts(seen) == ["first"]
    assert not [e for e in seen if isinstance(e, Diagnosis)]


# ---- whole lines, for watch events ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 10, 1 << 20])
def test_client_lines_are_whole_lines_whatever_the_chunks_and_a_cut_last_line_last(size):
    data = b"one\n\n" + b"long" * 50_000 + b"\nlast, cut"
    got = list(lines(Response(chunked(data, size))))
    assert got == [b"one\n", b"\n", b"long" * 50_000 + b"\n", b"last, cut"]


# ---- the test cluster serves long lines as the kubelet does ------------------------------


def test_the_test_cluster_stamps_a_partial_line_once_and_since_can_start_inside_it(tmp_path):
    """CRI stores a line over 16 KiB as partial (P) records; `ReadLogs` prints the
    timestamp of the first only, and `sinceTime` filters records one by one."""
    log = ContainerLog(tmp_path / "0.log", "containerd://x")
    log.append("stdout", b"a" * 16384, partial=True)
    log.append("stdout", b"b" * 16384, partial=True)
    log.append("stdout", b"c" * 10)
    log.append("stdout", b"next")
    log.finish()
    records, _ = log.read(0)
    served = b"".join(stream_log(log, timestamps=True)).split(b"\n")
    assert [line.split(b" ", 1)[1] for line in served[:2]] == [
        b"a" * 16384 + b"b" * 16384 + b"c" * 10,
        b"next",
    ]
    assert served[0].count(b"Z ") == 1
    inside = b"".join(stream_log(log, timestamps=True, since_ns=records[1].ts_ns))
    assert inside.startswith(b"b" * 16384 + b"c" * 10 + b"\n")  # no timestamp: a line's tail
    assert inside.split(b"\n")[1].endswith(b"Z next")


# ---- the whole path: the test cluster over the real client -------------------------------


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def backend(cluster, tmp_path):
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = parse_config({"backend": "kubeflow", "kubeconfig": str(kubeconfig)}, None)
    yield ConfigMapCode(config.images), KubeflowBackend(connect(config))
    cluster.clear_faults()
    for resource in ("pytorchjobs", "configmaps"):
        for obj in cluster.list(resource, "default"):
            cluster.delete(resource, "default", obj["metadata"]["name"], propagation="Foreground")
    cluster.wait_for(lambda: cluster.list("pytorchjobs", "default") == [], timeout=20)


HUGE = (
    "%master=1\nimport sys, time\n"
    "sys.stdout.buffer.write(b'a' * (10 << 20) + b'\\n')\n"
    "sys.stdout.buffer.write(b'b' * (32 << 20))\n"
    "sys.stdout.flush()\n"
    "time.sleep(1.5)  # still running: the log is read by follow streams, and cut\n"
)


def run_job(backend, cell: str, name: str) -> list[Event]:
    s2i, kubeflow = backend
    p = MagicInterpreter(name_factory=lambda: name).preprocess(cell)
    job = kubeflow.exec_code(kubeflow.dry_run(p, ship(s2i, p)))
    return [e for e in kubeflow.get_logs(job) if not isinstance(e, Idle)]


def test_a_10_mb_line_and_a_32_mb_line_cut_twice_arrive_whole_in_pieces(backend, cluster):
    # the first follow is cut inside the 10 MB line, the second (which starts again at that
    # line) inside the 32 MB one; the third reads on to the end
    early = cluster.inject("log_cut", pod="*-master-0", after_bytes=3_000_000)
    late = cluster.inject("log_cut", pod="*-master-0", after_bytes=25_000_000)
    events = run_job(backend, HUGE, "ciao-huge")
    pieces = [e.text for e in events if isinstance(e, LogLine)]
    assert "".join(pieces) == "a" * (10 << 20) + "b" * (32 << 20)
    assert max(len(piece) for piece in pieces) <= MAX_LINE_BYTES
    assert len(pieces) == (42 << 20) // MAX_LINE_BYTES  # both are whole multiples: no repeat
    diagnoses = [e for e in events if isinstance(e, Diagnosis)]
    assert [(d.replica, d.reason) for d in diagnoses] == [("master-0", "LongLine")]
    assert isinstance(events[-1], JobDone) and events[-1].succeeded
    assert early.fired == 1 and late.fired == 1


def test_a_follower_that_dies_on_the_cluster_shows_a_diagnosis_and_the_job_ends(
    backend, cluster, monkeypatch
):
    def broken(text: str) -> int | None:
        raise ValueError(f"malformed log line {text[:20]!r}")

    monkeypatch.setattr(log_follower, "parse_timestamp", broken)
    events = run_job(backend, "%master=1\nprint('hello')", "ciao-dies")
    (diagnosis,) = [e for e in events if isinstance(e, Diagnosis)]
    assert (diagnosis.replica, diagnosis.reason) == ("master-0", "LogsLost")
    assert "malformed log line" in diagnosis.hint and "%logs ciao-dies master-0" in diagnosis.hint
    assert isinstance(events[-1], JobDone)
