"""Following one Kubeflow job to its end: three informers, one bounded queue, one stream of
events, recorded as it goes.

The job's informer says its state (suspended, resumed, finished); the pods' informer and
their log followers are pod_watch.py's, the namespace's Warning events warning_events.py's,
and what a failed job's verdict says verdict.py's. The job has ended when a Succeeded or
Failed condition is True and every follower has drained; then one JobDone closes the
stream.

Threads: each informer calls back on its own thread, so every handler (and the fallback
check of the reading thread) runs under one lock: the job's state has one writer at a time,
and a pod seen by two informers at once still gets exactly one log follower. The reading
thread takes events from the queue and yields IDLE when there are none for a moment.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ciao.backend.kubeflow.client import Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.informer import Informer
from ciao.backend.kubeflow.pod_watch import PodWatch
from ciao.backend.kubeflow.run import KubeflowRun
from ciao.backend.kubeflow.verdict import Evidence
from ciao.backend.kubeflow.warning_events import WarningEvents
from ciao.backend.record import encode
from ciao.backend.recorder import MetricsRecorder
from ciao.backend.types import IDLE, Diagnosis, Event, Idle, JobDone, LogLine
from ciao.errors import BackendError

log = logging.getLogger("ciao.kubeflow")

#: With nothing in the queue for this long, the reader gets IDLE (to flush, to notice).
IDLE_AFTER = 0.05


class Follow:
    """The informers, followers and queue of one `get_logs`, and what they learn."""

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
        self.queue: queue.Queue[Event | BackendError] = queue.Queue(queue_size)
        self.stopping = threading.Event()
        #: Serialises the informers' callbacks (and the fallback): one writer of the state.
        self.lock = threading.RLock()
        #: The verdict, once the job's conditions say it.
        self.outcome: JobDone | None = None
        #: The job is suspended (a queue such as Kueue holds it): no pods yet. When it was
        #: last resumed (monotonic), to give its pods time to appear from then.
        self.suspended = False
        self.resumed_at: float | None = None
        #: Diagnoses said, by (replica, reason): each is said once (until it is over).
        self.diagnosed: set[tuple[str, str]] = set()
        recorded_before = run.record.size() if resumed and run.record else 0
        self.evidence = Evidence(run.kind.container, run.record, recorded_before)
        ns, kind = run.namespace, run.kind
        self.job_informer = Informer(
            cluster,
            kind.path(ns),
            self.on_job,
            field_selector=f"metadata.name={run.name}",
            on_error=lambda e: self.fail(explain(e, "watch", kind.plural, ns, kind.group)),
        )
        #: Pod name -> the pull secrets the kubelet said it could not find: the event
        #: watch learns them, and they explain a pull failure whichever watch sees it.
        missing_pull: dict[str, tuple[str, ...]] = {}
        watch = PodWatch(
            cluster,
            run,
            fallback_after,
            self.lock,
            self.put,
            self._diagnose,
            self._pod_seen,
            missing_pull,
        )
        self.pod_watch = watch
        self.warnings = WarningEvents(
            run.name,
            kind.api,
            watch.replicas,
            self._diagnose,
            self.fail,
            watch.pod_named,
            missing_pull,
        )
        self.event_informer = Informer(
            cluster,
            f"/api/v1/namespaces/{ns}/events",
            self.on_event,
            on_error=lambda e: log.warning("cannot watch events: %s", e),
        )

    # ---- the event stream ------------------------------------------------------------

    def events(self) -> Iterator[Event | Idle]:
        for informer in (self.job_informer, self.pod_watch.informer, self.event_informer):
            informer.start()
        started = time.monotonic()
        record = self.run.record.open_for_append() if self.run.record else None
        # A record that has its verdict (the job was followed to its end before) is read,
        # never written again: an %attach of a finished job changes nothing.
        finished = self.run.record is not None and self.run.record.final() is not None
        metrics = None
        if self.run.record is not None and record is not None and not finished:
            metrics = MetricsRecorder(self.run.record, record)
        try:
            for event in self._events(started):
                if metrics is not None and record is not None and not isinstance(event, Idle):
                    os.write(record, encode(event))
                    metrics.wrote((event,))
                yield event
        finally:
            if metrics is not None:
                metrics.close()
            self.stopping.set()
            self.job_informer.stop()
            self.event_informer.stop()
            self.pod_watch.stop()
            self.pod_watch.save_cursors()
            if record is not None:
                os.close(record)

    def _events(self, started: float) -> Iterator[Event | Idle]:
        saved = time.monotonic()
        ended_at: float | None = None
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
                    self.pod_watch.save_cursors()
                    saved = time.monotonic()
                continue
            if self.outcome is None:
                # Never wait for the lock here: a handler holding it may be waiting for
                # room in the queue, which only this thread makes.
                if self.lock.acquire(blocking=False):
                    try:
                        self._maybe_fall_back(started)
                    finally:
                        self.lock.release()
                continue
            ended_at = ended_at or time.monotonic()
            if self.pod_watch.drained(time.monotonic() - ended_at) and self.queue.empty():
                yield self.outcome
                return

    def _detach(self) -> Iterator[Event]:
        """Stop the followers and hand over every line they read (their cursors are past
        it), draining while they stop so none is left blocked on a full queue."""
        followers = self.pod_watch.stop_followers()
        yield from hand_over(followers, self.queue, 5.0)

    def put(self, item: Event | BackendError) -> bool:
        """Into the bounded queue, waiting while it is full; False once following stopped."""
        if isinstance(item, LogLine):  # on the followers' threads
            self.evidence.line(item.replica, item.text)
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def fail(self, error: BackendError) -> None:
        self.put(error)

    def _diagnose(self, diagnosis: Diagnosis) -> None:
        key = (diagnosis.replica, diagnosis.reason)
        if key in self.diagnosed:
            return
        self.diagnosed.add(key)
        self.put(diagnosis)

    # ---- handlers ------------------------------------------------------------------

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        with self.lock:
            self._on_job(kind, job)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        self.pod_watch.on_pod(kind, pod)

    def on_event(self, kind: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.warnings.on_event(kind, event)

    def _pod_seen(self, name: str, replica: str, pod: dict[str, Any]) -> None:
        self.warnings.pod_seen(name, replica)
        self.evidence.pod(replica, pod)

    def _maybe_fall_back(self, started: float) -> None:
        """No pods found for a while, unless the job is suspended: look further for them
        (pod_watch.py); the wait counts from when the job was last resumed. Pods found but
        taken by no scheduler for as long are said too."""
        if not self.suspended:
            self.pod_watch.maybe_fall_back(max(started, self.resumed_at or started))
            self.pod_watch.note_unclaimed()

    def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        run = self.run
        if kind == "DELETED":
            if self.outcome is None:
                reason = "Cancelled" if run.cancelled else "Deleted"
                message = "cancelled by the user" if run.cancelled else "the job was deleted"
                self.outcome = JobDone(False, reason, f"{run.name}: {message}")
            return
        if (job.get("metadata") or {}).get("uid") not in (None, run.uid):
            return
        if job["metadata"].get("deletionTimestamp") and run.cancelled:
            return
        conditions = (job.get("status") or {}).get("conditions") or []
        succeeded = run.kind.succeeded
        if self.outcome is None and any(_finished(c, succeeded) for c in conditions):
            self.pod_watch.sync()  # the pods' last states (exit codes, OOMKilled) first
        self._note_suspension(job, conditions)
        for condition in conditions:
            if condition.get("status") != "True" or self.outcome is not None:
                continue
            if condition.get("type") == succeeded:
                self.outcome = JobDone(True, "Succeeded", condition.get("message", ""))
            elif condition.get("type") == "Failed":
                self.outcome = self.evidence.failed(condition)
        self.pod_watch.notify()

    def _note_suspension(self, job: dict[str, Any], conditions: list[dict[str, Any]]) -> None:
        """Suspended by its spec (Kueue's webhook sets it at creation, before any condition)
        or by its Suspended condition; said when it starts, and when it is over."""
        kind = self.run.kind
        spec = job.get("spec") or {}
        flag = (
            spec.get("suspend")
            if kind.api == "v2"
            else (spec.get("runPolicy") or {}).get("suspend")
        )
        condition = next((c for c in conditions if c.get("type") == "Suspended"), {})
        suspended = bool(flag) or condition.get("status") == "True"
        was, self.suspended = self.suspended, suspended
        key = ("job", "Suspended")
        if suspended and not was:
            self.diagnosed.discard(key)  # suspended again (Kueue preempted it): say so again
            message = condition.get("message") or "spec.suspend is true"
            field_name = "spec.suspend" if kind.api == "v2" else "spec.runPolicy.suspend"
            hint = (
                "the job is suspended, so no pod starts until it is resumed: by its queue when "
                "it admits the job (Kueue: kubectl get workloads), or by whoever set "
                f"{field_name} ({message})"
            )
            self._diagnose(Diagnosis("job", "Suspended", hint))
        elif was and not suspended:
            self.resumed_at = time.monotonic()
            self.diagnosed.discard(key)
            self.put(Diagnosis("job", "Suspended", "the job was resumed", resolved=True))


def _finished(condition: dict[str, Any], succeeded: str) -> bool:
    return condition.get("type") in (succeeded, "Failed") and condition.get("status") == "True"


class Stopping(Protocol):
    """A follower being stopped: `done` is set once it has put its last item."""

    done: threading.Event


def hand_over(
    followers: Sequence[Stopping], items: queue.Queue[Any], wait: float
) -> Iterator[Event]:
    """Every event the stopping `followers` put in `items`, drained while they stop (so
    none is left blocked on a full queue), until they all have or `wait` seconds passed."""
    deadline = time.monotonic() + wait
    while True:
        stopped = all(f.done.is_set() for f in followers) or time.monotonic() > deadline
        while True:
            try:
                item = items.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, BackendError):
                yield item
        if stopped:
            return
        time.sleep(0.02)
