"""The ResourceQuota admission plugin, for pods: a pod whose requests would take the
namespace past a quota's `spec.hard`, or that does not state a cpu or memory request or
limit a quota tracks, is refused with the real server's 403, so the controller creating it
(the v1 operator, the batch Job controller) records FailedCreate.

Usage is counted live from the namespace's pods that are not terminal (the real plugin
reads `status.used`, which the quota controller keeps equal to that).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from .resources import CORE
from .scheduler import format_quantity, pod_requests

Obj = dict[str, Any]


def _amounts(pod: Obj) -> dict[str, Decimal]:
    """A pod's usage under every name a quota may use: `requests.cpu` (also `cpu`: the
    scheduler's effective requests), `limits.cpu`, `pods`, ...."""
    requests = pod_requests(pod)
    usage: dict[str, Decimal] = {"pods": requests.pop("pods")}
    for name, amount in requests.items():
        usage[f"requests.{name}"] = amount
        if name in ("cpu", "memory", "ephemeral-storage"):
            usage[name] = amount
    for container in (pod.get("spec") or {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        for name, value in limits.items():
            key = f"limits.{name}"
            usage[key] = usage.get(key, Decimal(0)) + parse_quantity(value)
    return usage


#: Quota keys every container must state a value for (requests default to limits).
_MUST_STATE = {
    "cpu": ("requests", "cpu"),
    "requests.cpu": ("requests", "cpu"),
    "memory": ("requests", "memory"),
    "requests.memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}


def _unstated(hard: dict[str, Any], pod: Obj) -> str:
    """`limits.cpu for: a; requests.cpu for: a,b`: what the containers leave unsaid."""
    missing: dict[str, list[str]] = {}
    for key in hard:
        if key not in _MUST_STATE:
            continue
        kind, name = _MUST_STATE[key]
        shown = f"{kind}.{name}"
        for container in (pod.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            stated = resources.get("limits") or {}
            if kind == "requests":
                stated = {**stated, **(resources.get("requests") or {})}
            if name not in stated and container.get("name") not in missing.get(shown, []):
                missing.setdefault(shown, []).append(container.get("name", ""))
    return "; ".join(f"{key} for: {','.join(names)}" for key, names in sorted(missing.items()))


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
        unstated = _unstated(hard_spec, pod)
        if unstated:
            raise CORE["pods"].forbidden(
                pod["metadata"]["name"],
                f"failed quota: {quota['metadata']['name']}: must specify {unstated}",
            )
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
