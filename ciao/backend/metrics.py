"""Metrics in log lines, in Katib's format: `epoch=3 loss=0.42 accuracy=0.91`.

Katib's default metrics filter (`pkg/metricscollector/v1beta1/common/const.go`) is the one
rule, so a line that shows as a metric here is the line Katib's collector counts on a
cluster, and a tuned cell's objective is read the same way locally and there. Pure, and
bounded: a job printing metrics for days keeps a fixed number of points per series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Katib's DefaultFilter, verbatim.
KATIB_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
_FILTER = re.compile(KATIB_FILTER)
#: Longest line searched for metrics (a metric line is short; a 1 MB line is not one).
MAX_LINE_CHARS = 4096
#: Metric names one job keeps (more are dropped: a log of `key=value` dumps is not metrics).
MAX_NAMES = 64
#: Points kept per (replica, metric): when full, every other point goes (the chart's shape
#: stays, its resolution halves); min, max and latest are kept exactly.
MAX_POINTS = 512


def metrics_in(line: str) -> list[tuple[str, float]]:
    """The (name, value) pairs Katib's filter finds in `line`, in order."""
    found = []
    for match in _FILTER.finditer(line[:MAX_LINE_CHARS]):
        name, text = match.group(1), match.group(2)
        try:
            found.append((name, float(text)))
        except ValueError:
            continue  # `x=` or `x=-`: the filter matches, no number (Katib skips it too)
    return found


@dataclass
class Series:
    """One metric of one replica: its points (bounded), and min, max, latest of them all."""

    points: list[float] = field(default_factory=list)
    #: Every `stride`-th reported value is kept (1, then 2, 4... as the series halves).
    stride: int = 1
    count: int = 0
    min: float = float("inf")
    max: float = float("-inf")
    latest: float = float("nan")

    def add(self, value: float) -> None:
        self.count += 1
        self.latest = value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if (self.count - 1) % self.stride:
            return
        self.points.append(value)
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
            self.stride *= 2

    def value(self, strategy: str) -> float:
        """Katib's metric strategies: min, max or latest."""
        return {"min": self.min, "max": self.max, "latest": self.latest}[strategy]


@dataclass
class Metrics:
    """Every metric of a job, per replica, in the order first seen."""

    series: dict[str, dict[str, Series]] = field(default_factory=dict)

    def add_line(self, replica: str, line: str) -> bool:
        """Record the metrics of one log line; whether it had any."""
        found = metrics_in(line)
        for name, value in found:
            by_replica = self.series.get(name)
            if by_replica is None:
                if len(self.series) >= MAX_NAMES:
                    continue
                by_replica = self.series[name] = {}
            by_replica.setdefault(replica, Series()).add(value)
        return bool(found)

    def names(self) -> list[str]:
        return list(self.series)

    def of(self, name: str, replica: str) -> Series | None:
        return self.series.get(name, {}).get(replica)
