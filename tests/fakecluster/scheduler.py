"""Scheduling arithmetic for the one node: requests, capacity, and the FailedScheduling text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

DEFAULT_CAPACITY = {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0", "pods": "110"}


def parse_capacity(capacity: dict[str, Any] | None) -> dict[str, Decimal]:
    merged = {**DEFAULT_CAPACITY, **{k: str(v) for k, v in (capacity or {}).items()}}
    return {k: parse_quantity(v) for k, v in merged.items()}


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """Effective requests: the sum over containers, or the largest init container if larger."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}

    def requests(c: dict[str, Any]) -> dict[str, Decimal]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    for c in spec.get("containers") or []:
        for k, v in requests(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in requests(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    total["pods"] = Decimal(1)
    return total


def insufficient(
    capacity: dict[str, Decimal], used: dict[str, Decimal], wanted: dict[str, Decimal]
) -> list[str]:
    """Resources the node cannot give; zero requests always fit."""
    short = []
    for name, amount in wanted.items():
        if amount <= 0:
            continue
        free = capacity.get(name, Decimal(0)) - used.get(name, Decimal(0))
        if amount > free:
            short.append(name)
    return sorted(short)


def add(used: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for k, v in more.items():
        used[k] = used.get(k, Decimal(0)) + v


def failed_scheduling_message(resources: list[str]) -> str:
    reasons = ", ".join(f"1 Insufficient {r}" for r in resources)
    return f"0/1 nodes are available: {reasons}."


def format_quantity(value: Decimal, name: str) -> str:
    if name == "memory" and value == value.to_integral_value():
        gi = value / (1024**3)
        return f"{gi.normalize():f}Gi" if gi == gi.to_integral_value() else f"{int(value)}"
    return f"{value.normalize():f}"
