"""`%metrics`' table and columns: every replica's summary, the history bounded, and the
columns the session gets back exactly."""

from __future__ import annotations

import math

import ciao.kernel.metrics_table as module
from ciao.backend.metrics import Metrics
from ciao.kernel.metrics_table import HISTORY_ROWS, columns, metrics_table, session_code


def training(epochs: int) -> Metrics:
    metrics = Metrics()
    for epoch in range(1, epochs + 1):
        for replica in ("worker-0", "master-0"):
            metrics.add_line(replica, f"epoch={epoch} loss={1 / epoch}")
    return metrics


def test_the_table_has_a_summary_per_replica_and_metric_then_the_history():
    text = metrics_table("ciao-abcde", training(3))["text/plain"]
    lines = [line.split() for line in text.splitlines()]
    assert text.splitlines()[0].startswith("ciao-abcde: 2 metrics of 2 replicas; history of 12")
    assert lines[2] == ["REPLICA", "METRIC", "COUNT", "MIN", "MAX", "LATEST"]
    assert lines[3:7] == [
        ["master-0", "epoch", "3", "1", "3", "3"],
        ["master-0", "loss", "3", "0.3333", "1", "0.3333"],
        ["worker-0", "epoch", "3", "1", "3", "3"],
        ["worker-0", "loss", "3", "0.3333", "1", "0.3333"],
    ]
    assert lines[8] == ["STEP", "REPLICA", "METRIC", "VALUE"]
    assert lines[9:11] == [["1", "master-0", "epoch", "1"], ["1", "master-0", "loss", "1"]]


def test_one_metric_can_be_asked_for():
    text = metrics_table("ciao-abcde", training(3), "loss")["text/plain"]
    assert "epoch" not in text and "metric loss of 2 replicas" in text


def test_a_long_history_shows_its_first_and_last_rows_and_says_how_many_are_left_out():
    metrics = training(500)  # 2,000 rows
    bundle = metrics_table("ciao-abcde", metrics)
    text = bundle["text/plain"]
    assert text.count("\n   ") <= HISTORY_ROWS + 10
    assert "…" in text and "1,800 rows of history not shown here" in text
    assert "500  worker-0  loss" in text, "the last rows are there"
    assert bundle["text/html"].count("<tr>") <= HISTORY_ROWS + 20


def test_the_columns_evaluate_to_every_value_exactly(monkeypatch):
    metrics = Metrics()
    metrics.add_line("master-0", "loss=0.1 big=1e999")
    metrics.add_line("master-0", "loss=0.30000000000000004")
    data, cut = columns(metrics)
    assert cut == 0
    back = eval(session_code("ciao-abcde", data))  # what the session runs
    assert back == {
        "replica": ["master-0"] * 3,
        "step": [1, 1, 2],
        "name": ["loss", "big", "loss"],
        "value": [0.1, math.inf, 0.30000000000000004],
    }
    monkeypatch.setattr(module, "COLUMN_ROWS", 2)
    data, cut = columns(metrics)
    assert cut == 1 and data["step"] == [1, 2], "the latest rows"


def test_names_and_values_are_escaped_in_html():
    metrics = Metrics()
    metrics.add_line("master-0", "a|b=1")
    assert "a|b" in metrics_table("<job>", metrics)["text/html"]
    assert "<job>" not in metrics_table("<job>", metrics)["text/html"]
