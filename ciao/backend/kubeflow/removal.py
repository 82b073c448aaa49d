"""Stopping and deleting Ciao's Kubeflow jobs: in the foreground (pods first) and by UID,
so a job made again under the same name meanwhile is never touched; its ConfigMap only
when the job owns it; %delete only a job labelled as Ciao's, and its run record.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.manifests import MANAGED_BY, JobKind, config_map_name
from ciao.backend.kubeflow.run import KubeflowRun
from ciao.backend.record import RunDir
from ciao.errors import BackendError

log = logging.getLogger("ciao.kubeflow")


def cancel(cluster: Cluster, run: KubeflowRun) -> None:
    """Delete the job in the foreground (its pods first, then it), and its ConfigMap;
    return once it is gone."""
    run.cancelled = True
    delete_job(cluster, run.namespace, run.kind, run.name, run.uid)
    delete_config_map(cluster, run.namespace, run.config_map)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            found = cluster.request("GET", run.job_path)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise explain(exc, "get", run.kind.plural, run.namespace, run.kind.group) from None
        if run.uid and (found.get("metadata") or {}).get("uid") != run.uid:
            return  # ours is gone; a new job of the same name is not ours to wait for
        time.sleep(0.2)
    raise BackendError(f"job {run.name} was deleted but is still there after 60 s")


def delete(cluster: Cluster, run_root: Path | None, kind: JobKind, obj: dict[str, Any]) -> None:
    """Delete a job Ciao created (labelled managed-by=ciao), the ConfigMap it owns, and its
    run record."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if (meta.get("labels") or {}).get(MANAGED_BY) != "ciao":
        raise BackendError(
            f"{kind.kind} {name} in namespace {cluster.namespace} was not created by "
            f"Ciao (it has no {MANAGED_BY}=ciao label): Ciao deletes only its own jobs; "
            f"use kubectl delete {kind.plural} {name} if you mean it"
        )
    run = KubeflowRun(kind, cluster.namespace, name, meta.get("uid", ""))
    if _owned_config_map(cluster, run):
        run.config_map = config_map_name(name)
    cancel(cluster, run)
    if run_root is not None:
        record = RunDir(run_root, name)
        if record.exists():
            shutil.rmtree(record.path, ignore_errors=True)


def _owned_config_map(cluster: Cluster, run: KubeflowRun) -> bool:
    """Whether the job's ConfigMap exists and is the job's (its ownerReference)."""
    path = f"/api/v1/namespaces/{run.namespace}/configmaps/{config_map_name(run.name)}"
    try:
        config_map = cluster.request("GET", path)
    except ApiError as exc:
        if exc.status in (403, 404):  # gone already (owned ones go with the job), or hidden
            return False
        raise explain(exc, "get", "configmaps", run.namespace) from None
    refs = (config_map.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == run.uid for ref in refs)


def foreground(uid: str = "") -> dict[str, Any]:
    """DeleteOptions that delete the dependents (pods, trials, jobs) before the owner; with
    `uid`, only that very object (one made again under the name is not ours)."""
    options: dict[str, Any] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
    }
    if uid:
        options["preconditions"] = {"uid": uid}
    return options


def delete_job(cluster: Cluster, namespace: str, kind: JobKind, name: str, uid: str = "") -> None:
    """Delete in the foreground (pods first); with `uid`, only that very object."""
    path = kind.path(namespace, name)
    try:
        cluster.request("DELETE", path, body=foreground(uid))
    except ApiError as exc:
        if exc.status == 409 and uid:  # a precondition failed: ours is gone, another is there
            return
        if exc.status != 404:
            raise explain(exc, "delete", kind.plural, namespace, kind.group) from None


def delete_config_map(cluster: Cluster, namespace: str, name: str) -> None:
    if not name:
        return
    try:
        cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    except ApiError as exc:
        if exc.status != 404:
            log.warning("could not delete configmap %s: %s", name, exc)
