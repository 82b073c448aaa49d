"""A followed job's pods: found by the operator's labels (else older labels, else their
ownerReferences), each replica's state as its pod changes, and one log follower per
container, started from where the lines this machine recorded end (`cursors.json`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.informer import Informer
from ciao.backend.kubeflow.log_follower import ContainerFollower, ContainerView
from ciao.backend.kubeflow.manifests import pod_selectors, replica_of
from ciao.backend.kubeflow.pods import diagnose_pod, replica_state
from ciao.backend.kubeflow.run import KubeflowRun
from ciao.backend.kubeflow.scheduling import unclaimed_by, unscheduled_hint
from ciao.backend.record import write_atomic
from ciao.backend.types import Diagnosis, Event
from ciao.errors import BackendError

log = logging.getLogger("ciao.kubeflow")

#: How long a follower of a still-running pod may go on after the job has ended (a PS
#: left running by cleanPodPolicy None, a pod the operator is about to delete).
DRAIN_GRACE = 3.0


class PodWatch:
    """The pods' informer and followers; its handlers run under the follower's lock."""

    def __init__(
        self,
        cluster: Cluster,
        run: KubeflowRun,
        fallback_after: float,
        lock: threading.RLock,
        put: Callable[[Event | BackendError], bool],
        diagnose: Callable[[Diagnosis], None],
        seen: Callable[[str, str, dict[str, Any]], None],
        missing_pull: dict[str, tuple[str, ...]],
    ) -> None:
        """`lock` is the follower's, held by every handler; `put` takes the followers'
        lines and the replicas' states, `diagnose` what is wrong with a pod; `seen(pod
        name, replica, pod)` is told of every pod first; `missing_pull`: pod name -> the
        pull secrets the kubelet could not find (the event watch learns them)."""
        self.cluster = cluster
        self.run = run
        self.fallback_after = fallback_after
        self.lock = lock
        self.put = put
        self.diagnose = diagnose
        self.seen = seen
        self.missing_pull = missing_pull
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> pod
        #: When each pod was first seen (monotonic), by uid: how long it has been Pending.
        self.first_seen: dict[str, float] = {}
        #: Said that no scheduler takes the pods (once for the job).
        self.unclaimed_said = False
        #: Pod name -> replica, for events about pods whose names do not say it (TrainJob).
        self.replicas: dict[str, str] = {}
        self.states: dict[str, tuple[str, str, int]] = {}
        self.followers: dict[tuple[str, str], ContainerFollower] = {}
        #: Told whenever a pod changes (and when the job's state does): followers wait on it.
        self.changed = threading.Condition()
        self.cursors = self._saved_cursors()
        self.selectors = pod_selectors(run.name, run.kind)
        self.selector: str | None = self.selectors[0]
        self.by_owner = False  # pods found only through their ownerReferences
        self.fell_back = False
        self.informer = self._informer(self.selector)

    def _informer(self, selector: str | None) -> Informer:
        ns = self.run.namespace
        return Informer(
            self.cluster,
            f"/api/v1/namespaces/{ns}/pods",
            self.on_pod,
            label_selector=selector,
            on_error=self._watch_failed,
        )

    def _watch_failed(self, error: ApiError) -> None:
        self.put(explain(error, "watch", "pods", self.run.namespace))  # following fails

    # ---- finding the pods --------------------------------------------------------------

    def sync(self) -> None:
        """Read the job's pods now, so a verdict does not outrun the pod watch (the lock
        held)."""
        try:
            found = self.cluster.request(
                "GET",
                f"/api/v1/namespaces/{self.run.namespace}/pods",
                {"labelSelector": self.selector},
            )
        except ApiError as exc:
            log.info("could not read the pods of %s: %s", self.run.name, exc)
            return
        for pod in found.get("items") or []:
            self._on_pod("MODIFIED", pod)

    def maybe_fall_back(self, since: float) -> None:
        """Old operators label pods differently: if the operator's labels find no pod for a
        while (`since`: when pods could first be expected), try the older labels, then the
        pods whose ownerReference is the job (the lock held)."""
        run = self.run
        if self.pods or self.fell_back or time.monotonic() - since < self.fallback_after:
            return
        self.fell_back = True
        path = f"/api/v1/namespaces/{run.namespace}/pods"
        for selector in self.selectors[1:]:
            if self.cluster.request("GET", path, {"labelSelector": selector}).get("items"):
                log.info("pods of %s found with the older labels %s", run.name, selector)
                self._switch(selector)
                return
        pods = self.cluster.request("GET", path).get("items") or []
        if any(_owned_by(pod, run.uid) for pod in pods):
            log.info("pods of %s found by their ownerReferences", run.name)
            self.by_owner = True
            self._switch(None)
            return
        waited = int(time.monotonic() - since)
        controller = (
            "Kubeflow Trainer's controller (and JobSet's)"
            if run.kind.api == "v2"
            else "the Kubeflow training operator"
        )
        self.diagnose(
            Diagnosis(
                "job",
                "NoPods",
                f"no pod of this job has appeared after {waited} s: is {controller} running, "
                "and watching this namespace? (kubectl get pods -A | grep -e trainer -e "
                "training-operator -e jobset); its Events may say more (kubectl describe "
                f"{run.kind.plural} {run.name})",
            )
        )

    def note_unclaimed(self) -> None:
        """A pod whose schedulerName no scheduler serves stays Pending with no event and
        no condition at all: after the wait for pods, say so, once for the job (the lock
        held)."""
        if self.unclaimed_said:
            return
        now = time.monotonic()
        for uid, pod in self.pods.items():
            waited = now - self.first_seen.get(uid, now)
            scheduler = unclaimed_by(pod)
            if scheduler and waited >= self.fallback_after:
                self.unclaimed_said = True
                self.diagnose(
                    Diagnosis("job", "NotScheduled", unscheduled_hint(scheduler, int(waited)))
                )
                return

    def pod_named(self, name: str) -> dict[str, Any] | None:
        """The latest view of the job's pod `name`, if the watch has seen it."""
        return next((p for p in self.pods.values() if p["metadata"].get("name") == name), None)

    def _switch(self, selector: str | None) -> None:
        self.informer.stop()
        self.selector = selector
        self.informer = self._informer(selector).start()

    # ---- each pod ----------------------------------------------------------------------

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        with self.lock:
            self._on_pod(kind, pod)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self.run
        if self.by_owner and not _owned_by(pod, run.uid):
            return
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        replica = replica_of(pod)
        self.replicas[pod["metadata"]["name"]] = replica
        self.seen(pod["metadata"]["name"], replica, pod)
        with self.changed:
            if kind == "DELETED":
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
                self.first_seen.setdefault(uid, time.monotonic())
            self.changed.notify_all()
        self._report_state(replica, pod, deleted=kind == "DELETED")
        if kind == "DELETED":
            return
        missing = self.missing_pull.get(pod["metadata"]["name"], ())
        for diagnosis in diagnose_pod(pod, replica, missing):
            self.diagnose(diagnosis)
        container = run.kind.container
        key = (uid, container)
        if key not in self.followers:
            name, ns = pod["metadata"]["name"], run.namespace
            follower = ContainerFollower(
                self.cluster,
                f"/api/v1/namespaces/{ns}/pods/{name}",
                container,
                replica,
                lambda: self._view(uid, container),
                self.changed,
                self.put,
                start=_cursor(self.cursors.get(name)),
                job=run.name,
            )
            self.followers[key] = follower
            follower.start()

    def _view(self, uid: str, container: str) -> ContainerView:
        pod = self.pods.get(uid)
        if pod is None:
            return ContainerView(exists=False)
        status = pod.get("status") or {}
        for entry in status.get("containerStatuses") or []:
            if entry.get("name") != container:
                continue
            state = entry.get("state") or {}
            return ContainerView(
                started=bool(state.get("running") or state.get("terminated")),
                running=bool(state.get("running")),
                restarts=int(entry.get("restartCount") or 0),
                final=status.get("phase") in ("Succeeded", "Failed"),
            )
        return ContainerView(final=status.get("phase") in ("Succeeded", "Failed"))

    def _report_state(self, replica: str, pod: dict[str, Any], deleted: bool) -> None:
        event = replica_state(pod, self.run.kind.container, deleted)
        state = (event.phase, event.reason, event.restarts)
        if self.states.get(replica) == state:
            return
        self.states[replica] = state
        self.put(event)

    def notify(self) -> None:
        """Wake the followers: the job's state changed."""
        with self.changed:
            self.changed.notify_all()

    # ---- the followers -----------------------------------------------------------------

    def drained(self, since_end: float) -> bool:
        """Every follower is done; those of still-running pods are stopped after a grace."""
        pending = [f for f in self.followers.values() if not f.done.is_set()]
        if pending and since_end > DRAIN_GRACE:
            for follower in pending:
                follower.abandon()  # says so if an ended container's log was cut short
            for follower in pending:
                follower.join(2.0)
            return True
        return not pending

    def stop_followers(self) -> list[ContainerFollower]:
        """Stop every follower (each ends after the line it is delivering); them, to wait
        for."""
        followers = list(self.followers.values())
        for follower in followers:
            follower.stop()
        return followers

    def stop(self) -> None:
        self.informer.stop()
        self.stop_followers()

    def _cursors_path(self) -> Path | None:
        return self.run.record.path / "cursors.json" if self.run.record else None

    def _saved_cursors(self) -> dict[str, list[int]]:
        path = self._cursors_path()
        try:
            return json.loads(path.read_text()) if path else {}
        except (OSError, ValueError):
            return {}

    def save_cursors(self) -> None:
        """Where each container's delivered lines end, so %attach repeats none of them."""
        path = self._cursors_path()
        if path is None:
            return
        cursors = self._saved_cursors()
        for follower in list(self.followers.values()):
            if follower.cursor is not None:
                cursors[follower.pod_path.rsplit("/", 1)[-1]] = list(follower.cursor)
        write_atomic(path, json.dumps(cursors))


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def _cursor(saved: list[int] | None) -> tuple[int, ...] | None:
    """A saved (nanoseconds, lines at that instant[, pieces of the last one delivered while
    it was open]) cursor, as the follower takes it."""
    return tuple(saved) if saved else None
