"""The Kubeflow backend, as the kernel sees it: a cell as a PyTorchJob or TFJob (Training
Operator v1) or a TrainJob (Kubeflow Trainer v2), and Ciao's jobs on the cluster.

`dry_run` chooses the API from what the cluster serves (discovery.py), checks a v2 runtime
exists, and plans the ConfigMap of the shipped files and the job (plan.py); `exec_code`
creates exactly that plan (the ConfigMap, the job, then the job adopts the ConfigMap; a
name clash renames the whole plan, a failure deletes what was made) and writes the job's
run record. `get_logs` is follow.py's. Cancel and %delete delete in the foreground by UID;
%jobs lists the jobs labelled managed-by=ciao, and %status, %logs and %attach find a job by
name (%logs reads its run record once it has a verdict, or when its pods are gone). The
cluster is connected to on first use, so choosing this backend costs nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from ciao.backend.kubeflow.client import ApiError, Cluster, close
from ciao.backend.kubeflow.discovery import (
    choose_api,
    find_runtime,
    served_apis,
    trainer_release,
)
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.follow import POD_FALLBACK_AFTER, Follow, KubeflowRun
from ciao.backend.kubeflow.job_state import job_state
from ciao.backend.kubeflow.manifests import (
    ALL_KINDS,
    KINDS,
    MANAGED_BY,
    JobKind,
    PodSecurity,
    config_map_name,
    framework_of,
    pod_selectors,
    replica_of,
    replicas_of,
)
from ciao.backend.kubeflow.plan import KubeflowPlan, Target, plan_job
from ciao.backend.kubeflow.pods import diagnose_pod, replica_state
from ciao.backend.lines import LineSplitter
from ciao.backend.record import RunDir
from ciao.backend.types import Event, Idle, Job, JobDone, JobInfo, LogLine, one_per_line
from ciao.config import KubeflowConfig
from ciao.errors import BackendError, CiaoError
from ciao.interpreter.types import Parameter
from ciao.names import random_name
from ciao.s2i.types import Shipment

log = logging.getLogger("ciao.kubeflow")

#: Bytes of a pod's log read at once for %logs.
READ_BYTES = 64 * 1024


class _NameTaken(Exception):
    """A create answered 409: an object of the plan's name exists."""


class KubeflowBackend:
    """Backend on Kubernetes through the Kubeflow training operator."""

    name = "kubeflow"

    def __init__(
        self,
        cluster: Cluster | Callable[[], Cluster],
        run_root: Path | None = None,
        queue_size: int = 2000,
        fallback_after: float = POD_FALLBACK_AFTER,
        settings: KubeflowConfig | None = None,
    ) -> None:
        """`cluster`, or how to connect to it: then the first call that needs it connects
        (reading the kubeconfig), so choosing this backend costs nothing. `settings`:
        which Kubeflow API (v1, v2 or auto), v2's runtime and release."""
        self._cluster = cluster if isinstance(cluster, Cluster) else None
        self._connect = None if isinstance(cluster, Cluster) else cluster
        self.run_root = run_root
        self.queue_size = queue_size
        self.fallback_after = fallback_after
        self.settings = settings or KubeflowConfig()

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            assert self._connect is not None
            self._cluster = self._connect()
        return self._cluster

    # ---- submit -------------------------------------------------------------------

    def dry_run(self, parameter: Parameter, shipment: Shipment) -> KubeflowPlan:
        """The ConfigMap (if the code rides beside the image) and the job, as `exec_code`
        sends them; the API is chosen from what the cluster serves, and a v2 runtime is
        checked to exist."""
        return plan_job(parameter, shipment, self.cluster.namespace, self.target(parameter))

    def target(self, parameter: Parameter) -> Target:
        """Which API a cell goes to (and why); for v2, its runtime and release."""
        choice = choose_api(parameter.framework, self.settings.api, served_apis(self.cluster))
        queue = parameter.queue or self.settings.queue
        security = PodSecurity(
            self.settings.pod_security == "restricted", self.settings.run_as_user
        )
        if choice.api == "v1":
            if parameter.runtime:
                raise BackendError(
                    f"%runtime={parameter.runtime} names a Kubeflow Trainer v2 runtime, but "
                    f"this cell runs as a {KINDS[parameter.framework].kind} ({choice.why})"
                )
            return Target("v1", choice.why, queue=queue, security=security)
        runtime = find_runtime(self.cluster, parameter.runtime or self.settings.runtime)
        release, release_why = trainer_release(self.cluster, self.settings.release)
        return Target("v2", choice.why, runtime, release, release_why, queue, security)

    def api_summary(self) -> dict[str, str]:
        """For %config: the API each framework's cells would run on here, and why."""
        try:
            served = served_apis(self.cluster)
        except CiaoError as exc:
            return {"error": str(exc)}
        summary = {"served": served.describe()}
        for framework in ("pytorch", "tensorflow"):
            try:
                choice = choose_api(framework, self.settings.api, served)
                summary[framework] = f"{choice.api}: {choice.why}"
            except CiaoError as exc:
                summary[framework] = f"cannot run: {exc}"
        return summary

    def exec_code(self, plan: KubeflowPlan) -> Job[KubeflowRun]:
        """Create the plan's objects, then its job, then hand the objects to the job; on a
        name clash the whole plan is renamed; on any failure nothing is left behind."""
        for _ in range(5):
            try:
                return self._submit(plan)
            except _NameTaken:
                plan = plan.renamed(random_name())
        raise BackendError(f"create {plan.kind.resource}: no free job name after 5 tries")

    def _submit(self, plan: KubeflowPlan) -> Job[KubeflowRun]:
        kind, namespace = plan.kind, plan.namespace
        made_config_map = ""
        created = None
        try:
            for obj in plan.objects:
                self._create(f"/api/v1/namespaces/{namespace}/configmaps", obj, "configmaps", "")
                made_config_map = obj["metadata"]["name"]
            created = self._create(kind.path(namespace), plan.job, kind.plural, kind.kind, kind)
            run = KubeflowRun(
                kind,
                namespace,
                created["metadata"]["name"],
                created["metadata"]["uid"],
                plan.config_map,
            )
            if run.config_map:
                self._adopt_config_map(run)
            run.record = self._record(run, plan.parameter, replicas_of(kind, plan.job))
        except BaseException:
            if created is not None:
                self._delete_job(namespace, kind, created["metadata"]["name"])
            self._delete_config_map(namespace, made_config_map)
            raise
        replicas = replicas_of(kind, plan.job)
        location = where(kind, namespace)
        return Job(plan.parameter.framework, run.name, replicas, self.name, run, location)

    def _create(
        self,
        path: str,
        body: dict[str, Any],
        plural: str,
        kind: str,
        job_kind: JobKind | None = None,
    ) -> dict[str, Any]:
        """POST `body` with strict field validation (a field the server does not know is an
        error, never silently dropped); a 409 is `_NameTaken`, other errors say what to do."""
        group = job_kind.group if job_kind else ""
        try:
            created: dict[str, Any] = self.cluster.request(
                "POST", path, {"fieldValidation": "Strict"}, body=body
            )
            return created
        except ApiError as exc:
            if exc.status == 409:
                raise _NameTaken from None
            raise explain(exc, "create", plural, self.cluster.namespace, group, kind) from None

    def _record(
        self, run: KubeflowRun, parameter: Parameter, replicas: dict[str, int]
    ) -> RunDir | None:
        """The job's run directory: what it was, and (as it is followed) its events."""
        if self.run_root is None:
            return None
        record = RunDir(self.run_root, run.name)
        record.start(
            self.name,
            namespace=run.namespace,
            framework=parameter.framework,
            replicas=replicas,
            owner=dict(parameter.owner),
        )
        return record

    def _adopt_config_map(self, run: KubeflowRun) -> None:
        """The job owns its ConfigMap, so the garbage collector takes it with the job. Not
        blockOwnerDeletion: where OwnerReferencesPermissionEnforcement is on (OpenShift),
        that needs `update` on the job's finalizers, and cancel deletes the ConfigMap itself."""
        owner = {
            "apiVersion": f"{run.kind.group}/{run.kind.version}",
            "kind": run.kind.kind,
            "name": run.name,
            "uid": run.uid,
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

    def cancel(self, job: Job[KubeflowRun]) -> None:
        """Delete the job in the foreground (its pods first, then it), and its ConfigMap."""
        run = job.handle
        run.cancelled = True
        self._delete_job(run.namespace, run.kind, run.name, run.uid)
        self._delete_config_map(run.namespace, run.config_map)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                found = self.cluster.request("GET", run.job_path)
            except ApiError as exc:
                if exc.status == 404:
                    return
                raise explain(exc, "get", run.kind.plural, run.namespace, run.kind.group) from None
            if run.uid and (found.get("metadata") or {}).get("uid") != run.uid:
                return  # ours is gone; a new job of the same name is not ours to wait for
            time.sleep(0.2)
        raise BackendError(f"job {run.name} was deleted but is still there after 60 s")

    def detach(self, job: Job[KubeflowRun]) -> None:
        """Stop following (the job goes on); get_logs ends after what it has yielded."""
        run = job.handle
        run.detached = True

    # ---- jobs of any kernel ------------------------------------------------------------

    def _jobs_path(self, kind: JobKind, name: str = "") -> str:
        return kind.path(self.cluster.namespace, name)

    def _served_kinds(self) -> list[JobKind]:
        """The job kinds this cluster serves: asking for one it does not serve would be a
        403, not a 404, for a Role without rules for it (authorization comes first)."""
        served = served_apis(self.cluster)
        return [kind for kind in ALL_KINDS if served.serves(kind)]

    def _find(self, name: str) -> tuple[JobKind, dict[str, Any]]:
        """The job called `name`, of whichever kind the cluster serves."""
        for kind in self._served_kinds():
            try:
                return kind, self.cluster.request("GET", self._jobs_path(kind, name))
            except ApiError as exc:
                if exc.status != 404:
                    ns = self.cluster.namespace
                    raise explain(exc, "get", kind.plural, ns, kind.group) from None
        raise BackendError(f"no job {name!r} in namespace {self.cluster.namespace}")

    def attach(self, name: str, viewer: str = "") -> Job[KubeflowRun]:
        """The job, followed from the cluster; lines delivered before (to any notebook:
        the containers' cursors are per job) are not repeated."""
        kind, obj = self._find(name)
        framework = framework_of(kind)
        replicas = replicas_of(kind, obj)
        run = KubeflowRun(kind, self.cluster.namespace, name, obj["metadata"]["uid"])
        resumed = False
        if self.run_root is not None:
            run.record = RunDir(self.run_root, name)
            resumed = run.record.exists()  # followed here before: its cursors say how far
            if not resumed:
                run.record.start(
                    self.name,
                    namespace=run.namespace,
                    framework=framework,
                    replicas=replicas,
                    owner={},
                )
        location = where(run.kind, run.namespace)
        return Job(framework, name, replicas, self.name, run, location, resumed)

    def jobs(self) -> list[JobInfo]:
        jobs = []
        for kind in self._served_kinds():
            try:
                answer = self.cluster.request(
                    "GET",
                    self._jobs_path(kind),
                    {"labelSelector": f"{MANAGED_BY}=ciao"},
                )
            except ApiError as exc:
                if exc.status == 404:  # this API is not installed
                    continue
                ns = self.cluster.namespace
                raise explain(exc, "list", kind.plural, ns, kind.group) from None
            jobs += [self._info(kind, obj) for obj in answer.get("items") or []]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def _info(self, kind: JobKind, obj: dict[str, Any]) -> JobInfo:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        prefix = "ciao.kubeflow.org/"
        state, message = job_state(kind, obj)
        created = meta.get("creationTimestamp")
        return JobInfo(
            name=meta.get("name", ""),
            framework=framework_of(kind),
            backend=self.name,
            state=state,
            created=isoparse(created).timestamp() if created else 0.0,
            replicas=replicas_of(kind, obj),
            owner={k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)},
            location=where(kind, self.cluster.namespace),
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

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterator[LogLine]:
        """From the run directory when this machine followed the job to its end; else from
        the pods while they are there (a record cut short by a detach lacks the rest);
        else what the run directory has (the pods are gone). Streamed: memory holds at
        most `tail` lines, whatever the log's size; the source is chosen (and a missing
        job reported) before the first line."""
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
        chosen = [pod for pod in pods if replica in (None, replica_of(pod))]
        streams = (_last(self._pod_log(pod, kind, replica_of(pod), tail), tail) for pod in chosen)
        return _last(chain.from_iterable(streams), tail)

    @staticmethod
    def _recorded(record: RunDir, replica: str | None) -> Iterator[LogLine]:
        for event in one_per_line(event for event, _ in record.read_events()):
            if isinstance(event, LogLine) and replica in (None, event.replica):
                yield event

    def _pod_log(
        self, pod: dict[str, Any], kind: JobKind, who: str, tail: int | None
    ) -> Iterator[LogLine]:
        """The pod's log line by line, as text (never decoded as JSON, never whole): split
        as the follower splits it, so a huge line comes in 64 KiB pieces."""
        path = f"/api/v1/namespaces/{self.cluster.namespace}/pods/{pod['metadata']['name']}/log"
        try:
            response = self.cluster.stream(
                path, {"container": kind.container, "tailLines": tail}, timeout=(10, 60)
            )
        except ApiError as exc:
            log.info("no log for %s: %s", who, exc)
            return
        splitter = LineSplitter(who, "stdout")
        try:
            for chunk in response.stream(READ_BYTES, decode_content=True):
                for event in splitter.feed(chunk):
                    if isinstance(event, LogLine):
                        yield event
            for event in splitter.close():
                if isinstance(event, LogLine):
                    yield event
        finally:
            close(response)

    def delete(self, name: str) -> None:
        """Delete a job Ciao created (labelled managed-by=ciao; by UID, so a job made again
        under the name meanwhile is not touched), the ConfigMap it owns, its run record."""
        kind, obj = self._find(name)
        meta = obj.get("metadata") or {}
        if (meta.get("labels") or {}).get(MANAGED_BY) != "ciao":
            raise BackendError(
                f"{kind.kind} {name} in namespace {self.cluster.namespace} was not created by "
                f"Ciao (it has no {MANAGED_BY}=ciao label): Ciao deletes only its own jobs; "
                f"use kubectl delete {kind.plural} {name} if you mean it"
            )
        run = KubeflowRun(kind, self.cluster.namespace, name, meta.get("uid", ""))
        if self._owned_config_map(run):
            run.config_map = config_map_name(name)
        job = Job(framework_of(kind), name, replicas_of(kind, obj), self.name, run)
        self.cancel(job)
        if self.run_root is not None:
            record = RunDir(self.run_root, name)
            if record.exists():
                shutil.rmtree(record.path, ignore_errors=True)

    def _owned_config_map(self, run: KubeflowRun) -> bool:
        """Whether the job's ConfigMap exists and is the job's (its ownerReference)."""
        path = f"/api/v1/namespaces/{run.namespace}/configmaps/{config_map_name(run.name)}"
        try:
            config_map = self.cluster.request("GET", path)
        except ApiError as exc:
            if exc.status in (403, 404):  # gone already (owned ones go with the job), or hidden
                return False
            raise explain(exc, "get", "configmaps", run.namespace) from None
        refs = (config_map.get("metadata") or {}).get("ownerReferences") or []
        return any(ref.get("uid") == run.uid for ref in refs)

    def _delete_job(self, namespace: str, kind: JobKind, name: str, uid: str = "") -> None:
        """Delete in the foreground (pods first); with `uid`, only that very object."""
        path = kind.path(namespace, name)
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Foreground",
        }
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            self.cluster.request("DELETE", path, body=options)
        except ApiError as exc:
            if exc.status == 409 and uid:  # a precondition failed: ours is gone, another is there
                return
            if exc.status != 404:
                raise explain(exc, "delete", kind.plural, namespace, kind.group) from None

    def _delete_config_map(self, namespace: str, name: str) -> None:
        if not name:
            return
        try:
            self.cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        except ApiError as exc:
            if exc.status != 404:
                log.warning("could not delete configmap %s: %s", name, exc)

    # ---- follow -------------------------------------------------------------------

    def get_logs(self, job: Job[KubeflowRun]) -> Iterator[Event | Idle]:
        run = job.handle
        if run.followed:
            raise BackendError(f"job {run.name} is already being followed")
        run.followed = True
        follow = Follow(self.cluster, run, self.queue_size, self.fallback_after, job.resumed)
        return follow.events()


def _last(events: Iterable[LogLine], tail: int | None) -> Iterator[LogLine]:
    """The last `tail` lines (all without one, streamed), holding no more than that."""
    return iter(deque(events, maxlen=tail)) if tail else iter(events)


def where(kind: JobKind, namespace: str) -> str:
    """Where a job runs, for people: the resource it is, so a TrainJob reads as one."""
    return f"kubeflow ({kind.kind}, namespace {namespace})"
