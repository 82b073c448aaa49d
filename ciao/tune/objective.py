"""A trial's objective, read from its primary replica's metric lines as Katib reads them.

The primary replica is the one whose success is the job's: master-0 of a PyTorch job,
node-0 of a TrainJob, the chief (or master) of a TensorFlow job, else worker-0 (Katib's
primaryPodLabels: the master role, TrainJob's node 0). Its lines in Katib's format
(`epoch=3 val_loss=0.42`, ciao/backend/metrics.py) report the metric; the strategy (min,
max, latest) makes the trial's value; a trial whose metric never appeared has none
(Katib's MetricsUnavailable).
"""

from __future__ import annotations

from collections.abc import Mapping

from ciao.backend.metrics import Series, metrics_in
from ciao.interpreter.tune import Objective

#: Roles in the order that makes one the primary: the first the job has, replica 0.
PRIMARY_ROLES = ("chief", "master", "node", "worker")


def primary_replica(replicas: Mapping[str, int]) -> str:
    """The replica whose lines report the objective, of a job with these roles (counts)."""
    for role in PRIMARY_ROLES:
        if replicas.get(role, 0) > 0:
            return f"{role}-0"
    role = next((r for r, n in replicas.items() if n > 0), "worker")
    return f"{role}-0"


class ObjectiveReader:
    """The objective metric of one trial: every value the primary replica printed (each an
    intermediate value, numbered from 0, for early stopping) and the trial's value."""

    def __init__(self, objective: Objective, primary: str) -> None:
        self.objective = objective
        self.primary = primary
        self.series = Series()

    def lines(self, replica: str, texts: tuple[str, ...] | list[str]) -> list[float]:
        """The objective's values in these lines of `replica` (none from other replicas)."""
        if replica != self.primary:
            return []
        found = [
            value
            for text in texts
            for name, value in metrics_in(text)
            if name == self.objective.metric
        ]
        for value in found:
            self.series.add(value)
        return found

    @property
    def steps(self) -> int:
        """How many values were reported (the next one's step)."""
        return self.series.count

    def value(self) -> float | None:
        """The trial's value so far (its strategy over the values), None before any."""
        return self.series.value(self.objective.strategy) if self.series.count else None

    def missing(self) -> str:
        """Why a trial that ended has no value (Katib: MetricsUnavailable)."""
        metric = self.objective.metric
        return (
            f"MetricsUnavailable: {self.primary} never printed {metric} (print it as a line "
            f"like `{metric}=0.42` in Katib's format)"
        )
