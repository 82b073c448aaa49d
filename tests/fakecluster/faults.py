"""Injectable faults: what a test wants to go wrong, and for which pods.

A fault matches pods by name (glob), namespace, container, job name, replica type or
labels, and fires a limited number of `times` (None: until cancelled). `job=` is a
TFJob/PyTorchJob's name (training.kubeflow.org/job-name) or a TrainJob's (its JobSet's,
jobset.sigs.k8s.io/jobset-name); `replica_type=` a v1 replica type or a v2 replicated job
(`node`).
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from typing import Any

MATCH_KEYS = ("pod", "namespace", "container", "job", "replica_type", "labels")

# kind -> (default parameters, default times)
KINDS: dict[str, tuple[dict[str, Any], int | None]] = {
    # Pods stay Pending: FailedScheduling "0/1 nodes are available: 1 Insufficient <resource>."
    "unschedulable": ({"resource": "cpu"}, None),
    # ErrImagePull then ImagePullBackOff; cause "not-found" or "auth".
    "image_pull": ({"cause": "not-found"}, None),
    # The container is killed after `after_lines` lines (or `delay` s): OOMKilled, exit 137.
    "oom": ({"after_lines": 0, "delay": 0.0}, 1),
    # The container's first instance exits `exit_code` after `after_lines` lines, then restarts.
    "restart": ({"after_lines": 1, "exit_code": 1}, 1),
    # The next follow of a matching pod's log is cut after `after_bytes` bytes, mid-line.
    "log_cut": ({"after_bytes": 10}, 1),
    # Every open watch stream is closed after `after_events` more events (abrupt: no chunk end).
    "watch_drop": ({"after_events": 0, "abrupt": False}, 1),
    # The next watch that resumes from a resourceVersion gets the 410 Expired ERROR event.
    "watch_expire": ({}, 1),
}


@dataclass
class Fault:
    """One injected fault; `cancel()` it to let the cluster recover."""

    kind: str
    params: dict[str, Any]
    match: dict[str, Any]
    times: int | None
    fired: int = 0
    active: bool = True
    _owner: Faults | None = field(default=None, repr=False)

    def cancel(self) -> None:
        self.active = False
        if self._owner is not None:
            self._owner.changed()

    def matches(self, pod: dict[str, Any] | None, container: str | None = None) -> bool:
        if pod is None:
            return not self.match
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        m = self.match
        if "pod" in m and not fnmatch.fnmatchcase(meta.get("name", ""), m["pod"]):
            return False
        if "namespace" in m and not fnmatch.fnmatchcase(meta.get("namespace", ""), m["namespace"]):
            return False
        if "container" in m and container is not None and container != m["container"]:
            return False
        if "job" in m and m["job"] not in (
            labels.get("training.kubeflow.org/job-name"),
            labels.get("jobset.sigs.k8s.io/jobset-name"),
        ):
            return False
        if "replica_type" in m and str(m["replica_type"]).lower() not in (
            labels.get("training.kubeflow.org/replica-type", "").lower(),
            labels.get("jobset.sigs.k8s.io/replicatedjob-name", "").lower(),
        ):
            return False
        return all(labels.get(k) == v for k, v in (m.get("labels") or {}).items())


class Faults:
    """The faults of one cluster; components ask `take`/`peek` at the moment they apply."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._listeners: list[Any] = []

    def add(self, kind: str, **kwargs: Any) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        defaults, times = KINDS[kind]
        times = kwargs.pop("times", times)
        match = {k: kwargs.pop(k) for k in MATCH_KEYS if k in kwargs}
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"fault {kind!r} takes no parameter(s) {sorted(unknown)}")
        fault = Fault(kind, {**defaults, **kwargs}, match, times, _owner=self)
        with self._lock:
            self._faults.append(fault)
        self.changed()
        return fault

    def on_change(self, listener: Any) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def peek(
        self, kind: str, pod: dict[str, Any] | None = None, container: str | None = None
    ) -> Fault | None:
        """The first active matching fault, without using it up."""
        with self._lock:
            return self._first(kind, pod, container)

    def take(
        self, kind: str, pod: dict[str, Any] | None = None, container: str | None = None
    ) -> Fault | None:
        """The first active matching fault, counting one firing."""
        with self._lock:
            f = self._first(kind, pod, container)
            if f is not None:
                f.fired += 1
                if f.times is not None and f.fired >= f.times:
                    f.active = False
            return f

    def _first(self, kind: str, pod: dict[str, Any] | None, container: str | None) -> Fault | None:
        return next(
            (f for f in self._faults if f.active and f.kind == kind and f.matches(pod, container)),
            None,
        )

    def count(self, fault: Fault) -> None:
        """A fault that `peek` found has applied (it stays active: a condition, not an event)."""
        with self._lock:
            fault.fired += 1

    def clear(self) -> None:
        with self._lock:
            for f in self._faults:
                f.active = False
            self._faults.clear()
        self.changed()
