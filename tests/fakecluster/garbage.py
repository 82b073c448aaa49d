"""Garbage collector and namespace controller: ownerReferences and finalizers at work.

Background: once an owner is gone, dependents whose owners are all gone are deleted.
Foreground: the owner keeps `foregroundDeletion` until its dependents are gone; a dependent
that has dependents of its own is deleted in the foreground too (TrainJob -> JobSet -> Jobs
-> pods: the TrainJob goes last), as the real collector does.
Orphan: dependents lose their ownerReference, then the owner goes.
A terminating namespace is emptied, then removed.
"""

from __future__ import annotations

import contextlib

from .errors import StatusError
from .registry import Registry
from .store import Obj, WatchEvent
from .worker import Worker

DEPENDENT_RESOURCES = (
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "serviceaccounts",
    "jobs",
    "events",
)
ORPHAN_SWEEP = ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "jobs")


class GarbageCollector(Worker[WatchEvent]):
    """One thread reacting to deletions; a periodic sweep catches anything missed."""

    def __init__(self, registry: Registry, sweep_interval: float = 0.5) -> None:
        super().__init__("fake-gc", sweep_interval)
        self.registry = registry
        self.store = registry.store
        self.store.add_listener(self._on_event)

    def _on_event(self, ev: WatchEvent) -> None:
        meta = ev.obj.get("metadata", {})
        if ev.type == "DELETED" or meta.get("deletionTimestamp"):
            self._queue.put(ev)

    # -- helpers ------------------------------------------------------------------------
    def _resources(self) -> list[str]:
        return list(DEPENDENT_RESOURCES) + [i.plural for i in self.registry.custom_resources()]

    def _objects(self, namespace: str) -> list[tuple[str, Obj]]:
        out = []
        for plural in self._resources():
            items, _ = self.store.list(plural, namespace)
            out += [(plural, o) for o in items]
        return out

    def _dependents(self, namespace: str, uid: str) -> list[tuple[str, Obj]]:
        return [
            (plural, o)
            for plural, o in self._objects(namespace)
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    def _delete(self, plural: str, obj: Obj, propagation: str | None = None) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and propagation is None:
            return
        with contextlib.suppress(StatusError):
            self.registry.delete(
                self.registry.by_plural(plural), meta.get("namespace"), meta["name"], propagation
            )

    def _drop_finalizer(self, plural: str, obj: Obj, finalizer: str) -> None:
        meta = obj["metadata"]

        def drop(o: Obj) -> bool | None:
            if o["metadata"].get("uid") != meta["uid"]:
                return False
            fins = [f for f in o["metadata"].get("finalizers") or [] if f != finalizer]
            if fins:
                o["metadata"]["finalizers"] = fins
            else:
                o["metadata"].pop("finalizers", None)
            return None

        self.registry.mutate(plural, meta.get("namespace"), meta["name"], drop)

    # -- reactions ----------------------------------------------------------------------
    def handle(self, ev: WatchEvent) -> None:
        meta = ev.obj["metadata"]
        namespace = meta.get("namespace") or ""
        if ev.resource == "namespaces":
            self._namespace(ev.obj)
            return
        if ev.type == "DELETED" and namespace:
            objects = self._objects(namespace)
            alive = {o["metadata"]["uid"] for _, o in objects}
            owner_uids = {r.get("uid") for r in meta.get("ownerReferences") or []}
            for plural, owner in objects:
                if owner["metadata"]["uid"] in owner_uids and owner["metadata"].get(
                    "deletionTimestamp"
                ):
                    self._finalize(plural, owner)
            for plural, dep in self._dependents(namespace, meta["uid"]):
                owners = [r.get("uid") for r in dep["metadata"].get("ownerReferences") or []]
                if not any(u in alive for u in owners):
                    self._delete(plural, dep)
        elif meta.get("deletionTimestamp"):
            self._finalize(ev.resource, ev.obj)

    def _finalize(self, plural: str, obj: Obj) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or ""
        finalizers = meta.get("finalizers") or []
        if "orphan" in finalizers:
            for dep_plural, dep in self._dependents(namespace, meta["uid"]):

                def unown(o: Obj, uid: str = meta["uid"]) -> None:
                    refs = [
                        r for r in o["metadata"].get("ownerReferences") or [] if r["uid"] != uid
                    ]
                    if refs:
                        o["metadata"]["ownerReferences"] = refs
                    else:
                        o["metadata"].pop("ownerReferences", None)

                self.registry.mutate(
                    dep_plural, dep["metadata"].get("namespace"), dep["metadata"]["name"], unown
                )
            self._drop_finalizer(plural, obj, "orphan")
        elif "foregroundDeletion" in finalizers:
            deps = self._dependents(namespace, meta["uid"])
            for dep_plural, dep in deps:
                dep_meta = dep["metadata"]
                if "foregroundDeletion" in (dep_meta.get("finalizers") or []):
                    continue
                owns = bool(self._dependents(namespace, dep_meta["uid"]))
                self._delete(dep_plural, dep, "Foreground" if owns else None)
            blocking = [
                d
                for _, d in deps
                if any(
                    r.get("uid") == meta["uid"] and r.get("blockOwnerDeletion")
                    for r in d["metadata"].get("ownerReferences") or []
                )
            ]
            if not blocking:
                self._drop_finalizer(plural, obj, "foregroundDeletion")

    def _namespace(self, ns: Obj) -> None:
        meta = ns["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        current = self.store.get("namespaces", None, meta["name"])
        if current is None:
            return
        objects = self._objects(meta["name"])
        for plural, obj in objects:
            self._delete(plural, obj)
        if not objects:

            def finalize(o: Obj) -> None:
                o.setdefault("spec", {})["finalizers"] = []

            self.registry.mutate("namespaces", None, meta["name"], finalize)

    def tick(self) -> None:
        """The sweep: what the events missed."""
        for plural in self._resources():
            items, _ = self.store.list(plural)
            for obj in items:
                if obj["metadata"].get("deletionTimestamp"):
                    self._finalize(plural, obj)
        namespaces, _ = self.store.list("namespaces")
        for ns in namespaces:
            self._namespace(ns)
        # owners that vanished while a dependent was being created
        for plural in ORPHAN_SWEEP:
            items, _ = self.store.list(plural)
            by_ns: dict[str, set[str]] = {}
            for obj in items:
                refs = obj["metadata"].get("ownerReferences") or []
                if not refs or obj["metadata"].get("deletionTimestamp"):
                    continue
                namespace = obj["metadata"].get("namespace", "")
                if namespace not in by_ns:
                    by_ns[namespace] = {o["metadata"]["uid"] for _, o in self._objects(namespace)}
                if not any(r.get("uid") in by_ns[namespace] for r in refs):
                    self._delete(plural, obj)
