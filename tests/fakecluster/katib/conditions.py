"""Conditions as Katib's types set them (experiments, suggestions, trials v1beta1 util.go).

A condition is {type, status, reason, message, lastUpdateTime, lastTransitionTime}. Setting
one whose status and reason are unchanged does nothing; otherwise the old one is removed and
the new one appended, so the last condition is the latest change (the CRDs' printer columns
read `.status.conditions[-1:]`), keeping lastTransitionTime when only the reason changed.
"""

from __future__ import annotations

from ..store import Obj
from ..timeutil import rfc3339


def get(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def true(status: Obj | None, type_: str) -> bool:
    cond = get(status or {}, type_)
    return cond is not None and cond.get("status") == "True"


def set_(status: Obj, type_: str, value: str, reason: str, message: str) -> None:
    current = get(status, type_)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return
    now = rfc3339()
    cond = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    if current is not None and current.get("status") == value:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", now)
    remove(status, type_)
    status.setdefault("conditions", []).append(cond)


def remove(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def finish(status: Obj, type_: str, reason: str, message: str) -> None:
    """Mark{Succeeded,Failed,MetricsUnavailable,...}: Running goes False (same reason and
    message), then the final condition is set."""
    running = get(status, "Running")
    if running is not None:
        set_(status, "Running", "False", running.get("reason", ""), running.get("message", ""))
    set_(status, type_, "True", reason, message)
