"""Submitting a cell to Kubeflow: the API (and a v2 runtime) chosen from what the cluster
serves, then exactly the plan created: its ConfigMap, its job (strict field validation),
the ConfigMap handed to the job, the run record begun. A name clash renames the whole
plan; a failure deletes what was made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.discovery import choose_api, find_runtime, served_apis, trainer_release
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.manifests import KINDS, PodSecurity, replicas_of
from ciao.backend.kubeflow.plan import KubeflowPlan, Target
from ciao.backend.kubeflow.removal import delete_config_map, delete_job
from ciao.backend.kubeflow.run import KubeflowRun, start_record, where
from ciao.backend.types import Job
from ciao.config import KubeflowConfig
from ciao.errors import BackendError, CiaoError
from ciao.interpreter.types import Parameter
from ciao.names import random_name


class NameTaken(Exception):
    """A create answered 409: an object of the plan's name exists."""


def target(cluster: Cluster, settings: KubeflowConfig, parameter: Parameter) -> Target:
    """Which API a cell goes to (and why); for v2, its runtime and release."""
    choice = choose_api(parameter.framework, settings.api, served_apis(cluster))
    queue = parameter.queue or settings.queue
    security = PodSecurity(settings.pod_security == "restricted", settings.run_as_user)
    if choice.api == "v1":
        if parameter.runtime:
            raise BackendError(
                f"%runtime={parameter.runtime} names a Kubeflow Trainer v2 runtime, but "
                f"this cell runs as a {KINDS[parameter.framework].kind} ({choice.why})"
            )
        return Target("v1", choice.why, queue=queue, security=security)
    runtime = find_runtime(cluster, parameter.runtime or settings.runtime)
    release, release_why = trainer_release(cluster, settings.release)
    return Target("v2", choice.why, runtime, release, release_why, queue, security)


def api_summary(cluster: Cluster, settings: KubeflowConfig) -> dict[str, str]:
    """For %config: the API each framework's cells would run on here, and why."""
    try:
        served = served_apis(cluster)
    except CiaoError as exc:
        return {"error": str(exc)}
    summary = {"served": served.describe()}
    for framework in ("pytorch", "tensorflow"):
        try:
            choice = choose_api(framework, settings.api, served)
            summary[framework] = f"{choice.api}: {choice.why}"
        except CiaoError as exc:
            summary[framework] = f"cannot run: {exc}"
    return summary


def create(cluster: Cluster, plan: KubeflowPlan, run_root: Path | None) -> Job[KubeflowRun]:
    """Create the plan's objects, then its job, then hand the objects to the job; on a
    name clash the whole plan is renamed; on any failure nothing is left behind."""
    for _ in range(5):
        try:
            return _submit(cluster, plan, run_root)
        except NameTaken:
            plan = plan.renamed(random_name())
    raise BackendError(f"create {plan.kind.resource}: no free job name after 5 tries")


def _submit(cluster: Cluster, plan: KubeflowPlan, run_root: Path | None) -> Job[KubeflowRun]:
    kind, namespace = plan.kind, plan.namespace
    made_config_map = ""
    created = None
    replicas = replicas_of(kind, plan.job)
    try:
        for obj in plan.objects:
            path = f"/api/v1/namespaces/{namespace}/configmaps"
            create_strict(cluster, path, obj, "configmaps")
            made_config_map = obj["metadata"]["name"]
        created = create_strict(
            cluster, kind.path(namespace), plan.job, kind.plural, kind.kind, kind.group
        )
        meta = created["metadata"]
        run = KubeflowRun(kind, namespace, meta["name"], meta["uid"], plan.config_map)
        if run.config_map:
            owner = {
                "apiVersion": f"{run.kind.group}/{run.kind.version}",
                "kind": run.kind.kind,
                "name": run.name,
                "uid": run.uid,
            }
            adopt_config_map(cluster, run.namespace, run.config_map, owner)
        parameter = plan.parameter
        run.record = start_record(
            run_root,
            run,
            parameter.framework,
            replicas,
            dict(parameter.owner),
            plan.shipment.travels_line,
            plan.shipment.travels,
        )
    except BaseException:
        if created is not None:
            delete_job(cluster, namespace, kind, created["metadata"]["name"])
        delete_config_map(cluster, namespace, made_config_map)
        raise
    location = where(kind, namespace)
    return Job(plan.parameter.framework, run.name, replicas, "kubeflow", run, location)


def create_strict(
    cluster: Cluster,
    path: str,
    body: dict[str, Any],
    plural: str,
    kind: str = "",
    group: str = "",
    refused: Callable[[ApiError], BackendError | None] | None = None,
) -> dict[str, Any]:
    """POST `body` with strict field validation (a field the server does not know is an
    error, never silently dropped); a 409 is `NameTaken`; `refused` may say what a refusal
    means first (a webhook's), other errors say what to do."""
    try:
        created: dict[str, Any] = cluster.request(
            "POST", path, {"fieldValidation": "Strict"}, body=body
        )
        return created
    except ApiError as exc:
        if exc.status == 409:
            raise NameTaken from None
        said = refused(exc) if refused else None
        if said is not None:
            raise said from None
        raise explain(exc, "create", plural, cluster.namespace, group, kind) from None


def adopt_config_map(
    cluster: Cluster, namespace: str, config_map: str, owner: dict[str, str]
) -> None:
    """`owner` (a job, an Experiment) owns its code's ConfigMap, so the garbage collector
    takes it with its owner. Not blockOwnerDeletion: where
    OwnerReferencesPermissionEnforcement is on (OpenShift), that needs `update` on the
    owner's finalizers, and cancel deletes the ConfigMap itself."""
    try:
        cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{config_map}",
            body={"metadata": {"ownerReferences": [owner]}},
            content_type="application/merge-patch+json",
        )
    except ApiError as exc:
        raise explain(exc, "patch", "configmaps", namespace) from None
