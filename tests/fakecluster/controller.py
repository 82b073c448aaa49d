"""A controller-runtime-like reconcile loop: store events enqueue keys, one worker thread.

Subclasses name the resource they own (`kind_plural`, objects of `kind`), the resources of
the objects those control (`dependents`: their events enqueue the owner; or `keys_for`), and
implement `reconcile(obj)`, called with the object unless it is gone or being deleted
(`finalize(obj)` is called for one being deleted: a controller removes its finalizer
there). A periodic resync re-enqueues every object of the owned resource, as an informer's
resync would.
"""

from __future__ import annotations

import contextlib
import copy
import threading

from .errors import StatusError
from .recorder import EventRecorder
from .registry import Registry
from .store import Obj, WatchEvent
from .timeutil import rfc3339
from .worker import Worker

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


class Controller(Worker[Key]):
    """Reconciles objects of `kind_plural`, one key at a time."""

    kind_plural = ""
    kind = ""
    #: Resources of the objects `kind` objects control: their events enqueue the owner.
    dependents: tuple[str, ...] = ()
    component = "controller"

    def __init__(self, registry: Registry, resync: float = 0.5) -> None:
        super().__init__(f"fake-{self.component}", resync)
        self.registry = registry
        self.store = registry.store
        self.recorder = EventRecorder(registry, self.component)
        self._pending: set[Key] = set()
        self._lock = threading.Lock()
        self.store.add_listener(self._on_event)

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
        return self.owner_keys(ev, self.kind) if ev.resource in self.dependents else []

    def deleted(self, obj: Obj) -> None:
        """An owned object is gone (forget what was remembered about it)."""

    def owner_keys(self, ev: WatchEvent, kind: str) -> list[Key]:
        return [
            (ev.namespace, ref["name"])
            for ref in ev.obj["metadata"].get("ownerReferences") or []
            if ref.get("controller") and ref.get("kind") == kind
        ]

    def handle(self, item: Key) -> None:
        with self._lock:
            self._pending.discard(item)
        obj = self.store.get(self.kind_plural, *item)
        if obj is None:
            return
        if obj["metadata"].get("deletionTimestamp"):
            self.finalize(obj)
        else:
            self.reconcile(obj)

    def tick(self) -> None:
        """The resync: every object of the owned resource (once it is served) again."""
        with contextlib.suppress(KeyError):
            self.registry.by_plural(self.kind_plural)
            items, _ = self.store.list(self.kind_plural)
            for obj in items:
                meta = obj["metadata"]
                self.enqueue(meta.get("namespace", ""), meta["name"])

    # -- helpers ------------------------------------------------------------------------
    def reconcile(self, obj: Obj) -> None:
        raise NotImplementedError

    def finalize(self, obj: Obj) -> None:
        """An object being deleted (its finalizers are the controller's to remove)."""

    def drop_finalizer(self, obj: Obj, finalizer: str) -> None:
        """Remove `finalizer` from the object (which then goes if it was the last)."""
        uid = obj["metadata"]["uid"]

        def drop(o: Obj) -> bool | None:
            fins = o["metadata"].get("finalizers") or []
            if o["metadata"]["uid"] != uid or finalizer not in fins:
                return False
            rest = [f for f in fins if f != finalizer]
            if rest:
                o["metadata"]["finalizers"] = rest
            else:
                o["metadata"].pop("finalizers", None)
            return None

        self.registry.mutate(
            self.kind_plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], drop
        )

    def add_finalizer(self, obj: Obj, finalizer: str) -> None:
        uid = obj["metadata"]["uid"]

        def add(o: Obj) -> bool | None:
            fins = o["metadata"].get("finalizers") or []
            if o["metadata"]["uid"] != uid or finalizer in fins:
                return False
            o["metadata"]["finalizers"] = [*fins, finalizer]
            return None

        self.registry.mutate(
            self.kind_plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], add
        )

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

    @staticmethod
    def status_copy(obj: Obj) -> Obj:
        """The object's status to change; `write_status` writes it back if it changed."""
        return copy.deepcopy(obj.get("status") or {})

    def write_status(self, obj: Obj, status: Obj) -> None:
        """`status` onto the object (the reconciled copy), unless it is the same or the object was
        replaced by another of its name."""
        if status == (obj.get("status") or {}):
            return
        uid = obj["metadata"]["uid"]

        def apply(o: Obj) -> bool | None:
            if o["metadata"]["uid"] != uid:
                return False
            o["status"] = status
            return None

        self.registry.mutate(
            self.kind_plural, obj["metadata"].get("namespace"), obj["metadata"]["name"], apply
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
