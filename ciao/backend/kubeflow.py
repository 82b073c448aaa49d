"""The Kubeflow backend: a cell as a TFJob / PyTorchJob, followed until it ends.

Three informers (the job, its pods, the namespace's events) keep the job's state; one
ContainerFollower per pod streams its log into the same bounded queue the local backend
uses. The job has ended when a Succeeded or Failed condition is True and every follower
has drained; then one JobDone closes the stream of events.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from ciao.backend.diagnose import diagnose_event, diagnose_pod
from ciao.backend.informer import Informer
from ciao.backend.kube_client import ApiError, Cluster, close, lines
from ciao.backend.kube_errors import explain
from ciao.backend.log_follower import ContainerFollower, ContainerView
from ciao.backend.manifests import (
    API_GROUP,
    API_VERSION,
    KINDS,
    MANAGED_BY,
    JobKind,
    job_manifest,
    pod_selectors,
    replica_of,
)
from ciao.backend.run_dir import RunDir, encode
from ciao.backend.types import (
    Diagnosis,
    Event,
    Job,
    JobDone,
    JobInfo,
    LogLine,
    ReplicaState,
)
from ciao.errors import BackendError
from ciao.interpreter.magics import random_name
from ciao.interpreter.types import Parameter

log = logging.getLogger("ciao.kubeflow")

#: How long a follower of a still-running pod may go on after the job has ended (a PS
#: left running by cleanPodPolicy None, a pod the operator is about to delete).
DRAIN_GRACE = 3.0
#: With no pod found by the operator's labels after this long, try the older labels.
POD_FALLBACK_AFTER = 10.0


@dataclass
class _Run:
    """Everything known about one submitted job while it is followed."""

    parameter: Parameter
    kind: JobKind
    namespace: str
    name: str
    uid: str
    config_map: str = ""
    record: RunDir | None = None
    cancelled: bool = False
    detached: bool = False
    followed: bool = False
    outcome: JobDone | None = None
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> pod
    gone: set[str] = field(default_factory=set)
    states: dict[str, tuple] = field(default_factory=dict)
    diagnosed: set[tuple[str, str]] = field(default_factory=set)
    followers: dict[tuple[str, str], ContainerFollower] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def job_path(self) -> str:
        return (
            f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{self.namespace}/"
            f"{self.kind.plural}/{self.name}"
        )


class KubeflowBackend:
    """Backend on Kubernetes through the Kubeflow training operator."""

    name = "kubeflow"

    def __init__(
        self,
        cluster: Cluster,
        run_root: Path | None = None,
        queue_size: int = 10000,
        fallback_after: float = POD_FALLBACK_AFTER,
    ) -> None:
        self.cluster = cluster
        self.run_root = run_root
        self.queue_size = queue_size
        self.fallback_after = fallback_after

    # ---- submit -------------------------------------------------------------------

    def dry_run(self, parameter: Parameter) -> dict[str, Any]:
        """The manifest `exec_code` would send."""
        return job_manifest(parameter, self.cluster.namespace)

    def exec_code(self, parameter: Parameter) -> Job:
        """Create the job (a new name on 409); adopt the code's ConfigMap; or undo all."""
        kind = KINDS[parameter.framework]
        namespace = self.cluster.namespace
        path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{kind.plural}"
        created = None
        try:
            for _ in range(5):
                try:
                    created = self.cluster.request(
                        "POST", path, body=job_manifest(parameter, namespace)
                    )
                    break
                except ApiError as exc:
                    if exc.status != 409:
                        raise explain(
                            exc, "create", kind.plural, namespace, API_GROUP, kind.kind
                        ) from None
                    parameter.generate_name = random_name()
            if created is None:
                raise BackendError(f"create {kind.resource}: no free job name after 5 tries")
            run = _Run(
                parameter,
                kind,
                namespace,
                created["metadata"]["name"],
                created["metadata"]["uid"],
                parameter.code_config_map,
            )
            if run.config_map:
                self._adopt_config_map(run)
            run.record = self._record(run, parameter)
        except BaseException:
            if created is not None:
                self._delete_job(namespace, kind, created["metadata"]["name"])
            self._delete_config_map(namespace, parameter.code_config_map)
            raise
        replicas = {role: spec.count for role, spec in parameter.roles.items()}
        location = f"kubeflow (namespace {namespace})"
        return Job(parameter.framework, run.name, replicas, self.name, run, location)

    def _record(self, run: _Run, parameter: Parameter) -> RunDir | None:
        """The job's run directory: what it was, and (as it is followed) its events."""
        if self.run_root is None:
            return None
        record = RunDir(self.run_root, run.name)
        record.write_spec(
            {
                "name": run.name,
                "backend": self.name,
                "created": time.time(),
                "namespace": run.namespace,
                "framework": parameter.framework,
                "replicas": {r: s.count for r, s in parameter.roles.items() if s.count},
                "owner": dict(parameter.owner),
            }
        )
        return record

    def _adopt_config_map(self, run: _Run) -> None:
        owner = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": run.kind.kind,
            "name": run.name,
            "uid": run.uid,
            "blockOwnerDeletion": True,
        }
        try:
            self.cluster.request(
                "PATCH",
                f"/api/v1/namespaces/{run.namespace}/configmaps/{run.config_map}",
                body={"metadata": {"ownerReferences": [owner]}},
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            raise explain(exc, "patch", "configmaps", run.namespace) from None

    # ---- cancel -------------------------------------------------------------------

    def cancel(self, job: Job) -> None:
        """Delete the job in the foreground (its pods first, then it), and its ConfigMap."""
        run: _Run = job.handle  # type: ignore[assignment]
        run.cancelled = True
        self._delete_job(run.namespace, run.kind, run.name)
        self._delete_config_map(run.namespace, run.config_map)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.cluster.request("GET", run.job_path)
            except ApiError as exc:
                if exc.status == 404:
                    return
                raise explain(exc, "get", run.kind.plural, run.namespace, API_GROUP) from None
            time.sleep(0.2)
        raise BackendError(f"job {run.name} was deleted but is still there after 60 s")

    def detach(self, job: Job) -> None:
        """Stop following (the job goes on); get_logs ends after what it has yielded."""
        run: _Run = job.handle  # type: ignore[assignment]
        run.detached = True

    # ---- jobs of any kernel ------------------------------------------------------------

    def _jobs_path(self, kind: JobKind, name: str = "") -> str:
        ns = self.cluster.namespace
        path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/{kind.plural}"
        return f"{path}/{name}" if name else path

    def _find(self, name: str) -> tuple[JobKind, dict[str, Any]]:
        for kind in KINDS.values():
            try:
                return kind, self.cluster.request("GET", self._jobs_path(kind, name))
            except ApiError as exc:
                if exc.status != 404:
                    ns = self.cluster.namespace
                    raise explain(exc, "get", kind.plural, ns, API_GROUP) from None
        raise BackendError(f"no job {name!r} in namespace {self.cluster.namespace}")

    def attach(self, name: str) -> Job:
        kind, obj = self._find(name)
        framework = next(f for f, k in KINDS.items() if k is kind)
        spec = obj.get("spec", {}).get(kind.replica_specs) or {}
        replicas = {t.lower(): int(r.get("replicas", 1)) for t, r in spec.items()}
        parameter = Parameter(framework, {})  # type: ignore[arg-type]
        run = _Run(parameter, kind, self.cluster.namespace, name, obj["metadata"]["uid"])
        if self.run_root is not None:
            run.record = RunDir(self.run_root, name)
            if not run.record.exists():
                run.record.write_spec(
                    {
                        "name": name,
                        "backend": self.name,
                        "created": time.time(),
                        "namespace": run.namespace,
                        "framework": framework,
                        "replicas": replicas,
                        "owner": {},
                    }
                )
        location = f"kubeflow (namespace {run.namespace})"
        return Job(framework, name, replicas, self.name, run, location)  # type: ignore[arg-type]

    def list(self) -> list[JobInfo]:
        jobs = []
        for kind in KINDS.values():
            try:
                answer = self.cluster.request(
                    "GET",
                    self._jobs_path(kind),
                    {"labelSelector": f"{MANAGED_BY}=ciao"},
                )
            except ApiError as exc:
                raise explain(exc, "list", kind.plural, self.cluster.namespace, API_GROUP) from None
            jobs += [self._info(kind, obj) for obj in answer.get("items") or []]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def _info(self, kind: JobKind, obj: dict[str, Any]) -> JobInfo:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        prefix = "ciao.kubeflow.org/"
        specs = (obj.get("spec") or {}).get(kind.replica_specs) or {}
        state, message = "Pending", ""
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("status") == "True":
                state, message = condition.get("type", state), condition.get("message", "")
        if meta.get("deletionTimestamp"):
            state = "Deleting"
        created = meta.get("creationTimestamp")
        return JobInfo(
            name=meta.get("name", ""),
            framework=next(f for f, k in KINDS.items() if k is kind),
            backend=self.name,
            state="Running" if state in ("Created", "Restarting") else state,
            created=isoparse(created).timestamp() if created else 0.0,
            replicas={t.lower(): int(r.get("replicas", 1)) for t, r in specs.items()},
            owner={k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)},
            location=f"kubeflow (namespace {self.cluster.namespace})",
            message=message,
        )

    def _pods(self, name: str, kind: JobKind) -> list[dict[str, Any]]:
        try:
            answer = self.cluster.request(
                "GET",
                f"/api/v1/namespaces/{self.cluster.namespace}/pods",
                {"labelSelector": pod_selectors(name, kind)[0]},
            )
        except ApiError as exc:
            raise explain(exc, "list", "pods", self.cluster.namespace) from None
        return answer.get("items") or []

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        kind, obj = self._find(name)
        info = self._info(kind, obj)
        pods = self._pods(name, kind)
        events: list[Event] = [replica_state(pod, kind.container) for pod in pods]
        for pod in pods:
            events += diagnose_pod(pod, replica_of(pod))
        if info.state in ("Succeeded", "Failed"):
            events.append(JobDone(info.state == "Succeeded", info.state, info.message))
        return info, events

    def logs(self, name: str, replica: str | None = None, tail: int | None = None) -> list[LogLine]:
        """From the run directory when this machine followed the job to its end; else from
        the pods while they are there (a record cut short by a detach lacks the rest);
        else what the run directory has (the pods are gone)."""
        record = RunDir(self.run_root, name) if self.run_root is not None else None
        if record is not None and not record.exists():
            record = None
        if record is not None and record.final() is not None:
            return _last(self._recorded(record, replica), tail)
        try:
            kind, _ = self._find(name)
            pods = sorted(self._pods(name, kind), key=replica_of)
        except BackendError:
            if record is None:
                raise
            return _last(self._recorded(record, replica), tail)
        if not pods and record is not None:
            return _last(self._recorded(record, replica), tail)
        found: list[LogLine] = []
        for pod in pods:
            who = replica_of(pod)
            if replica in (None, who):
                found += _last(self._pod_log(pod, kind, who, tail), tail)
        return _last(found, tail)

    @staticmethod
    def _recorded(record: RunDir, replica: str | None) -> Iterator[LogLine]:
        for event, _ in record.read_events():
            if isinstance(event, LogLine) and replica in (None, event.replica):
                yield event

    def _pod_log(
        self, pod: dict[str, Any], kind: JobKind, who: str, tail: int | None
    ) -> Iterator[LogLine]:
        """The pod's log line by line, as text (never decoded as JSON, never whole)."""
        path = f"/api/v1/namespaces/{self.cluster.namespace}/pods/{pod['metadata']['name']}/log"
        try:
            response = self.cluster.stream(
                path, {"container": kind.container, "tailLines": tail}, timeout=(10, 60)
            )
        except ApiError as exc:
            log.info("no log for %s: %s", who, exc)
            return
        try:
            for raw in lines(response):
                yield LogLine(who, raw.decode("utf-8", "replace").rstrip("\r\n"))
        finally:
            close(response)

    def delete(self, name: str) -> None:
        kind, obj = self._find(name)
        job = self.attach(name)
        run: _Run = job.handle  # type: ignore[assignment]
        run.config_map = f"{name}-code"
        self.cancel(job)

    def _delete_job(self, namespace: str, kind: JobKind, name: str) -> None:
        path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{namespace}/{kind.plural}/{name}"
        try:
            self.cluster.request(
                "DELETE",
                path,
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Foreground",
                },
            )
        except ApiError as exc:
            if exc.status != 404:
                raise explain(exc, "delete", kind.plural, namespace, API_GROUP) from None

    def _delete_config_map(self, namespace: str, name: str) -> None:
        if not name:
            return
        try:
            self.cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiError as exc:
            if exc.status != 404:
                log.warning("could not delete configmap %s: %s", name, exc)

    # ---- follow -------------------------------------------------------------------

    def get_logs(self, job: Job) -> Iterator[Event]:
        run: _Run = job.handle  # type: ignore[assignment]
        if run.followed:
            raise BackendError(f"job {run.name} is already being followed")
        run.followed = True
        return _Follow(self.cluster, run, self.queue_size, self.fallback_after).events()


class _Follow:
    """The informers, followers and queue of one `get_logs`."""

    def __init__(self, cluster: Cluster, run: _Run, queue_size: int, fallback_after: float) -> None:
        self.cluster = cluster
        self.run = run
        self.queue: queue.Queue[Event | BackendError] = queue.Queue(queue_size)
        self.stopping = threading.Event()
        self.cursors = self._saved_cursors()
        ns, kind = run.namespace, run.kind
        jobs_path = f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{ns}/{kind.plural}"
        self.job_informer = Informer(
            cluster,
            jobs_path,
            self.on_job,
            field_selector=f"metadata.name={run.name}",
            on_error=lambda e: self.fail(explain(e, "watch", kind.plural, ns, API_GROUP)),
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

    def events(self) -> Iterator[Event]:
        informers = [self.job_informer, self.pod_informer, self.event_informer]
        for informer in informers:
            informer.start()
        started = time.monotonic()
        ended_at: float | None = None
        record = self.run.record.open_for_append() if self.run.record else None
        try:
            for event in self._events(started, ended_at):
                if record is not None:
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

    def _events(self, started: float, ended_at: float | None) -> Iterator[Event]:
        saved = time.monotonic()
        while True:
            if self.run.detached:
                yield from self._detach()
                return
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            if isinstance(item, BackendError):
                raise item
            if item is not None:
                yield item
                if time.monotonic() - saved > 0.5:
                    self._save_cursors()
                    saved = time.monotonic()
                continue
            if self.run.outcome is None:
                self._maybe_fall_back(started)
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
        tmp = path.with_name(".cursors.json.tmp")
        tmp.write_text(json.dumps(cursors))
        os.replace(tmp, path)

    def _drained(self, since_end: float) -> bool:
        """Every follower is done; those of still-running pods are stopped after a grace."""
        pending = [f for f in self.run.followers.values() if not f.done.is_set()]
        if pending and since_end > DRAIN_GRACE:
            for follower in pending:
                follower.stop()
            for follower in pending:
                follower.join(2.0)
            return True
        return not pending

    def _maybe_fall_back(self, started: float) -> None:
        """Old operators label pods differently: if the operator's labels find no pod for a
        while, try the older labels, then the pods whose ownerReference is the job."""
        if self.run.pods or self.fell_back or time.monotonic() - started < self.fallback_after:
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
        waited = int(time.monotonic() - started)
        self._diagnose(
            Diagnosis(
                "job",
                "NoPods",
                f"no pod of this job has appeared after {waited} s: is the Kubeflow training "
                "operator running, and watching this namespace? (kubectl get pods -A | grep "
                "training-operator); its Events may say more (kubectl describe "
                f"{self.run.kind.plural} {self.run.name})",
            )
        )

    def _switch_pods(self, selector: str | None) -> None:
        self.pod_informer.stop()
        self.selector = selector
        self.pod_informer = self._pod_informer(selector).start()

    def put(self, item: Event | BackendError) -> bool:
        """Into the bounded queue, waiting while it is full; False once following stopped."""
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
        if run.outcome is None and any(_finished(c) for c in conditions):
            self._sync_pods()  # the pods' last states (exit codes, OOMKilled) before the verdict
        for condition in conditions:
            if condition.get("status") != "True":
                continue
            if condition.get("type") == "Succeeded" and run.outcome is None:
                run.outcome = JobDone(True, "Succeeded", condition.get("message", ""))
            elif condition.get("type") == "Failed" and run.outcome is None:
                replica, code = self._failed_replica()
                run.outcome = JobDone(
                    False,
                    condition.get("reason") or "Failed",
                    _failure_message(condition.get("message", ""), replica, code),
                    failed_replica=replica,
                    exit_code=code,
                )
        with run.changed:
            run.changed.notify_all()

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
            self.on_pod("MODIFIED", pod)

    def _failed_replica(self) -> tuple[str, int | None]:
        """The first replica whose container ended with a non-zero exit code."""
        candidates = []
        for pod in self.run.pods.values():
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                for state in (status.get("state") or {}, status.get("lastState") or {}):
                    ended = state.get("terminated") or {}
                    if ended.get("exitCode"):
                        candidates.append(
                            (ended.get("finishedAt") or "", replica_of(pod), ended["exitCode"])
                        )
        if not candidates:
            return "", None
        _, replica, code = min(candidates)
        return replica, int(code)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self.run
        if self.by_owner and not _owned_by(pod, run.uid):
            return
        uid = pod["metadata"].get("uid", pod["metadata"]["name"])
        replica = replica_of(pod)
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
                start=tuple(self.cursors[name]) if name in self.cursors else None,
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

    def on_event(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "DELETED" or event.get("type") != "Warning":
            return
        involved = event.get("involvedObject") or {}
        name = involved.get("name", "")
        run = self.run
        if name == run.name:
            replica = "job"
        elif name.startswith(run.name + "-"):
            replica = name[len(run.name) + 1 :]  # pods are named {job}-{type}-{index}
        else:
            return
        diagnosis = diagnose_event(event, replica)
        if diagnosis is not None:
            self._diagnose(diagnosis)

    def _diagnose(self, diagnosis: Diagnosis) -> None:
        key = (diagnosis.replica, diagnosis.reason)
        if key in self.run.diagnosed:
            return
        self.run.diagnosed.add(key)
        self.put(diagnosis)


def replica_state(pod: dict[str, Any], container: str, deleted: bool = False) -> ReplicaState:
    """The ReplicaState a pod shows: phase, the reason it waits or ended, restarts, node."""
    status = pod.get("status") or {}
    phase = "Deleted" if deleted else status.get("phase", "Pending")
    reason, message, restarts, exit_code = _container_summary(pod, container)
    if not reason:
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("reason"):
                reason, message = condition["reason"], condition.get("message", "")
    where = (pod.get("spec") or {}).get("nodeName", "")
    return ReplicaState(replica_of(pod), phase, reason, message, restarts, exit_code, where)


def _container_summary(pod: dict[str, Any], container: str) -> tuple[str, str, int, int | None]:
    """(reason, message, restarts, exit code) of the job's container in the pod."""
    status = pod.get("status") or {}
    for entry in status.get("initContainerStatuses") or []:
        waiting = (entry.get("state") or {}).get("waiting")
        if waiting or (entry.get("state") or {}).get("running"):
            return "Init:0/1", "", 0, None
    for entry in status.get("containerStatuses") or []:
        if entry.get("name") != container:
            continue
        state = entry.get("state") or {}
        restarts = int(entry.get("restartCount") or 0)
        if state.get("waiting"):
            waiting = state["waiting"]
            return waiting.get("reason", ""), waiting.get("message", ""), restarts, None
        if state.get("terminated"):
            ended = state["terminated"]
            return (
                ended.get("reason", ""),
                ended.get("message", ""),
                restarts,
                ended.get("exitCode"),
            )
        return "", "", restarts, None
    return "", "", 0, None


def _last(events: Iterable[LogLine], tail: int | None) -> list[LogLine]:
    """The last `tail` lines (all without one), holding no more than that in memory."""
    return list(deque(events, maxlen=tail)) if tail else list(events)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


def _finished(condition: dict[str, Any]) -> bool:
    return condition.get("type") in ("Succeeded", "Failed") and condition.get("status") == "True"


def _failure_message(message: str, replica: str, code: int | None) -> str:
    if replica:
        return f"{message} ({replica} exited with code {code})".strip()
    return message
