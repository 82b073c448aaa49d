"""A job's lines in a cell: the budget, the cap, colour and the accounting of every line."""

from __future__ import annotations

import re
from collections import Counter

from ciao.kernel.budget import OutputBudget
from ciao.kernel.logstream import LogStream


class FakeOutput:
    """Records what would be published, with a budget on a clock the test moves."""

    silent = False

    def __init__(self, budget: OutputBudget) -> None:
        self.budget = budget
        self.sent: list[tuple[str, str]] = []

    def stream(self, name: str, text: str) -> None:
        self.sent.append((name, text))
        self.budget.spend(len(text.encode()))

    def log(self, name: str, text: str, wait: float = 0.0) -> bool:
        if self.budget.wait_for(len(text.encode())) > wait:
            return False
        self.stream(name, text)
        return True

    def text(self) -> str:
        return "".join(text for _, text in self.sent)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def shown(text: str) -> Counter:
    return Counter(m.group(1) for m in re.finditer(r"^\[([a-z]+-\d+)\] ", text, re.M))


def reported(text: str) -> dict[str, int]:
    pattern = r"^\[ciao\] ([a-z]+-\d+): ([\d,]+) of its ([\d,]+) lines not shown"
    return {m[1]: int(m[2].replace(",", "")) for m in re.finditer(pattern, text, re.M)}


def feed(stream: LogStream, replicas: int, lines: int, clock: Clock | None = None) -> None:
    for i in range(lines):
        for r in range(replicas):
            stream.lines(f"worker-{r}", (f"line {i}",), "stdout")
        if clock is not None:
            clock.now += 0.001
        if stream.due_in() <= 0:
            stream.flush()
    stream.close()


def test_the_cap_shows_the_first_lines_and_each_replicas_last_and_counts_the_rest():
    out = FakeOutput(OutputBudget(0, 0))
    stream = LogStream(out, "job", replicas=4, max_lines=100)
    feed(stream, 4, 1000)
    text = out.text()
    counts, missing = shown(text), reported(text)
    assert 90 <= sum(counts.values()) <= 100  # at most max_lines
    for r in range(4):
        replica = f"worker-{r}"
        assert counts[replica] + missing[replica] == 1000
        assert f"[{replica}] line 999\n" in text  # every replica's last line
    assert "%logs job worker-3" in text


def test_over_the_budget_lines_are_not_shown_but_counted_and_notices_still_go():
    clock = Clock()
    budget = OutputBudget(20_000, 0, window=3.0, clock=clock)
    out = FakeOutput(budget)
    stream = LogStream(out, "job", replicas=2, max_lines=0)
    feed(stream, 2, 20_000, clock)  # ~ 600 kB in 20 s of clock: over a 20 kB/s budget
    text = out.text()
    counts, missing = shown(text), reported(text)
    assert missing, "some lines must have been over the budget"
    for replica in ("worker-0", "worker-1"):
        assert counts[replica] + missing[replica] == 20_000
    assert "lines not shown here (over the output budget" in text


def test_shown_lines_keep_their_order_and_are_never_repeated():
    out = FakeOutput(OutputBudget(0, 0))
    stream = LogStream(out, "job", replicas=1, max_lines=50)
    stream.lines("master-0", tuple(f"n {i}" for i in range(500)), "stdout")
    stream.close()
    numbers = [int(m) for m in re.findall(r"^\[master-0\] n (\d+)$", out.text(), re.M)]
    assert numbers == sorted(set(numbers)) and len(numbers) == 50


def test_colour_never_covers_a_prefix_and_carries_over_to_the_replicas_next_line():
    out = FakeOutput(OutputBudget(0, 0))
    stream = LogStream(out, "job", replicas=2)
    stream.line("master-0", "\x1b[31mred starts", "stdout")
    stream.line("worker-0", "plain", "stdout")
    stream.line("master-0", "still red\x1b[0m", "stdout")
    stream.line("master-0", "plain again", "stdout")
    stream.close()
    lines = out.text().splitlines()
    assert all(line.startswith("[") for line in lines)  # no escape before any prefix
    assert lines == [
        "[master-0] \x1b[31mred starts\x1b[0m",
        "[worker-0] plain",
        "[master-0] \x1b[31mstill red\x1b[0m\x1b[0m",
        "[master-0] plain again",
    ]


def test_the_end_of_a_cell_waits_for_the_budget_rather_than_drop_its_last_lines():
    clock = Clock()
    budget = OutputBudget(1_000, 0, window=3.0, clock=clock)
    budget.spend(2_000)  # the window is full
    out = FakeOutput(budget)
    stream = LogStream(out, "job", replicas=1)
    stream.line("master-0", "the last line", "stdout")
    stream.flush()  # live: over the budget, not shown
    assert not reported(out.text())
    stream.line("master-0", "after", "stdout")
    clock.now += 3.0
    stream.close()
    assert "[master-0] after\n" in out.text()
    assert reported(out.text()) == {"master-0": 1}


def test_it_knows_whether_a_replicas_last_lines_were_all_shown():
    """So a failed replica's verdict points at its last lines instead of repeating them."""
    out = FakeOutput(OutputBudget(0, 0))
    stream = LogStream(out, "job", replicas=2, max_lines=40)
    stream.lines("master-0", tuple(f"m {i}" for i in range(10)), "stdout")
    stream.lines("worker-0", tuple(f"w {i}" for i in range(100)), "stdout")
    stream.lines("master-0", ("Traceback", "ValueError: bad"), "stderr")
    stream.close()
    assert stream.showed("master-0", ("m 9", "Traceback", "ValueError: bad"))
    assert stream.showed("master-0", ("m 0", "m 1"))  # though other lines follow them
    assert not stream.showed("master-0", ("not", "its lines"))
    assert not stream.showed("master-0", ())
    assert stream.showed("worker-0", tuple(f"w {i}" for i in range(95, 100)))  # its last
    assert not stream.showed("worker-0", tuple(f"w {i}" for i in range(80, 100)))  # capped


def test_lines_over_the_budget_were_not_shown():
    clock = Clock()
    budget = OutputBudget(1_000, 0, window=3.0, clock=clock)
    budget.spend(2_000)
    out = FakeOutput(budget)
    stream = LogStream(out, "job", replicas=1)
    stream.lines("master-0", ("Traceback", "ValueError: bad"), "stderr")
    stream.flush()  # over the budget: dropped
    stream.line("master-0", "after", "stdout")
    clock.now += 3.0
    stream.close()
    assert stream.showed("master-0", ("after",))
    assert not stream.showed("master-0", ("ValueError: bad", "after"))
