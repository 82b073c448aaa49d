"""`%procs=N` locally: N processes per replica, with the ranks torchrun would give them."""

from __future__ import annotations

import collections

from ciao.backend.local.backend import LocalBackend
from ciao.backend.local.launcher import worker_environment
from ciao.backend.splitter import LineSplitter
from ciao.backend.types import Idle, JobDone, LogLine, Progress, one_per_line
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.types import Shipment

PRINT_RANKS = (
    "import os\n"
    "keys = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK')\n"
    "for i in range(100):\n"
    "    print(*(os.environ[k] for k in keys), i)\n"
)


def run(tmp_path, cell: str, code: str) -> list:
    source = tmp_path / "code.py"
    source.write_text(code)
    backend = LocalBackend(tmp_path / "runs", stop_grace=1.0)
    parameter = MagicInterpreter().preprocess(cell)
    job = backend.exec_code(backend.dry_run(parameter, Shipment(image=str(source))))
    return [e for e in one_per_line(backend.get_logs(job)) if not isinstance(e, Idle)]


def test_every_process_gets_torchruns_ranks_and_whole_lines(tmp_path):
    """Whole lines, each prefixed with its process's local rank as torchrun --tee 3 does."""
    events = run(tmp_path, "%nodes=2\n%procs=3\nx", PRINT_RANKS)
    lines = [e for e in events if isinstance(e, LogLine)]
    assert all(len(e.text.split()) == 6 for e in lines), "no line is cut by another process"
    seen = collections.defaultdict(set)
    for line in lines:
        prefix, text = line.text.split(":", 1)
        rank, local, world, local_world, group, _ = text.split()
        assert prefix == f"[default{local}]"
        assert (world, local_world) == ("6", "3")
        assert int(rank) == int(group) * 3 + int(local)
        seen[line.replica].add(int(rank))
    assert seen == {"master-0": {0, 1, 2}, "worker-0": {3, 4, 5}}
    assert len(lines) == 600
    assert isinstance(events[-1], JobDone) and events[-1].succeeded


def test_one_failing_process_stops_the_others_and_fails_its_replica_with_its_code(tmp_path):
    code = "import os, sys, time\nif os.environ['RANK'] == '1':\n    sys.exit(5)\ntime.sleep(60)\n"
    events = run(tmp_path, "%nodes=1\n%procs=2\nx", code)
    done = events[-1]
    assert isinstance(done, JobDone) and not done.succeeded
    assert (done.failed_replica, done.exit_code) == ("master-0", 5)


def test_the_worker_environment_is_torchruns():
    base = {"PET_NODE_RANK": "1", "PET_NNODES": "2", "MASTER_PORT": "29500"}
    env = worker_environment(base, 4, 2)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("6", "2", "8")
    assert env["MASTER_PORT"] == "29500" and env["PET_NPROC_PER_NODE"] == "4"


DAEMON = """
import os, sys, time
marker = sys.argv[1] if len(sys.argv) > 1 else None
if os.fork() == 0:
    os.setsid()  # a daemon: its own session, our stdout still open
    if os.fork() == 0:
        open(os.environ['DAEMON_PID_FILE'], 'w').write(str(os.getpid()))
        time.sleep(60)
    os._exit(0)
if os.fork() == 0:
    os.setpgid(0, 0)  # another group, the same session
    open(os.environ['GROUP_PID_FILE'], 'w').write(str(os.getpid()))
    time.sleep(60)
time.sleep(0.5)
print('replica done')
"""


def test_a_process_left_holding_the_replicas_output_does_not_hold_the_job(tmp_path, monkeypatch):
    import os
    import signal

    from ciao.backend.types import Diagnosis

    daemon_file, group_file = tmp_path / "daemon.pid", tmp_path / "group.pid"
    monkeypatch.setenv("DAEMON_PID_FILE", str(daemon_file))
    monkeypatch.setenv("GROUP_PID_FILE", str(group_file))
    events = run(tmp_path, "%framework=pytorch\n%master=1\nx", DAEMON)  # the test's timeout guards
    daemon = int(daemon_file.read_text())
    try:
        assert isinstance(events[-1], JobDone) and events[-1].succeeded
        texts = [e.text for e in events if isinstance(e, LogLine)]
        assert "replica done" in texts
        left_open = [e for e in events if isinstance(e, Diagnosis)]
        assert left_open and left_open[0].reason == "OutputLeftOpen"
        group_member = int(group_file.read_text())
        assert not alive(group_member), "the replica's session went with it"
    finally:
        os.kill(daemon, signal.SIGKILL)


def alive(pid: int) -> bool:
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


class Writes(list):
    """A target that keeps each write apart, as the replica's pipe passes them on."""

    def write(self, data: bytes) -> None:
        self.append(data)

    def flush(self) -> None:
        pass


def relayed(*chunks_by_rank: tuple[int, bytes]) -> list[bytes]:
    """What the launcher writes for chunks each process writes, in this order."""
    from ciao.backend.local.launcher import _ProgressOwner, _Relayed

    out = Writes()
    progress = _ProgressOwner()
    streams: dict[int, _Relayed] = {}
    for rank, chunk in chunks_by_rank:
        if rank not in streams:
            streams[rank] = _Relayed(out, f"[default{rank}]:".encode(), rank, progress)
        streams[rank].feed(chunk)
    for stream in streams.values():
        stream.close()
    return out


def test_relayed_output_marks_each_line_once_and_keeps_progress_live():
    got = relayed((1, b"a\nb"), (1, b"c\n"), (1, b"\r10%"), (1, b"\r20%"), (1, b"\rdone\n"))
    assert b"".join(got) == (
        b"[default1]:a\n[default1]:bc\n[default1]:10%\r[default1]:20%\r[default1]:done\n"
    )
    assert relayed((0, b"no end")) == [b"[default0]:no end\n"]  # ended: no other joins it


def test_a_progress_lines_final_text_keeps_its_marker_however_it_ends():
    lines = LineSplitter("master-0", "stdout")
    writes = relayed((1, b"\r 50%"), (1, b"\r100%"), (1, b"\n"), (1, b"x 1%\r\n"))
    events = [event for data in writes for event in lines.feed(data)] + lines.close()
    assert [e.text for e in events if isinstance(e, LogLine)] == [
        "[default1]:100%",
        "[default1]:x 1%",
    ]


def test_only_one_process_shows_its_progress_live_and_each_final_line_comes_once():
    """Two processes' bars would take turns in the node's one open line: the lowest rank
    that draws one is live, the other's bar comes once, as its final text."""
    chunks = []
    for step in range(1, 4):
        chunks += [(1, f"\rB {step}/3".encode()), (0, f"\rA {step}/3".encode())]
    chunks += [(1, b"\n"), (0, b"\n")]
    lines = LineSplitter("master-0", "stderr")
    events = [event for data in relayed(*chunks) for event in lines.feed(data)] + lines.close()
    progress = [e.text for e in events if isinstance(e, Progress)]
    assert len(progress) == 3 and all(text.startswith("[default0]:A") for text in progress)
    assert [e.text for e in events if isinstance(e, LogLine)] == [
        "[default1]:B 3/3",
        "[default0]:A 3/3",
    ]


def test_a_line_without_end_is_relayed_in_bounded_pieces():
    """32 MiB without a newline from one of N processes: passed on in marked pieces as it
    comes, never held whole (the relay held it all, in quadratic time)."""
    import io

    from ciao.backend.local.launcher import _Relayed
    from ciao.backend.splitter import MAX_LINE_BYTES

    out = io.BytesIO()
    relay = _Relayed(out, b"[default1]:")
    chunk = b"x" * 65536
    for _ in range(512):
        relay.feed(chunk)
        assert len(relay.pending) < MAX_LINE_BYTES
    relay.close()
    pieces = out.getvalue().split(b"\n")[:-1]
    assert all(p.startswith(b"[default1]:") for p in pieces)
    assert sum(len(p) - len(b"[default1]:") for p in pieces) == 512 * 65536
