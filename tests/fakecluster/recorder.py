"""core/v1 Events, recorded and aggregated the way client-go's EventRecorder does."""

from __future__ import annotations

import threading
import time
from typing import Any

from .errors import StatusError
from .registry import Registry
from .resources import CORE
from .timeutil import rfc3339


def object_reference(obj: dict[str, Any], field_path: str | None = None) -> dict[str, Any]:
    meta = obj["metadata"]
    ref = {
        "kind": obj.get("kind"),
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
        "apiVersion": obj.get("apiVersion"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v is not None}


class EventRecorder:
    """Records Events; a repeat of the same event bumps `count` and `lastTimestamp`."""

    def __init__(self, registry: Registry, component: str, host: str | None = None) -> None:
        self.registry = registry
        self.component = component
        self.host = host
        self._lock = threading.Lock()
        self._seen: dict[tuple[Any, ...], str] = {}
        self._last = 0

    def event(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        field_path: str | None = None,
    ) -> None:
        ref = object_reference(obj, field_path)
        namespace = ref.get("namespace") or "default"
        key = (ref.get("uid"), ref.get("fieldPath"), type_, reason, message)
        now = rfc3339()
        with self._lock:
            name = self._seen.get(key)
            if name is not None:

                def bump(ev: dict[str, Any]) -> None:
                    ev["count"] = int(ev.get("count", 1)) + 1
                    ev["lastTimestamp"] = now

                if self.registry.mutate("events", namespace, name, bump) is not None:
                    return
            # client-go names events `<object>.<unix nanos in hex>`: they list in time order
            self._last = max(self._last + 1, time.time_ns())
            name = f"{ref['name']}.{self._last:x}"
            source = {"component": self.component}
            if self.host:
                source["host"] = self.host
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": ref,
                "reason": reason,
                "message": message,
                "source": source,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": type_,
                "eventTime": None,
                "reportingComponent": self.component,
                "reportingInstance": self.host or "",
            }
            try:
                self.registry.create(CORE["events"], namespace, event)
            except StatusError:
                return  # namespace gone: events are best effort, as in client-go
            self._seen[key] = name
