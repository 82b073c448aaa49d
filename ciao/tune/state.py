"""A study as its events say it: one row per trial, the best one, the verdict. Pure.

The driver writes TrialUpdate events (and one JobDone) into the study's record; the live
view, `%study`, `%best` and `%jobs` fold them here, so every view says the same.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ciao.backend.types import Event, JobDone, TrialUpdate

#: A trial's states, in the words of every view (Katib: Succeeded, Failed, EarlyStopped,
#: Killed).
TRIAL_STATES = ("Pending", "Running", "Succeeded", "Failed", "Pruned", "Cancelled")
FINISHED = frozenset({"Succeeded", "Failed", "Pruned", "Cancelled"})


@dataclass
class TrialRow:
    number: int
    state: str = "Pending"
    params: dict[str, str | int | float] = field(default_factory=dict)
    job: str = ""
    value: float | None = None
    message: str = ""
    replicas: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass
class StudyState:
    """Every trial of one study, folded from its events."""

    name: str
    direction: str = "minimize"
    metric: str = ""
    trials: int = 0
    rows: dict[int, TrialRow] = field(default_factory=dict)
    done: JobDone | None = None
    #: The trial the engine named the best (Katib's currentOptimalTrial), if it names one.
    optimal: int | None = None

    @classmethod
    def of(cls, name: str, study: dict[str, Any]) -> StudyState:
        """From the study as its record's spec says it (`TuneSpec.describe()`)."""
        objective = str(study.get("objective") or "minimize:")
        direction, _, rest = objective.partition(":")
        return cls(name, direction, rest.split(":")[0], int(study.get("trials") or 0))

    @property
    def state(self) -> str:
        return self.done.state if self.done is not None else "Running"

    def apply(self, event: Event) -> bool:
        """Fold one event in; whether anything the views show changed."""
        if isinstance(event, TrialUpdate):
            row = self.rows.setdefault(event.number, TrialRow(event.number))
            row.state = event.state
            row.params = dict(event.params) or row.params
            row.job = event.job or row.job
            row.value = event.value if event.value is not None else row.value
            row.message = event.message
            row.replicas = event.replicas or row.replicas
            if event.best:
                self.optimal = event.number
            return True
        if isinstance(event, JobDone):
            self.done = event
            return True
        return False

    def best(self) -> TrialRow | None:
        """The trial the engine named the best, else the succeeded trial with the best
        value (the first of equals), if any."""
        if self.optimal is not None and self.optimal in self.rows:
            return self.rows[self.optimal]
        scored = [
            row
            for row in self.rows.values()
            if row.state == "Succeeded" and row.value is not None and not math.isnan(row.value)
        ]
        if not scored:
            return None
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(scored, key=lambda row: (sign * (row.value or 0.0), row.number))

    def counts(self) -> Counter[str]:
        return Counter(row.state for row in self.rows.values())

    def summary(self) -> str:
        """`16 trials: 15 succeeded, 1 pruned; best #7 x=2.03: loss=0.0009`."""
        counts = self.counts()
        parts = [f"{n} {state.lower()}" for state in TRIAL_STATES if (n := counts[state])]
        text = f"{len(self.rows)} of {self.trials} trials" + (
            f": {', '.join(parts)}" if parts else ""
        )
        best = self.best()
        if best is not None:
            text += f"; best #{best.number} {params_text(best.params)}: {self.metric}="
            text += number_text(best.value)
        return text


def params_text(params: dict[str, str | int | float]) -> str:
    """`lr=0.0123 batch=64`: a trial's parameters as a person reads them."""
    return " ".join(f"{name}={number_text(value)}" for name, value in params.items())


def number_text(value: object) -> str:
    """Four significant digits for a float (0.01234, 1.935e-05), others as they are."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
