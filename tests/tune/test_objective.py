"""A trial's objective: its primary replica's metric lines in Katib's format, and Katib's
strategies over them."""

from __future__ import annotations

import pytest

from ciao.interpreter.tune import Objective
from ciao.tune.objective import ObjectiveReader, primary_replica


@pytest.mark.parametrize(
    ("replicas", "primary"),
    [
        ({"master": 1, "worker": 2}, "master-0"),
        ({"node": 3}, "node-0"),
        ({"chief": 1, "worker": 2, "ps": 1}, "chief-0"),
        ({"master": 1, "worker": 1, "ps": 1}, "master-0"),
        ({"worker": 2, "ps": 1}, "worker-0"),
        ({"ps": 1, "evaluator": 1}, "ps-0"),
    ],
)
def test_the_primary_replica_is_the_one_whose_success_is_the_jobs(replicas, primary):
    assert primary_replica(replicas) == primary


LINES = ("epoch=1 loss=0.9 accuracy=0.5", "loading...", "epoch=2 loss=0.4", "epoch=3 loss=0.6")


@pytest.mark.parametrize(
    ("objective", "value"),
    [
        (Objective("minimize", "loss", "min"), 0.4),
        (Objective("minimize", "loss", "max"), 0.9),
        (Objective("minimize", "loss", "latest"), 0.6),
        (Objective("maximize", "accuracy", "max"), 0.5),
    ],
)
def test_katibs_strategies_make_the_trials_value(objective, value):
    reader = ObjectiveReader(objective, "master-0")
    assert reader.value() is None
    reader.lines("master-0", LINES)
    assert reader.value() == value


def test_each_value_is_one_step_and_other_replicas_do_not_count():
    reader = ObjectiveReader(Objective("minimize", "loss", "min"), "master-0")
    assert reader.lines("worker-0", ("loss=0.01",)) == []
    assert reader.lines("master-0", LINES[:2]) == [0.9]
    assert reader.lines("master-0", LINES[2:]) == [0.4, 0.6]
    assert reader.steps == 3 and reader.value() == 0.4


def test_a_metric_that_never_appeared_is_katibs_metrics_unavailable():
    reader = ObjectiveReader(Objective("minimize", "val_loss", "min"), "master-0")
    reader.lines("master-0", ("val_loss: 0.3", "loss=0.2"))  # Keras' format is not Katib's
    assert reader.value() is None
    message = reader.missing()
    assert message.startswith("MetricsUnavailable: master-0 never printed val_loss")
    assert "val_loss=0.42" in message
