"""The output budget: a sliding window counted as Jupyter Server counts."""

from __future__ import annotations

from ciao.kernel.budget import MESSAGE_OVERHEAD, OutputBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stream_bytes_fit_until_the_window_is_full_then_again_as_it_slides():
    clock = Clock()
    budget = OutputBudget(10_000, 0, window=3.0, clock=clock)  # 30,000 bytes a window
    size = 10_000 - MESSAGE_OVERHEAD
    for _ in range(3):
        assert budget.fits(size)
        budget.spend(size)
        clock.now += 0.5
    assert not budget.fits(size)
    assert budget.wait_for(size) == 1.5  # when the first message leaves the window
    clock.now += 1.5
    assert budget.fits(size)


def test_messages_of_any_kind_count_against_the_message_rate():
    clock = Clock()
    budget = OutputBudget(0, 2, window=3.0, clock=clock)  # 6 messages a window
    for _ in range(6):
        assert budget.fits()
        budget.spend()
    assert not budget.fits() and not budget.fits(10)
    clock.now += 3.0
    assert budget.fits()


def test_zero_is_unlimited():
    budget = OutputBudget(0, 0)
    for _ in range(10_000):
        budget.spend(1 << 20)
    assert budget.unlimited and budget.fits(1 << 30)


def test_a_message_larger_than_the_window_goes_once_the_window_is_empty():
    clock = Clock()
    budget = OutputBudget(1_000, 0, window=3.0, clock=clock)
    assert budget.fits(1 << 20)
