"""Observation logs: what the metrics collector parses from a metrics file, what
katib-db-manager keeps per trial, and the observation a trial's status shows
(pkg/metricscollector/v1beta1/file-metricscollector, trial_controller_util.go getMetrics,
experiment util status_util.go getObjectiveMetricValue).

A TEXT file's line is a metric line when it contains one of the metric names; each match of
a filter (default `([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)`) whose first
group is one of the metrics is a log (name, value as printed); a line starting with an
RFC 3339 time and a space has that time, others the zero time. If the objective metric never
appears, the single log `<objective>=unavailable` is reported instead. A trial's observation
is, per metric of its strategies, the min, max (of values that parse as numbers) and latest
value, `unavailable` for what never came.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import config as C

ZERO_TIME = "0001-01-01T00:00:00Z"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class MetricLog:
    time: str
    name: str
    value: str


class CollectError(Exception):
    """The collector's error text."""


def _filters(filters: list[str]) -> list[re.Pattern[str]]:
    return [re.compile(f, re.ASCII) for f in (filters or [C.DEFAULT_FILTER])]


def parse_text(lines: list[str], metrics: list[str], filters: list[str]) -> list[MetricLog]:
    """parseLogsInTextFormat (warnings aside), then newObservationLog."""
    logs = []
    patterns = _filters(filters)
    for line in lines:
        if not any(m in line for m in metrics):
            continue
        head = line.split(" ", 1)
        stamp = head[0] if len(head) == 2 and _RFC3339.match(head[0]) else ZERO_TIME
        for pattern in patterns:
            for match in pattern.finditer(line):
                if pattern.groups < 2:
                    continue
                name = (match.group(1) or "").strip()
                value = (match.group(2) or "").strip()
                if name in metrics:
                    logs.append(MetricLog(stamp, name, value))
    return observation_log(logs, metrics)


def parse_json(lines: list[str], metrics: list[str]) -> list[MetricLog]:
    logs = []
    for line in lines:
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise CollectError(f"failed to parse the json object: {exc}") from exc
        stamp = obj.get("timestamp") if isinstance(obj, dict) else None
        stamp = stamp if isinstance(stamp, str) and _RFC3339.match(stamp) else ZERO_TIME
        for m in metrics:
            value = obj.get(m) if isinstance(obj, dict) else None
            if isinstance(value, str):
                logs.append(MetricLog(stamp, m, value))
    return observation_log(logs, metrics)


def observation_log(logs: list[MetricLog], metrics: list[str]) -> list[MetricLog]:
    """newObservationLog: `unavailable` for the objective when it was never reported."""
    if not any(log.name == metrics[0] for log in logs):
        return [MetricLog(ZERO_TIME, metrics[0], C.UNAVAILABLE)]
    return logs


def text_format(logs: list[MetricLog]) -> str:
    """The ObservationLog message as protobuf-go prints it (%v)."""
    return " ".join(
        f'metric_logs:{{time_stamp:"{log.time}" metric:{{name:"{log.name}" value:"{log.value}"}}}}'
        for log in logs
    )


class ObservationDB:
    """katib-db-manager: observation logs by trial name (not namespace), in report order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, list[MetricLog]] = {}

    def report(self, trial: str, logs: list[MetricLog]) -> None:
        with self._lock:
            self._logs.setdefault(trial, []).extend(logs)

    def get(self, trial: str, metric: str) -> list[MetricLog]:
        """GetObservationLog of one metric, ordered by time."""
        with self._lock:
            found = [log for log in self._logs.get(trial, []) if log.name == metric]
        return sorted(found, key=lambda log: _time(log.time))

    def delete(self, trial: str) -> None:
        with self._lock:
            self._logs.pop(trial, None)


def _time(text: str) -> datetime:
    if text == ZERO_TIME:
        return datetime.min.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def observation(logs: list[MetricLog], strategies: list[dict[str, Any]]) -> dict[str, Any]:
    """getMetrics: {metrics: [{name, min, max, latest}]} in the strategies' order."""
    metrics: dict[str, dict[str, str]] = {
        s["name"]: {
            "name": s["name"],
            "min": C.UNAVAILABLE,
            "max": C.UNAVAILABLE,
            "latest": C.UNAVAILABLE,
        }
        for s in strategies
    }
    latest_at: dict[str, datetime] = {}
    for log in logs:
        metric = metrics.get(log.name)
        if metric is None:
            continue
        value = _float(log.value)
        if value is not None:
            if metric["min"] == C.UNAVAILABLE:
                metric["min"] = metric["max"] = log.value
            elif value < float(metric["min"]):
                metric["min"] = log.value
            elif value > float(metric["max"]):
                metric["max"] = log.value
        at = _time(log.time)
        if log.name not in latest_at or not latest_at[log.name] > at:
            latest_at[log.name] = at
            metric["latest"] = log.value
    return {"metrics": list(metrics.values())}


def strategy_of(objective: dict[str, Any], metric: str) -> str:
    return next(
        (
            s.get("value", "")
            for s in objective.get("metricStrategies") or []
            if s.get("name") == metric
        ),
        "",
    )


def metric_value(metric: dict[str, Any], strategy: str) -> str:
    """A metric's value by strategy: min/max fall back to latest when unavailable."""
    if strategy == "min":
        return str(metric["latest"] if metric.get("min") == C.UNAVAILABLE else metric.get("min"))
    if strategy == "max":
        return str(metric["latest"] if metric.get("max") == C.UNAVAILABLE else metric.get("max"))
    if strategy == "latest":
        return str(metric.get("latest"))
    return C.UNAVAILABLE


def objective_value(trial: dict[str, Any]) -> str:
    """getObjectiveMetricValue: the objective metric by its strategy, or `unavailable`."""
    observed = (trial.get("status") or {}).get("observation")
    if observed is None:
        return C.UNAVAILABLE
    objective = (trial.get("spec") or {}).get("objective") or {}
    name = objective.get("objectiveMetricName", "")
    strategy = strategy_of(objective, name)
    for metric in observed.get("metrics") or []:
        if metric.get("name") == name:
            return metric_value(metric, strategy)
    return C.UNAVAILABLE


def observation_available(trial: dict[str, Any]) -> bool:
    """IsObservationAvailable: the objective's latest value is not `unavailable`."""
    objective = (trial.get("spec") or {}).get("objective")
    if objective is None:
        return False
    observed = (trial.get("status") or {}).get("observation") or {}
    return any(
        m.get("name") == objective.get("objectiveMetricName") and m.get("latest") != C.UNAVAILABLE
        for m in observed.get("metrics") or []
    )
