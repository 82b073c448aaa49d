"""The object store: one global resourceVersion, and a bounded history for watches.

Like etcd behind the watch cache: every write gets the next resourceVersion, watches replay
the history strictly after the version they resume from, and a version older than the
window is answered with 410 Expired.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """One committed change; `obj` and `old` are snapshots that nobody mutates."""

    rv: int
    resource: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace", ""))


class Expired(Exception):
    """A watch asked for history that has been compacted away."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


class Store:
    """Thread-safe objects by resource and (namespace, name), with change notification."""

    def __init__(self, history_size: int = 1000, first_rv: int = 1000) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = first_rv
        self._history: deque[WatchEvent] = deque()
        self._history_size = history_size
        self._compacted = first_rv
        self._listeners: list[Callable[[WatchEvent], None]] = []

    # -- reading -----------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get(resource, {}).get((namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        """Objects in key order (namespace, name), as etcd returns them, and the list RV."""
        with self.lock:
            items = [
                copy.deepcopy(o)
                for k, o in sorted(self._objects.get(resource, {}).items())
                if not namespace or k[0] == namespace
            ]
            return items, self._rv

    def exists(self, resource: str, namespace: str | None, name: str) -> bool:
        with self.lock:
            return (namespace or "", name) in self._objects.get(resource, {})

    # -- writing -----------------------------------------------------------------------
    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """In-process controllers: called under the lock, in commit order; must not block."""
        with self.lock:
            self._listeners.append(listener)

    def _commit(self, resource: str, kind: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        event = WatchEvent(self._rv, resource, kind, obj, old)
        self._history.append(event)
        while len(self._history) > self._history_size:
            dropped = self._history.popleft()
            self._compacted = dropped.rv
        for listener in list(self._listeners):
            listener(event)
        self.changed.notify_all()
        return copy.deepcopy(obj)

    def insert(self, resource: str, obj: Obj) -> Obj | None:
        """Add a new object; None if the key is taken (the caller answers 409)."""
        with self.lock:
            bucket = self._objects.setdefault(resource, {})
            key = _key(obj)
            if key in bucket:
                return None
            stored = copy.deepcopy(obj)
            bucket[key] = stored
            return self._commit(resource, "ADDED", stored, None)

    def replace(self, resource: str, obj: Obj) -> Obj | None:
        """Overwrite an existing object; None if it is gone."""
        with self.lock:
            bucket = self._objects.setdefault(resource, {})
            key = _key(obj)
            old = bucket.get(key)
            if old is None:
                return None
            stored = copy.deepcopy(obj)
            bucket[key] = stored
            return self._commit(resource, "MODIFIED", stored, old)

    def mutate(
        self, resource: str, namespace: str | None, name: str, fn: Callable[[Obj], bool | None]
    ) -> Obj | None:
        """Read-modify-write under the lock; `fn` returns False to skip the write."""
        with self.lock:
            old = self._objects.get(resource, {}).get((namespace or "", name))
            if old is None:
                return None
            new = copy.deepcopy(old)
            if fn(new) is False or new == old:
                return copy.deepcopy(old)
            self._objects[resource][_key(new)] = new
            return self._commit(resource, "MODIFIED", new, old)

    def remove(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        with self.lock:
            old = self._objects.get(resource, {}).pop((namespace or "", name), None)
            if old is None:
                return None
            final = copy.deepcopy(old)
            return self._commit(resource, "DELETED", final, old)

    # -- history -----------------------------------------------------------------------
    def events_after(self, rv: int) -> builtins.list[WatchEvent]:
        """Events with resourceVersion > rv; Expired if some of them were dropped."""
        with self.lock:
            if rv < self._compacted:
                raise Expired(rv, self._compacted)
            out: list[WatchEvent] = []
            for ev in reversed(self._history):
                if ev.rv <= rv:
                    break
                out.append(ev)
            out.reverse()
            return out

    def compact(self) -> int:
        """Forget all history now: any watch resuming from before this point gets 410."""
        with self.lock:
            self._history.clear()
            self._compacted = self._rv
            self.changed.notify_all()
            return self._rv

    def oldest_available(self) -> int:
        with self.lock:
            return self._compacted
