"""The run record: compact, complete, read in chunks with bounded memory."""

from __future__ import annotations

import json
import os

from ciao.backend.record import RunDir, decode, encode, encode_all
from ciao.backend.types import (
    Diagnosis,
    JobDone,
    LogLine,
    LogLines,
    Progress,
    ReplicaState,
    one_per_line,
)

EVENTS = [
    ReplicaState("master-0", "Running", where="pid 7"),
    LogLine("master-0", "hello\ttabs and ünïcode", "stdout"),
    LogLine("worker-0", "", "stderr"),
    Progress("worker-0", "progress 50%", "stderr"),
    Diagnosis("worker-0", "OOMKilled", "raise %memory"),
    JobDone(False, "Failed", "worker-0 exited 1", "worker-0", 1, ("a", "b")),
]


def test_every_event_comes_back_as_it_was():
    assert [decode(encode(e)) for e in EVENTS] == EVENTS


def test_plain_lines_cost_at_most_half_their_size_again():
    lines = [f"line {i:05d} " + "x" * 63 for i in range(10_000)]
    output = sum(len(line) + 1 for line in lines)
    record = encode(LogLines("worker-12", tuple(lines), "stdout"))
    assert len(record) <= 1.5 * output


def test_a_line_holding_a_newline_is_still_one_event():
    event = LogLine("master-0", "two\nlines")
    assert decode(encode(event)) == event
    batch = LogLines("master-0", ("a", "b\nc"))
    assert list(one_per_line([decode(r + b"\n") for r in encode(batch).splitlines()])) == [
        LogLine("master-0", "a"),
        LogLine("master-0", "b\nc"),
    ]


def test_records_of_earlier_versions_still_read():
    old = {"type": "LogLine", "replica": "master-0", "text": "hi", "stream": "stdout"}
    assert decode(json.dumps(old).encode() + b"\n") == LogLine("master-0", "hi")


def test_a_torn_last_write_is_not_an_event_until_it_is_complete(tmp_path):
    run = RunDir(tmp_path, "job")
    fd = run.open_for_append()
    os.write(fd, encode(EVENTS[1]) + b"oworker-0\tpart")
    assert [e for e, _ in run.read_events()] == [EVENTS[1]]
    os.write(fd, b"ial\n")
    os.close(fd)
    assert [e for e, _ in run.read_events()][-1] == LogLine("worker-0", "partial")


def test_batches_group_a_replicas_runs_and_say_the_same_lines(tmp_path):
    run = RunDir(tmp_path, "job")
    fd = run.open_for_append()
    events = [
        LogLines("master-0", tuple(f"m{i}" for i in range(500))),
        LogLines("worker-0", ("w0", "w1"), "stderr"),
        ReplicaState("worker-0", "Succeeded"),
        LogLine("master-0", "last"),
    ]
    os.write(fd, encode_all(events))
    os.close(fd)
    batches = list(run.read_batches(chunk=1024))  # records cut across chunks
    assert list(one_per_line(e for e, _ in batches)) == [e for e, _ in run.read_events()]
    assert batches[-1][1] == run.events_path.stat().st_size
    assert sum(isinstance(e, LogLines) for e, _ in batches) < 503 / 20  # not one per line
    # offsets let a reader resume after any batch without repeating a line
    middle = batches[len(batches) // 2][1]
    rest = [e for e, _ in run.read_events(middle)]
    seen = [e for e, off in run.read_events() if off <= middle]
    assert seen + rest == [e for e, _ in run.read_events()]


def test_shown_marks_keep_the_latest_notebooks_and_vanish_with_the_record(tmp_path):
    import shutil

    from ciao.backend.record import MAX_VIEWERS

    run = RunDir(tmp_path, "ciao-marks")
    run.create()
    for index in range(MAX_VIEWERS):
        run.set_shown(f"nb{index}", index)
    run.set_shown("nb0", 999)  # the oldest, shown again: now the newest
    run.set_shown("nb-new", 5)  # one too many: the least recently updated goes
    assert run.shown("nb0") == 999 and run.shown("nb-new") == 5
    assert run.shown("nb1") == 0
    shutil.rmtree(run.path)
    run.set_shown("nb0", 1000)  # %delete took the record while a notebook followed it
    assert not run.path.exists(), "no record made anew for a mark"


def test_states_are_read_past_any_amount_of_log_without_decoding_it(tmp_path):
    run = RunDir(tmp_path, "ciao-skim")
    fd = run.open_for_append()
    os.write(fd, encode(ReplicaState("master-0", "Running")))
    os.write(fd, encode(LogLines("master-0", tuple(f"line {i}" for i in range(50_000)))))
    os.write(fd, encode(ReplicaState("master-0", "Succeeded", exit_code=0)))
    os.close(fd)
    size = run.events_path.stat().st_size
    states = list(run.read_states(size))
    assert states == [
        ReplicaState("master-0", "Running"),
        ReplicaState("master-0", "Succeeded", exit_code=0),
    ]
    assert list(run.read_states(0)) == []
