"""What a replica's bytes become: lines, progress, pieces of long lines (every backend)."""

from __future__ import annotations

import pytest

from ciao.backend.splitter import LONG_LINE, LineSplitter
from ciao.backend.types import Diagnosis, LogLine, LogLines, Progress, one_per_line


def split(*chunks: bytes, batch: bool = False, max_line: int = 64 * 1024) -> list:
    splitter = LineSplitter("worker-0", "stdout", max_line=max_line, batch=batch)
    events = [e for chunk in chunks for e in splitter.feed(chunk)]
    return events + splitter.close()


def texts(events: list) -> list[str]:
    return [e.text for e in one_per_line(events) if isinstance(e, LogLine)]


def test_lines_end_at_newlines_wherever_the_chunks_are_cut():
    assert texts(split(b"al", b"pha\nbe", b"ta\n\ngam", b"ma")) == ["alpha", "beta", "", "gamma"]


def test_crlf_endings_are_dropped_with_the_newline():
    assert texts(split(b"one\r\ntwo\r", b"\nthree\r\n")) == ["one", "two", "three"]


def test_a_progress_line_is_progress_while_open_and_one_final_line_when_it_ends():
    events = split(b"\rprogress   0%", b"\rprogress  50%", b"\rprogress 100%", b"\n")
    progress = [e.text for e in events if isinstance(e, Progress)]
    assert progress == ["progress   0%", "progress  50%", "progress 100%"]
    assert texts(events) == ["progress 100%"]


def test_a_rewritten_line_that_ends_in_one_chunk_is_its_final_state():
    assert texts(split(b"epoch 1 10%\repoch 1 100%\ndone\n")) == ["epoch 1 100%", "done"]
    assert texts(split(b"a\rbb\rccc\r\n")) == ["ccc"]


def test_a_process_marker_written_once_stays_on_the_lines_progress_and_final_text():
    """torchrun-style launchers mark a line once, at its start, before its `\\r` rewrites:
    the marker says which process's bar it is, so its states and final text keep it."""
    for batch in (False, True):
        events = split(
            b"[default1]:", b" 10%\r", b" 20%", b"\r 30%", b"\r100%", b"\nnext\n", batch=batch
        )
        progress = [e.text for e in events if isinstance(e, Progress)]
        assert progress == ["[default1]: 20%", "[default1]: 30%", "[default1]:100%"]
        assert texts(events) == ["[default1]:100%", "next"]
    assert texts(split(b"[default0]:a 1%\ra 2%\n[default2]:b\rb!\r\n")) == [
        "[default0]:a 2%",
        "[default2]:b!",
    ]
    marked_each_time = texts(split(b"[default0]:1%\r[default0]:2%\n"))
    assert marked_each_time == ["[default0]:2%"]
    assert texts(split(b"[not a marker]:1%\r2%\n")) == ["2%"]


def test_a_progress_line_holds_only_its_latest_state():
    splitter = LineSplitter("worker-0", "stdout")
    for i in range(10_000):
        splitter.feed(f"\r{i:8d} steps".encode())
    assert len(splitter._pending) < 64  # not 10,000 states


def test_long_lines_come_in_pieces_said_once_and_nothing_is_lost():
    line = b"x" * 250 + b"\n" + b"y" * 99
    events = split(line[:100], line[100:], max_line=64)
    said = [e for e in events if isinstance(e, Diagnosis)]
    assert [d.reason for d in said] == [LONG_LINE]
    pieces = texts(events)
    assert "".join(pieces) == "x" * 250 + "y" * 99
    assert all(len(p) <= 64 for p in pieces)


def test_a_piece_never_cuts_a_character_in_two():
    line = "é" * 100  # 2 bytes each
    pieces = texts(split(line.encode() + b"\n", max_line=33))
    assert "".join(pieces) == line
    assert all("\ufffd" not in p for p in pieces)


def test_invalid_utf8_becomes_replacement_characters():
    assert texts(split(b"ok \xff\xfe bytes\n\x00\x01\n")) == ["ok \ufffd\ufffd bytes", "\x00\x01"]


def test_a_last_line_without_newline_arrives_at_close():
    assert texts(split(b"first\nno newline")) == ["first", "no newline"]


@pytest.mark.parametrize(
    "chunks",
    [
        (b"a\nb\n", b"c\r\nd"),
        (b"x" * 200 + b"\n", b"short\n"),
        (b"p\r5%\r10%\n", b"plain\n"),
        (b"\xffbad\n", b"\xc3", b"\xa9\n"),
    ],
)
def test_batches_say_exactly_what_single_lines_say(chunks):
    one_by_one = split(*chunks, max_line=64)
    batched = split(*chunks, max_line=64, batch=True)
    assert texts(batched) == texts(one_by_one)


def test_a_chunk_of_plain_lines_is_one_batch():
    events = split(b"".join(b"line %d\n" % i for i in range(1000)), batch=True)
    assert [type(e) for e in events] == [LogLines]
    assert len(events[0].lines) == 1000
