"""A controller-runtime-like reconcile loop: store events enqueue keys, one worker thread.

Subclasses name the resource they own (`kind_plural`), map events of other resources to
owner keys (`keys_for`), and implement `reconcile(namespace, name)`. A periodic resync
re-enqueues every object of the owned resource, as an informer's resync would.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import traceback
from typing import Any

from .errors import StatusError
from .recorder import EventRecorder
from .registry import Registry
from .store import Obj, WatchEvent
from .timeutil import rfc3339

Key = tuple[str, str]


def find_condition(status: Obj | None, type_: str) -> Obj | None:
    return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == type_), None)


def condition_true(status: Obj | None, type_: str) -> bool:
    c = find_condition(status, type_)
    return c is not None and c.get("status") == "True"


def set_condition(status: Obj, cond: Obj) -> None:
    """meta.SetStatusCondition: lastTransitionTime kept unless the status changes."""
    conds = status.setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == cond["type"]:
            new = {**c, **cond}
            if c.get("status") == cond.get("status"):
                new["lastTransitionTime"] = c.get("lastTransitionTime") or rfc3339()
            else:
                new["lastTransitionTime"] = cond.get("lastTransitionTime") or rfc3339()
            conds[i] = new
            return
    conds.append({**cond, "lastTransitionTime": cond.get("lastTransitionTime") or rfc3339()})


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def owner_ref(obj: Obj, block: bool = True) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


class Controller:
    """Reconciles objects of `kind_plural`, one key at a time."""

    kind_plural = ""
    component = "controller"

    def __init__(self, registry: Registry, resync: float = 0.5) -> None:
        self.registry = registry
        self.store = registry.store
        self.resync = resync
        self.recorder = EventRecorder(registry, self.component)
        self._queue: queue.Queue[Key | None] = queue.Queue()
        self._pending: set[Key] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"fake-{self.component}")
        self._thread.daemon = True
        self.store.add_listener(self._on_event)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(10)

    # -- queue --------------------------------------------------------------------------
    def enqueue(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        self._queue.put(key)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource == self.kind_plural:
            if ev.type != "DELETED":
                meta = ev.obj["metadata"]
                self.enqueue(meta.get("namespace", ""), meta["name"])
            else:
                self.deleted(ev.obj)
            return
        for key in self.keys_for(ev):
            self.enqueue(*key)

    def keys_for(self, ev: WatchEvent) -> list[Key]:
        """Owner keys to reconcile for an event of another resource."""
        return []

    def deleted(self, obj: Obj) -> None:
        """An owned object is gone (forget what was remembered about it)."""

    def owner_keys(self, ev: WatchEvent, kind: str) -> list[Key]:
        return [
            (ev.namespace, ref["name"])
            for ref in ev.obj["metadata"].get("ownerReferences") or []
            if ref.get("controller") and ref.get("kind") == kind
        ]

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                key = self._queue.get(timeout=self.resync)
            except queue.Empty:
                key = None
            if self._stop.is_set():
                break
            if key is not None:
                with self._lock:
                    self._pending.discard(key)
                try:
                    self.reconcile(*key)
                except Exception:
                    traceback.print_exc()
            if time.monotonic() - last >= self.resync:
                last = time.monotonic()
                with contextlib.suppress(KeyError):
                    self.registry.by_plural(self.kind_plural)
                    items, _ = self.store.list(self.kind_plural)
                    for obj in items:
                        meta = obj["metadata"]
                        self.enqueue(meta.get("namespace", ""), meta["name"])

    # -- helpers ------------------------------------------------------------------------
    def reconcile(self, namespace: str, name: str) -> None:
        raise NotImplementedError

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    def owned(self, plural: str, owner: Obj) -> list[Obj]:
        items, _ = self.store.list(plural, owner["metadata"].get("namespace"))
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in items
            if any(
                r.get("uid") == uid and r.get("controller")
                for r in o["metadata"].get("ownerReferences") or []
            )
        ]

    def write_status(self, plural: str, obj: Obj, status: Obj, before: Any) -> None:
        if status == before:
            return
        uid = obj["metadata"]["uid"]

        def apply(o: Obj) -> bool | None:
            if o["metadata"]["uid"] != uid:
                return False
            o["status"] = status
            return None

        self.registry.mutate(
            plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], apply
        )

    def delete(self, plural: str, obj: Obj, propagation: str | None = None) -> bool:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return False
        try:
            self.registry.delete(
                self.registry.by_plural(plural), meta.get("namespace"), meta["name"], propagation
            )
        except StatusError:
            return False
        return True
