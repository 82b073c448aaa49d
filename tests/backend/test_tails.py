"""A replica's last lines, as both backends keep them for a failed job's verdict: the last
20, within a bound on characters, so a thousand replicas writing long lines stay small."""

from __future__ import annotations

from ciao.backend.tails import TAIL_CHARS, TAIL_LINES, LastLines


def test_each_replica_keeps_its_own_last_twenty_lines():
    last = LastLines()
    last.add("worker-0", [f"w {i}" for i in range(100)])
    last.add("master-0", ("m 0",))
    last.add("worker-0", ("w 100",))

    assert last.of("worker-0") == tuple(f"w {i}" for i in range(81, 101))
    assert len(last.of("worker-0")) == TAIL_LINES
    assert last.of("master-0") == ("m 0",)
    assert last.of("worker-1") == ()


def test_long_lines_are_kept_within_the_bound_the_latest_one_whole():
    last = LastLines()
    long = "x" * (TAIL_CHARS // 4)
    last.add("node-0", ["short"] + [long] * 10)
    assert last.of("node-0") == (long,) * 4

    huge = "y" * (TAIL_CHARS * 2)
    last.add("node-0", (huge,))
    assert last.of("node-0") == (huge,), "the line that ends the log is never lost"


def test_a_thousand_replicas_writing_long_lines_hold_a_bounded_amount():
    last = LastLines()
    for replica in range(1000):
        last.add(f"node-{replica}", ["z" * 4096] * 50)
    held = sum(sum(map(len, last.of(f"node-{replica}"))) for replica in range(1000))
    assert held <= 1000 * TAIL_CHARS
