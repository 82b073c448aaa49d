"""The ResourceQuota admission plugin, for pods: a pod whose requests would take the
namespace past a quota's `spec.hard` is refused with the real server's 403, so the
controller creating it (the v1 operator, the batch Job controller) records FailedCreate.

Usage is counted live from the namespace's pods that are not terminal (the real plugin
reads `status.used`, which the quota controller keeps equal to that).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from .resources import CORE
from .scheduler import format_quantity

Obj = dict[str, Any]


def _amounts(pod: Obj) -> dict[str, Decimal]:
    """A pod's usage under every name a quota may use: `cpu` = `requests.cpu`, ...."""
    spec = pod.get("spec") or {}
    usage: dict[str, Decimal] = {"pods": Decimal(1)}
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}  # requests default to limits
        for prefix, values in (("requests.", requests), ("limits.", limits)):
            for name, value in values.items():
                key = prefix + name
                usage[key] = usage.get(key, Decimal(0)) + parse_quantity(value)
    for name in ("cpu", "memory", "ephemeral-storage"):
        if f"requests.{name}" in usage:
            usage[name] = usage[f"requests.{name}"]
    return usage


def _live(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def check_pod_quota(quotas: list[Obj], pods: list[Obj], pod: Obj) -> None:
    """Raise the 403 the real plugin gives when `pod` does not fit every quota."""
    wanted = _amounts(pod)
    used: dict[str, Decimal] = {}
    for other in pods:
        if _live(other):
            for key, amount in _amounts(other).items():
                used[key] = used.get(key, Decimal(0)) + amount
    for quota in sorted(quotas, key=lambda q: q["metadata"]["name"]):
        hard_spec = (quota.get("spec") or {}).get("hard") or {}
        hard = {key: parse_quantity(value) for key, value in hard_spec.items()}
        over = sorted(
            key
            for key, limit in hard.items()
            if wanted.get(key, Decimal(0)) > 0 and used.get(key, Decimal(0)) + wanted[key] > limit
        )
        if over:
            raise CORE["pods"].forbidden(
                pod["metadata"]["name"],
                f"exceeded quota: {quota['metadata']['name']}, "
                f"requested: {_show(wanted, over)}, used: {_show(used, over)}, "
                f"limited: {_show(hard, over)}",
            )


def _show(values: dict[str, Decimal], keys: list[str]) -> str:
    """`requests.cpu=4,limits.memory=2Gi`, as the plugin prints them."""
    return ",".join(
        f"{key}={format_quantity(values.get(key, Decimal(0)), key.split('.')[-1])}" for key in keys
    )
