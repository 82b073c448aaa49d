"""Metrics are log lines in Katib's format, read with its default filter, kept bounded."""

from __future__ import annotations

import json
import math

import pytest

from ciao.backend.metrics import (
    MAX_LINE_CHARS,
    MAX_NAMES,
    MAX_POINTS,
    Metrics,
    Series,
    metrics_in,
    replica_order,
)


@pytest.mark.parametrize(
    ("line", "found"),
    [
        ("loss=0.3", [("loss", 0.3)]),
        ("accuracy=.98", [("accuracy", 0.98)]),
        ("Score=-7.53e-05", [("Score", -7.53e-05)]),
        ("epoch=3 loss=0.42 accuracy=0.91", [("epoch", 3), ("loss", 0.42), ("accuracy", 0.91)]),
        ("lr = 1e-3", [("lr", 0.001)]),
        ("val-loss=+2", [("val-loss", 2.0)]),
        ("a|b=4", [("a|b", 4.0)]),
        ("step 10: train_loss=0.25, val_acc=0.5", [("train_loss", 0.25), ("val_acc", 0.5)]),
    ],
)
def test_lines_in_katibs_format_are_metrics(line, found):
    assert metrics_in(line) == found


@pytest.mark.parametrize(
    "line",
    [
        "val_loss: 0.89",  # a colon, not `=`: Katib's filter does not take it
        "loss 0.3",
        "x= and y=-",  # the filter matches, but no number follows
        "nothing to see",
        "",
    ],
)
def test_other_lines_are_not(line):
    assert metrics_in(line) == []


def test_only_the_start_of_a_huge_line_is_searched():
    assert metrics_in("x" * MAX_LINE_CHARS + " loss=0.3") == []
    assert metrics_in("loss=0.3 " + "x" * 10 * MAX_LINE_CHARS) == [("loss", 0.3)]


def test_a_series_keeps_min_max_latest_and_count_exactly():
    series = Series()
    for value in (3.0, -1.0, 7.0, 2.0):
        series.add(value)
    assert (series.count, series.min, series.max, series.latest) == (4, -1.0, 7.0, 2.0)
    assert [series.value(s) for s in ("min", "max", "latest")] == [-1.0, 7.0, 2.0]


def test_a_long_series_keeps_a_bounded_number_of_points_at_their_steps():
    series = Series()
    for step in range(1, 100_001):
        series.add(float(step))  # each value is its step
    assert len(series.points) <= MAX_POINTS
    history = list(series.history())
    assert all(step == value for step, value in history), "each kept point is at its step"
    assert history[0] == (1, 1.0)
    steps = [step for step, _ in history]
    assert len(set(b - a for a, b in zip(steps, steps[1:], strict=False))) == 1, "evenly spaced"
    assert (series.min, series.max, series.latest, series.count) == (1, 100_000, 100_000, 100_000)


def test_a_job_keeps_at_most_max_names_metrics_and_counts_what_it_dropped():
    metrics = Metrics()
    for i in range(MAX_NAMES + 6):
        metrics.add_line("master-0", f"m{i}=1")
    assert len(metrics.names()) == MAX_NAMES
    assert metrics.dropped == 6
    assert metrics.add_line("master-0", "m0=2") and metrics.of("m0", "master-0").latest == 2


def test_rows_go_by_step_then_replica_the_primary_first():
    metrics = Metrics()
    for epoch in (1, 2):
        for replica in ("worker-0", "master-0"):
            metrics.add_line(replica, f"epoch={epoch} loss={1 / epoch}")
    assert metrics.replicas() == ["master-0", "worker-0"]
    assert metrics.rows("loss") == [
        (1, "master-0", "loss", 1.0),
        (1, "worker-0", "loss", 1.0),
        (2, "master-0", "loss", 0.5),
        (2, "worker-0", "loss", 0.5),
    ]
    assert metrics.rows()[:2] == [(1, "master-0", "epoch", 1.0), (1, "master-0", "loss", 1.0)]


def test_the_primary_replica_is_the_chief_or_master_else_the_first_node_or_worker():
    metrics = Metrics()
    for replica in ("worker-10", "worker-2", "ps-0", "chief-0"):
        metrics.add_line(replica, "loss=1")
    metrics.add_line("worker-2", "acc=1")
    metrics.add_line("worker-10", "acc=1")
    assert metrics.primary("loss") == "chief-0"
    assert metrics.primary("acc") == "worker-2"
    assert metrics.primary("missing") is None
    assert sorted(["worker-1", "node-0", "master-0"], key=replica_order) == [
        "master-0",
        "node-0",
        "worker-1",
    ]


def test_metrics_go_through_json_and_back_with_every_number():
    metrics = Metrics()
    metrics.add_line("master-0", "loss=0.5 big=1e999 small=-1e999")
    for i in range(2 * MAX_POINTS):
        metrics.add_line("worker-0", f"loss={i}")
    back = Metrics.from_dict(json.loads(json.dumps(metrics.as_dict())))
    assert back == metrics
    assert math.isinf(back.of("big", "master-0").latest)


@pytest.mark.parametrize(
    "damaged",
    [None, [], {"series": []}, {"series": {"loss": {"master-0": {"points": "x"}}}}],
)
def test_damaged_saved_metrics_are_refused_not_guessed(damaged):
    assert Metrics.from_dict(damaged) is None
