"""The job commands on the cluster: Ciao's jobs of any kernel, by name. %jobs lists those
labelled managed-by=ciao, %status reads a job and its pods, %logs reads its run record once
it has a verdict (or when its pods are gone) and else its pods' logs, %metrics the same
way (the record's saved metrics once it has a verdict), %attach makes its
handle (%delete is removal.py's).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from ciao.backend.kubeflow.client import ApiError, Cluster, close
from ciao.backend.kubeflow.discovery import served_apis
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.job_state import job_state
from ciao.backend.kubeflow.manifests import (
    ALL_KINDS,
    MANAGED_BY,
    JobKind,
    framework_of,
    pod_selectors,
    replica_of,
    replicas_of,
)
from ciao.backend.kubeflow.pods import diagnose_pod, replica_state
from ciao.backend.kubeflow.run import KubeflowRun, start_record, where
from ciao.backend.metrics import Metrics
from ciao.backend.record import RunDir
from ciao.backend.splitter import LineSplitter
from ciao.backend.types import Event, Job, JobDone, JobInfo, LogLine, one_per_line
from ciao.errors import BackendError

log = logging.getLogger("ciao.kubeflow")

#: Bytes of a pod's log read at once for %logs.
READ_BYTES = 64 * 1024


def served_kinds(cluster: Cluster) -> list[JobKind]:
    """The job kinds this cluster serves: asking for one it does not serve would be a 403,
    not a 404, for a Role without rules for it (authorization comes first)."""
    served = served_apis(cluster)
    return [kind for kind in ALL_KINDS if served.serves(kind)]


def find(cluster: Cluster, name: str) -> tuple[JobKind, dict[str, Any]]:
    """The job called `name`, of whichever kind the cluster serves."""
    for kind in served_kinds(cluster):
        try:
            return kind, cluster.request("GET", kind.path(cluster.namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise explain(exc, "get", kind.plural, cluster.namespace, kind.group) from None
    raise BackendError(f"no job {name!r} in namespace {cluster.namespace}")


def attach(cluster: Cluster, run_root: Path | None, name: str) -> Job[KubeflowRun]:
    """The job, to follow from the cluster; lines delivered before (to any notebook: the
    containers' cursors are per job) are not repeated."""
    kind, obj = find(cluster, name)
    framework = framework_of(kind)
    replicas = replicas_of(kind, obj)
    run = KubeflowRun(kind, cluster.namespace, name, obj["metadata"]["uid"])
    resumed = False
    if run_root is not None:
        run.record = RunDir(run_root, name)
        resumed = run.record.exists()  # followed here before: its cursors say how far
        if not resumed:
            run.record = start_record(run_root, run, framework, replicas, owner={})
    location = where(run.kind, run.namespace)
    travels = run.record.travels() if run.record is not None else ""
    return Job(framework, name, replicas, "kubeflow", run, location, resumed, travels)


def jobs(cluster: Cluster) -> list[JobInfo]:
    """Ciao's jobs (labelled managed-by=ciao) of every kind served, newest first."""
    found = []
    for kind in served_kinds(cluster):
        try:
            answer = cluster.request(
                "GET", kind.path(cluster.namespace), {"labelSelector": f"{MANAGED_BY}=ciao"}
            )
        except ApiError as exc:
            if exc.status == 404:  # this API is not installed
                continue
            raise explain(exc, "list", kind.plural, cluster.namespace, kind.group) from None
        found += [_info(cluster, kind, obj) for obj in answer.get("items") or []]
    return sorted(found, key=lambda j: j.created, reverse=True)


def _info(cluster: Cluster, kind: JobKind, obj: dict[str, Any]) -> JobInfo:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    prefix = "ciao.kubeflow.org/"
    state, message = job_state(kind, obj)
    created = meta.get("creationTimestamp")
    return JobInfo(
        name=meta.get("name", ""),
        framework=framework_of(kind),
        backend="kubeflow",
        state=state,
        created=isoparse(created).timestamp() if created else 0.0,
        replicas=replicas_of(kind, obj),
        owner={k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)},
        location=where(kind, cluster.namespace),
        message=message,
    )


def _pods(cluster: Cluster, name: str, kind: JobKind) -> list[dict[str, Any]]:
    try:
        answer = cluster.request(
            "GET",
            f"/api/v1/namespaces/{cluster.namespace}/pods",
            {"labelSelector": pod_selectors(name, kind)[0]},
        )
    except ApiError as exc:
        raise explain(exc, "list", "pods", cluster.namespace) from None
    return answer.get("items") or []


def describe(cluster: Cluster, name: str) -> tuple[JobInfo, list[Event]]:
    """The job and its replicas' latest states, from it and its pods."""
    kind, obj = find(cluster, name)
    info = _info(cluster, kind, obj)
    pods = _pods(cluster, name, kind)
    events: list[Event] = [replica_state(pod, kind.container) for pod in pods]
    for pod in pods:
        events += diagnose_pod(pod, replica_of(pod))
    if info.state in ("Succeeded", "Failed"):
        events.append(JobDone(info.state == "Succeeded", info.state, info.message))
    return info, events


def logs(
    cluster: Cluster,
    run_root: Path | None,
    name: str,
    replica: str | None = None,
    tail: int | None = None,
) -> Iterator[LogLine]:
    """From the run directory when this machine followed the job to its end; else from the
    pods while they are there (a record cut short by a detach lacks the rest); else what
    the run directory has (the pods are gone). Streamed: memory holds at most `tail`
    lines, whatever the log's size; the source is chosen (and a missing job reported)
    before the first line."""
    record = RunDir(run_root, name) if run_root is not None else None
    if record is not None and not record.exists():
        record = None
    if record is not None and record.final() is not None:
        return _last(_recorded(record, replica), tail)
    try:
        kind, _ = find(cluster, name)
        pods = sorted(_pods(cluster, name, kind), key=replica_of)
    except BackendError:
        if record is None:
            raise
        return _last(_recorded(record, replica), tail)
    if not pods and record is not None:
        return _last(_recorded(record, replica), tail)
    chosen = [pod for pod in pods if replica in (None, replica_of(pod))]
    streams = (_last(_pod_log(cluster, pod, kind, replica_of(pod), tail), tail) for pod in chosen)
    return _last(chain.from_iterable(streams), tail)


def metrics(cluster: Cluster, run_root: Path | None, name: str) -> Metrics:
    """From the run record when this machine followed the job to its end (what it saved,
    without reading the log again); else from the lines `logs` reads (the pods' while
    they are there, then the record's)."""
    record = RunDir(run_root, name) if run_root is not None else None
    if record is not None and record.exists() and record.final() is not None:
        return record.metrics()
    found = Metrics()
    for line in logs(cluster, run_root, name):
        found.add_line(line.replica, line.text)
    return found


def _recorded(record: RunDir, replica: str | None) -> Iterator[LogLine]:
    for event in one_per_line(event for event, _ in record.read_events()):
        if isinstance(event, LogLine) and replica in (None, event.replica):
            yield event


def _pod_log(
    cluster: Cluster, pod: dict[str, Any], kind: JobKind, who: str, tail: int | None
) -> Iterator[LogLine]:
    """The pod's log line by line, as text (never decoded as JSON, never whole): split as
    the follower splits it, so a huge line comes in 64 KiB pieces."""
    path = f"/api/v1/namespaces/{cluster.namespace}/pods/{pod['metadata']['name']}/log"
    try:
        response = cluster.stream(
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


def _last(events: Iterable[LogLine], tail: int | None) -> Iterator[LogLine]:
    """The last `tail` lines (all without one, streamed), holding no more than that."""
    return iter(deque(events, maxlen=tail)) if tail else iter(events)
