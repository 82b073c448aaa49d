"""Metrics in log lines, in Katib's format: `epoch=3 loss=0.42 accuracy=0.91`.

Katib's default metrics filter (`pkg/metricscollector/v1beta1/common/const.go`) is the one
rule, so a line that shows as a metric here is the line Katib's collector counts on a
cluster, and a tuned cell's objective is read the same way locally and there. Pure, and
bounded: a job printing metrics for days keeps a fixed number of points per series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ciao.constants import KATIB_FILTER

_FILTER = re.compile(KATIB_FILTER)
#: Longest line searched for metrics (a metric line is short; a 1 MB line is not one).
MAX_LINE_CHARS = 4096
#: Metric names one job keeps (more are dropped: a log of `key=value` dumps is not metrics).
MAX_NAMES = 64
#: Points kept per (replica, metric): when full, every other point goes (the chart's shape
#: stays, its resolution halves); min, max and latest are kept exactly.
MAX_POINTS = 512
#: Roles in the order their replicas speak for a job: its primary replica for a metric is
#: the first (then lowest index) that reports it, as Katib's primary pod is the master's
#: or chief's (a TrainJob's node-0; worker-0 where there is neither).
PRIMARY_ROLES = ("chief", "master", "launcher", "node", "worker", "evaluator", "ps")


def metrics_in(line: str) -> list[tuple[str, float]]:
    """The (name, value) pairs Katib's filter finds in `line`, in order."""
    line = line[:MAX_LINE_CHARS]
    if "=" not in line:  # most lines: no regex at all
        return []
    found = []
    for name, text, _, _ in _FILTER.findall(line):
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
        if value < self.min:  # comparisons, not min(): this runs for every value
            self.min = value
        if value > self.max:
            self.max = value
        if (self.count - 1) % self.stride:
            return
        self.points.append(value)
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
            self.stride *= 2

    def value(self, strategy: str) -> float:
        """Katib's metric strategies: min, max or latest."""
        return {"min": self.min, "max": self.max, "latest": self.latest}[strategy]

    def history(self) -> Iterator[tuple[int, float]]:
        """The kept points as (step, value): step n is the n-th value the replica reported
        (1-based), so metrics printed on one line (`epoch=3 loss=0.4`) share their steps;
        the kept points are every `stride`-th step from the first."""
        for index, value in enumerate(self.points):
            yield index * self.stride + 1, value

    def as_dict(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "stride": self.stride,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "latest": self.latest,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Series | None:
        """A series as `as_dict` wrote it; None for anything else (a damaged record)."""
        try:
            points = [float(p) for p in data["points"]][: MAX_POINTS + 1]
            series = cls(
                points,
                int(data["stride"]),
                int(data["count"]),
                float(data["min"]),
                float(data["max"]),
                float(data["latest"]),
            )
        except (TypeError, KeyError, ValueError):
            return None
        return series if series.stride >= 1 and series.count >= len(points) else None


@dataclass
class Metrics:
    """Every metric of a job, per replica, in the order first seen."""

    series: dict[str, dict[str, Series]] = field(default_factory=dict)
    #: Values of names past MAX_NAMES, not kept (said, so a missing metric is explained).
    dropped: int = 0

    def add_line(self, replica: str, line: str) -> bool:
        """Record the metrics of one log line; whether it had any."""
        found = metrics_in(line)
        for name, value in found:
            by_replica = self.series.get(name)
            if by_replica is None:
                if len(self.series) >= MAX_NAMES:
                    self.dropped += 1
                    continue
                by_replica = self.series[name] = {}
            by_replica.setdefault(replica, Series()).add(value)
        return bool(found)

    def add_lines(self, replica: str, lines: Iterable[str]) -> bool:
        """`add_line` for each; whether any had metrics."""
        found = False
        for line in lines:
            found = self.add_line(replica, line) or found
        return found

    def names(self) -> list[str]:
        return list(self.series)

    def of(self, name: str, replica: str) -> Series | None:
        return self.series.get(name, {}).get(replica)

    def replicas(self) -> list[str]:
        """Every replica that reported a metric, the primary ones first (`replica_order`)."""
        seen = {r for by_replica in self.series.values() for r in by_replica}
        return sorted(seen, key=replica_order)

    def primary(self, name: str) -> str | None:
        """The replica whose `name` speaks for the job (a tuned trial's objective): the
        first in `replica_order` that reports it; None when none does."""
        reporting = self.series.get(name)
        return min(reporting, key=replica_order) if reporting else None

    def rows(self, name: str | None = None) -> list[tuple[int, str, str, float]]:
        """Every kept point as (step, replica, metric, value), by step, then replica (the
        primary first) and metric (in the order first seen): one metric's, or all."""
        replicas = {replica: i for i, replica in enumerate(self.replicas())}
        names = [name] if name is not None else self.names()
        found = [
            (step, replicas[replica], n, replica, metric, value)
            for n, metric in enumerate(names)
            for replica, series in self.series.get(metric, {}).items()
            for step, value in series.history()
        ]
        found.sort(key=lambda row: row[:3])
        return [(step, replica, metric, value) for step, _, _, replica, metric, value in found]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a JSON file (non-finite numbers as Python's json writes them)."""
        return {
            "series": {
                name: {replica: s.as_dict() for replica, s in by_replica.items()}
                for name, by_replica in self.series.items()
            },
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Metrics | None:
        """Metrics as `as_dict` wrote them; None when `data` is not that."""
        if not isinstance(data, dict) or not isinstance(data.get("series"), dict):
            return None
        metrics = cls(dropped=int(data.get("dropped") or 0))
        for name, by_replica in list(data["series"].items())[:MAX_NAMES]:
            if not isinstance(by_replica, dict):
                return None
            kept = {}
            for replica, raw in by_replica.items():
                series = Series.from_dict(raw)
                if series is None:
                    return None
                kept[str(replica)] = series
            metrics.series[str(name)] = kept
        return metrics


def replica_order(replica: str) -> tuple[int, int, str]:
    """Sort key of a replica name (`master-0`, `worker-10`): by PRIMARY_ROLES, then index."""
    role, _, index = replica.rpartition("-")
    rank = PRIMARY_ROLES.index(role) if role in PRIMARY_ROLES else len(PRIMARY_ROLES)
    return rank, int(index) if index.isdigit() else 0, replica
