"""Following one Kubeflow job: its informers, one log follower per container, one queue.

Three informers (the job, its pods, the namespace's events) keep the job's state; one
ContainerFollower per pod streams its log into a bounded queue. The job has ended when a
Succeeded or Failed condition is True and every follower has drained; then one JobDone
closes the stream of events.

Threads: each informer calls back on its own thread, so every handler (and the fallback
check of the reading thread) runs under one lock: the job's state has one writer at a time,
and a pod seen by two informers at once still gets exactly one log follower. The reading
thread takes events from the queue and yields IDLE when there are none for a moment.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.informer import Informer
from ciao.backend.kubeflow.log_follower import ContainerFollower, ContainerView
from ciao.backend.kubeflow.manifests import (
    JobKind,
    pod_selectors,
    replica_of,
)
from ciao.backend.kubeflow.pods import (
    CREATION_FAILURES,
    diagnose_event,
    diagnose_pod,
    refused_by_pod_security,
    replica_state,
)
from ciao.backend.record import RunDir, encode, write_atomic
from ciao.backend.tails import TAIL_LINES, LastLines
from ciao.backend.types import IDLE, Diagnosis, Event, Idle, JobDone, LogLine
from ciao.errors import BackendError

log = logging.getLogger("ciao.kubeflow")

#: How long a follower of a still-running pod may go on after the job has ended (a PS
#: left running by cleanPodPolicy None, a pod the operator is about to delete).
DRAIN_GRACE = 3.0
#: With no pod found by the operator's labels after this long, try the older labels.
POD_FALLBACK_AFTER = 10.0
#: With nothing in the queue for this long, the reader gets IDLE (to flush, to notice).
IDLE_AFTER = 0.05
#: Bounds on the Warning events held for pods the pod watch has not shown yet.
MAX_EARLY_PODS = 256
MAX_EARLY_EVENTS = 8
#: torchrun's line when a process it started fails; its report (a traceback of its own and a
#: table) follows and would push the cell's own last lines out of the verdict's tail.
_TORCHRUN_FAILED = re.compile(r"\] failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\)")


@dataclass(frozen=True)
class TorchrunFailure:
    """torchrun said one of its processes failed: which, how, and the lines before its
    report (the process's own last lines)."""

    local_rank: int
    exit_code: int
    lines_before: tuple[str, ...]


@dataclass
class KubeflowRun:
    """Everything known about one submitted job while it is followed."""

    kind: JobKind
    namespace: str
    name: str
    uid: str
    config_map: str = ""
    record: RunDir | None = None
    cancelled: bool = False
    detached: bool = False
    #: The job is suspended (a queue such as Kueue holds it): no pods yet. When it was
    #: last resumed (monotonic), to give its pods time to appear from then.
    suspended: bool = False
    resumed_at: float | None = None
    followed: bool = False
    outcome: JobDone | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> pod
    gone: set[str] = field(default_factory=set)
    states: dict[str, tuple] = field(default_factory=dict)
    diagnosed: set[tuple[str, str]] = field(default_factory=set)
    followers: dict[tuple[str, str], ContainerFollower] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    #: Every replica's first non-zero exit as seen while its pods lived: (finishedAt, exit
    #: code, reason). The operator may delete the pods before it says the job failed.
    exits: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    #: Pod name -> replica, for events about pods whose names do not say it (TrainJob).
    replicas: dict[str, str] = field(default_factory=dict)
    #: Each replica's last lines as they passed, for the verdict.
    last_lines: LastLines = field(default_factory=LastLines)
    #: The first failed process each replica's torchrun reported.
    torchrun_failures: dict[str, TorchrunFailure] = field(default_factory=dict)
    #: Warning events about pods not seen yet (the event watch can outrun the pod watch),
    #: by pod name, replayed when the pod shows which replica it is.
    early_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The namespace's Pod Security level refused the job's pods: following it has failed.
    refused: bool = False

    @property
    def job_path(self) -> str:
        return self.kind.path(self.namespace, self.name)


class Follow:
    """The informers, followers and queue of one `get_logs`."""

    def __init__(
        self,
        cluster: Cluster,
        run: KubeflowRun,
        queue_size: int,
        fallback_after: float,
        resumed: bool = False,
    ) -> None:
        """`resumed`: an %attach that goes on after lines this machine recorded before."""
        self.cluster = cluster
        self.run = run
        #: Where the record ended when this follow began: a resumed job's verdict takes
        #: the failed replica's lines from before it there.
        self.recorded_before = run.record.size() if resumed and run.record else 0
        self.queue: queue.Queue[Event | BackendError] = queue.Queue(queue_size)
        self.stopping = threading.Event()
        #: Serialises the informers' callbacks (and the fallback): one writer of the state.
        self.lock = threading.RLock()
        self.cursors = self._saved_cursors()
        ns, kind = run.namespace, run.kind
        self.job_informer = Informer(
            cluster,
            kind.path(ns),
            self.on_job,
            field_selector=f"metadata.name={run.name}",
            on_error=lambda e: self.fail(explain(e, "watch", kind.plural, ns, kind.group)),
        )
        self.selectors = pod_selectors(run.name, kind)
        self.selector: str | None = self.selectors[0]
        self.by_owner = False  # pods found only through their ownerReferences
        self.fell_back = False
        self.fallback_after = fallback_after
        self.pod_informer = self._pod_informer(self.selector)
        self.event_informer = Informer(
            cluster,
            f"/api/v1/namespaces/{ns}/events",
            self.on_event,
            on_error=lambda e: log.warning("cannot watch events: %s", e),
        )

    def _pod_informer(self, selector: str | None) -> Informer:
        ns = self.run.namespace
        return Informer(
            self.cluster,
            f"/api/v1/namespaces/{ns}/pods",
            self.on_pod,
            label_selector=selector,
            on_error=lambda e: self.fail(explain(e, "watch", "pods", ns)),
        )

    # ---- the event stream ------------------------------------------------------------

    def events(self) -> Iterator[Event | Idle]:
        informers = [self.job_informer, self.pod_informer, self.event_informer]
        for informer in informers:
            informer.start()
        started = time.monotonic()
        ended_at: float | None = None
        record = self.run.record.open_for_append() if self.run.record else None
        # A record that has its verdict (the job was followed to its end before) is read,
        # never written again: an %attach of a finished job changes nothing.
        finished = self.run.record is not None and self.run.record.final() is not None
        try:
            for event in self._events(started, ended_at):
                if record is not None and not finished and not isinstance(event, Idle):
                    os.write(record, encode(event))
                yield event
        finally:
            self.stopping.set()
            for informer in (self.job_informer, self.pod_informer, self.event_informer):
                informer.stop()
            for follower in list(self.run.followers.values()):
                follower.stop()
            self._save_cursors()
            if record is not None:
                os.close(record)

    def _events(self, started: float, ended_at: float | None) -> Iterator[Event | Idle]:
        saved = time.monotonic()
        while True:
            if self.run.detached:
                yield from self._detach()
                return
            try:
                item = self.queue.get(timeout=IDLE_AFTER)
            except queue.Empty:
                item = None
                yield IDLE
            if isinstance(item, BackendError):
                raise item
            if item is not None:
                yield item
                if time.monotonic() - saved > 0.5:
                    self._save_cursors()
                    saved = time.monotonic()
                continue
            if self.run.outcome is None:
                # Never wait for the lock here: a handler holding it may be waiting for
                # room in the queue, which only this thread makes.
                if self.lock.acquire(blocking=False):
                    try:
                        self._maybe_fall_back(started)
                    finally:
                        self.lock.release()
                continue
            ended_at = ended_at or time.monotonic()
            if self._drained(time.monotonic() - ended_at) and self.queue.empty():
                yield self.run.outcome
                return

    def _detach(self) -> Iterator[Event]:
        """Stop the followers and hand over every line they read (their cursors are past
        it), draining while they stop so none is left blocked on a full queue."""
        followers = list(self.run.followers.values())
        for follower in followers:
            follower.stop()
        deadline = time.monotonic() + 5.0
        while True:
            stopped = all(f.done.is_set() for f in followers) or time.monotonic() > deadline
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, BackendError):
                    yield item
            if stopped:
                return
            time.sleep(0.02)

    def _cursors_path(self) -> Path | None:
        return self.run.record.path / "cursors.json" if self.run.record else None

    def _saved_cursors(self) -> dict[str, list[int]]:
        path = self._cursors_path()
        try:
            return json.loads(path.read_text()) if path else {}
        except (OSError, ValueError):
            return {}

    def _save_cursors(self) -> None:
        """Where each container's delivered lines end, so %attach repeats none of them."""
        path = self._cursors_path()
        if path is None:
            return
        cursors = self._saved_cursors()
        for follower in list(self.run.followers.values()):
            if follower.cursor is not None:
                cursors[follower.pod_path.rsplit("/", 1)[-1]] = list(follower.cursor)
        write_atomic(path, json.dumps(cursors))

    def _drained(self, since_end: float) -> bool:
        """Every follower is done; those of still-running pods are stopped after a grace."""
        pending = [f for f in self.run.followers.values() if not f.done.is_set()]
        if pending and since_end > DRAIN_GRACE:
            for follower in pending:
                follower.abandon()  # says so if an ended container's log was cut short
            for follower in pending:
                follower.join(2.0)
            return True
        return not pending

    def _note_suspension(self, job: dict[str, Any], conditions: list[dict[str, Any]]) -> None:
        """Suspended by its spec (Kueue's webhook sets it at creation, before any condition)
        or by its Suspended condition; said when it starts, and when it is over."""
        run = self.run
        spec = job.get("spec") or {}
        flag = (
            spec.get("suspend")
            if run.kind.api == "v2"
            else (spec.get("runPolicy") or {}).get("suspend")
        )
        condition = next((c for c in conditions if c.get("type") == "Suspended"), {})
        suspended = bool(flag) or condition.get("status") == "True"
        was, run.suspended = run.suspended, suspended
        key = ("job", "Suspended")
        if suspended and not was:
            run.diagnosed.discard(key)  # suspended again (Kueue preempted it): say so again
            message = condition.get("message") or "spec.suspend is true"
            field_name = "spec.suspend" if run.kind.api == "v2" else "spec.runPolicy.suspend"
            hint = (
                "the job is suspended, so no pod starts until it is resumed: by its queue when "
                "it admits the job (Kueue: kubectl get workloads), or by whoever set "
                f"{field_name} ({message})"
            )
            self._diagnose(Diagnosis("job", "Suspended", hint))
        elif was and not suspended:
            run.resumed_at = time.monotonic()
            run.diagnosed.discard(key)
            self.put(Diagnosis("job", "Suspended", "the job was resumed", resolved=True))

    def _maybe_fall_back(self, started: float) -> None:
        """Old operators label pods differently: if the operator's labels find no pod for a
        while, try the older labels, then the pods whose ownerReference is the job."""
        since = max(started, self.run.resumed_at or started)
        if self.run.pods or self.fell_back or time.monotonic() - since < self.fallback_after:
            return
        if self.run.suspended:  # no pods is what a suspended job has
            return
        self.fell_back = True
        path = f"/api/v1/namespaces/{self.run.namespace}/pods"
        for selector in self.selectors[1:]:
            if self.cluster.request("GET", path, {"labelSelector": selector}).get("items"):
                log.info("pods of %s found with the older labels %s", self.run.name, selector)
                self._switch_pods(selector)
                return
        pods = self.cluster.request("GET", path).get("items") or []
        if any(_owned_by(pod, self.run.uid) for pod in pods):
            log.info("pods of %s found by their ownerReferences", self.run.name)
            self.by_owner = True
            self._switch_pods(None)
            return
        waited = int(time.monotonic() - since)
        controller = (
            "Kubeflow Trainer's controller (and JobSet's)"
            if self.run.kind.api == "v2"
            else "the Kubeflow training operator"
        )
        self._diagnose(
            Diagnosis(
                "job",
                "NoPods",
                f"no pod of this job has appeared after {waited} s: is {controller} running, "
                "and watching this namespace? (kubectl get pods -A | grep -e trainer -e "
                "training-operator -e jobset); its Events may say more (kubectl describe "
                f"{self.run.kind.plural} {self.run.name})",
            )
        )

    def _switch_pods(self, selector: str | None) -> None:
        self.pod_informer.stop()
        self.selector = selector
        self.pod_informer = self._pod_informer(selector).start()

    def put(self, item: Event | BackendError) -> bool:
        """Into the bounded queue, waiting while it is full; False once following stopped."""
        if isinstance(item, LogLine):  # on the followers' threads
            if item.replica not in self.run.torchrun_failures:
                failed = _TORCHRUN_FAILED.search(item.text)
                if failed:
                    self.run.torchrun_failures[item.replica] = TorchrunFailure(
                        int(failed.group(2)),
                        int(failed.group(1)),
                        self.run.last_lines.of(item.replica),
                    )
            self.run.last_lines.add(item.replica, (item.text,))
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fail(self, error: BackendError) -> None:
        self.put(error)

    # ---- handlers ------------------------------------------------------------------

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        with self.lock:
            self._on_job(kind, job)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        with self.lock:
            self._on_pod(kind, pod)

    def on_event(self, kind: str, event: dict[str, Any]) -> None:
        with self.lock:
            self._on_event(kind, event)

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        run = self.run
        if kind == "DELETED":
            if run.outcome is None:
                reason = "Cancelled" if run.cancelled else "Deleted"
                message = "cancelled by the user" if run.cancelled else "the job was deleted"
                run.outcome = JobDone(False, reason, f"{run.name}: {message}")
            return
        if (job.get("metadata") or {}).get("uid") not in (None, run.uid):
            return
        if job["metadata"].get("deletionTimestamp") and run.cancelled:
            return
        conditions = (job.get("status") or {}).get("conditions") or []
        succeeded = run.kind.succeeded
        if run.outcome is None and any(_finished(c, succeeded) for c in conditions):
            self._sync_pods()  # the pods' last states (exit codes, OOMKilled) before the verdict
        self._note_suspension(job, conditions)
        for condition in conditions:
            if condition.get("status") != "True":
                continue
            if condition.get("type") == succeeded and run.outcome is None:
                run.outcome = JobDone(True, "Succeeded", condition.get("message", ""))
            elif condition.get("type") == "Failed" and run.outcome is None:
                replica, code, why = self._failed_replica()
                reason = condition.get("reason") or "Failed"
                torchrun = run.torchrun_failures.get(replica)
                if torchrun is not None and torchrun.lines_before:
                    tail = torchrun.lines_before
                else:
                    tail = run.last_lines.of(replica) if replica else ()
                tail = self._with_earlier_lines(replica, tail)
                message = _failure_message(
                    condition.get("message", ""), replica, code, why, torchrun
                )
                run.outcome = JobDone(
                    False,
                    reason,
                    message,
                    failed_replica=replica,
                    exit_code=code,
                    tail=tail,
                )
        with run.changed:
            run.changed.notify_all()

    def _with_earlier_lines(self, replica: str, tail: tuple[str, ...]) -> tuple[str, ...]:
        """The tail, completed with the replica's lines recorded before an %attach."""
        record = self.run.record
        if not replica or not self.recorded_before or record is None or len(tail) >= TAIL_LINES:
            return tail
        earlier = record.last_lines(replica, TAIL_LINES, self.recorded_before)
        return (*earlier, *tail)[-TAIL_LINES:]

    def _sync_pods(self) -> None:
        """Read the job's pods now, so the verdict does not outrun the pod watch."""
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

    def _failed_replica(self) -> tuple[str, int | None, str]:
        """The first replica whose container ended with a non-zero exit code, from all
        that was seen while the pods lived (they may be gone: backoff limit, deadline)."""
        if not self.run.exits:
            return "", None, ""
        replica, (_, code, reason) = min(self.run.exits.items(), key=lambda item: item[1])
        return replica, code, reason

    def _note_exits(self, replica: str, pod: dict[str, Any]) -> None:
        """Keep the replica's first non-zero exit (its container's state or last state)."""
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != self.run.kind.container:
                continue
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                ended = state.get("terminated") or {}
                if ended.get("exitCode"):
                    seen = (ended.get("finishedAt") or "", int(ended["exitCode"]))
                    known = self.run.exits.get(replica)
                    if known is None or seen[0] < known[0]:
                        self.run.exits[replica] = (*seen, ended.get("reason") or "")

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self.run
        if self.by_owner and not _owned_by(pod, run.uid):
            return
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        replica = replica_of(pod)
        run.replicas[pod["metadata"]["name"]] = replica
        for event in run.early_events.pop(pod["metadata"]["name"], ()):
            self._diagnose_event(event, replica)
        self._note_exits(replica, pod)
        with run.changed:
            if kind == "DELETED":
                run.pods.pop(uid, None)
                run.gone.add(uid)
            else:
                run.pods[uid] = pod
            run.changed.notify_all()
        self._report_state(replica, pod, deleted=kind == "DELETED")
        if kind == "DELETED":
            return
        for diagnosis in diagnose_pod(pod, replica):
            self._diagnose(diagnosis)
        container = run.kind.container
        key = (uid, container)
        if key not in run.followers:
            name, ns = pod["metadata"]["name"], run.namespace
            follower = ContainerFollower(
                self.cluster,
                f"/api/v1/namespaces/{ns}/pods/{name}",
                container,
                replica,
                lambda: self._view(uid, container),
                run.changed,
                self.put,
                start=_cursor(self.cursors.get(name)),
                job=run.name,
            )
            run.followers[key] = follower
            follower.start()

    def _view(self, uid: str, container: str) -> ContainerView:
        pod = self.run.pods.get(uid)
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
        if self.run.states.get(replica) == state:
            return
        self.run.states[replica] = state
        self.put(event)

    def _on_event(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "DELETED" or event.get("type") != "Warning":
            return
        involved = event.get("involvedObject") or {}
        name = involved.get("name", "")
        run = self.run
        if name == run.name:
            replica = "job"
        elif name in run.replicas:
            replica = run.replicas[name]
        elif name.startswith(run.name + "-") and involved.get("kind") == "Job":
            replica = "job"  # a TrainJob's batch Job: it makes every node's pods
        elif name.startswith(run.name + "-") and run.kind.api == "v1":
            replica = name[len(run.name) + 1 :]  # v1 pods are named {job}-{type}-{index}
        elif name.startswith(run.name + "-") and involved.get("kind", "Pod") == "Pod":
            # A TrainJob's pod not seen yet: its name does not say which node it is.
            held = run.early_events
            if name in held or len(held) < MAX_EARLY_PODS:
                events = held.setdefault(name, [])
                events.append(event)
                del events[:-MAX_EARLY_EVENTS]
            return
        else:
            return
        self._diagnose_event(event, replica)

    def _diagnose_event(self, event: dict[str, Any], replica: str) -> None:
        diagnosis = diagnose_event(event, replica)
        if diagnosis is None:
            return
        self._diagnose(diagnosis)
        message = event.get("message") or ""
        if (
            diagnosis.reason in CREATION_FAILURES
            and refused_by_pod_security(message)
            and not self.run.refused
        ):
            # Unlike a full quota, this never passes: the controller would retry forever.
            self.run.refused = True
            self.fail(BackendError(f"its pods cannot be created: {diagnosis.hint}"))

    def _diagnose(self, diagnosis: Diagnosis) -> None:
        key = (diagnosis.replica, diagnosis.reason)
        if key in self.run.diagnosed:
            return
        self.run.diagnosed.add(key)
        self.put(diagnosis)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def _finished(condition: dict[str, Any], succeeded: str) -> bool:
    return condition.get("type") in (succeeded, "Failed") and condition.get("status") == "True"


def _failure_message(
    message: str,
    replica: str,
    code: int | None,
    reason: str = "",
    torchrun: TorchrunFailure | None = None,
) -> str:
    """What failed, first, in the cell's words (the replica and its exit), then what
    Kubeflow said (which may name only a Job, or no replica at all)."""
    if not replica:
        return message
    how = f"was {reason}, exit code {code}" if reason == "OOMKilled" else f"exited with code {code}"
    if torchrun is not None:
        rank, exit_code = torchrun.local_rank, torchrun.exit_code
        how += f" (torchrun: its process of local rank {rank} exited with {exit_code})"
    return f"{replica} {how}; Kubeflow says: {message}" if message else f"{replica} {how}"


def _cursor(saved: list[int] | None) -> tuple[int, ...] | None:
    """A saved (nanoseconds, lines at that instant[, pieces of the last one delivered while
    it was open]) cursor, as the follower takes it."""
    return tuple(saved) if saved else None
