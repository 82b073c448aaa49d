"""A Katib study made on the cluster: checked first (Katib's webhook rules, the namespace
label), then exactly the plan created: the code's ConfigMap, the Experiment (strict field
validation), the ConfigMap handed to the Experiment, so deleting the Experiment deletes
it. A name clash renames the whole plan; a failure deletes what was made.
"""

from __future__ import annotations

from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.discovery import katib_served
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.katib import (
    EXPERIMENTS,
    INJECTION_LABEL,
    KatibPlan,
    experiments_path,
)
from ciao.backend.kubeflow.katib_rules import label_problem, webhook_problems
from ciao.backend.kubeflow.katib_run import delete_experiment
from ciao.backend.kubeflow.manifests import API_GROUP
from ciao.backend.kubeflow.removal import delete_config_map
from ciao.backend.kubeflow.submit import NameTaken, adopt_config_map, create_strict
from ciao.errors import BackendError
from ciao.names import random_name

#: What Katib's pods need in a namespace, said where the cell is refused.
INSTALL_HINT = (
    "install Katib v0.19 (https://www.kubeflow.org/docs/components/katib/installation/), "
    "or set tune.engine: ciao (or auto) to run the trials as Kubeflow jobs driven by Ciao's "
    "own engine"
)


def require_katib(cluster: Cluster) -> None:
    """An error saying what to do when the cluster does not serve Experiments."""
    if not katib_served(cluster):
        raise BackendError(
            f"tune.engine is katib, but the cluster does not serve {EXPERIMENTS}.{API_GROUP}"
            f"/v1beta1 (Katib): {INSTALL_HINT}"
        )


def check(cluster: Cluster, plan: KatibPlan) -> None:
    """Everything Katib's webhook would refuse, before anything is made: its rules for the
    Experiment, and the namespace's label (when the namespace can be read: a Role may not
    grant `get` on it, and then Katib's own refusal says it, with the command)."""
    problems = webhook_problems(plan.experiment)
    if problems:
        raise BackendError(
            f"Katib's webhook would refuse the Experiment {plan.name}:\n  " + "\n  ".join(problems)
        )
    labels = namespace_labels(cluster, plan.namespace)
    if labels is not None:
        problem = label_problem(plan.namespace, labels)
        if problem:
            raise BackendError(f"cannot run a Katib study in namespace {plan.namespace}: {problem}")


def namespace_labels(cluster: Cluster, namespace: str) -> dict[str, str] | None:
    """The namespace's labels; None when they cannot be read (403)."""
    try:
        found = cluster.request("GET", f"/api/v1/namespaces/{namespace}")
    except ApiError as exc:
        if exc.status == 403:
            return None
        raise explain(exc, "get", "namespaces", namespace) from None
    return dict((found.get("metadata") or {}).get("labels") or {})


def create(cluster: Cluster, plan: KatibPlan) -> tuple[KatibPlan, dict[str, Any]]:
    """Create the ConfigMap, then the Experiment, then hand the ConfigMap to it; on a
    name clash the whole plan is renamed; on any failure nothing is left behind. The plan
    made (renamed, maybe) and the Experiment as the API server answered."""
    for _ in range(5):
        try:
            return plan, _submit(cluster, plan)
        except NameTaken:
            plan = plan.renamed(random_name())
    raise BackendError(f"create {EXPERIMENTS}.{API_GROUP}: no free study name after 5 tries")


def _submit(cluster: Cluster, plan: KatibPlan) -> dict[str, Any]:
    namespace = plan.namespace
    config_map = plan.config_map
    made_config_map = ""
    created: dict[str, Any] | None = None
    try:
        if config_map is not None:
            path = f"/api/v1/namespaces/{namespace}/configmaps"
            create_strict(cluster, path, config_map, "configmaps")
            made_config_map = config_map["metadata"]["name"]
        created = create_strict(
            cluster,
            experiments_path(namespace),
            plan.experiment,
            EXPERIMENTS,
            group=API_GROUP,
            refused=lambda exc: _refused(exc, namespace),
        )
        if made_config_map:
            meta = created.get("metadata") or {}
            owner = {
                "apiVersion": created.get("apiVersion", f"{API_GROUP}/v1beta1"),
                "kind": "Experiment",
                "name": meta.get("name", ""),
                "uid": meta.get("uid", ""),
            }
            adopt_config_map(cluster, namespace, made_config_map, owner)
    except BaseException:
        if created is not None:
            meta = created.get("metadata") or {}
            delete_experiment(cluster, namespace, meta.get("name", ""), meta.get("uid", ""))
        delete_config_map(cluster, namespace, made_config_map)
        raise
    return created


def _refused(exc: ApiError, namespace: str) -> BackendError | None:
    """Katib's webhook refusing a namespace without the collector's label: how to fix it."""
    if INJECTION_LABEL not in str(exc):
        return None
    return BackendError(f"Katib refused the study: {exc}. {label_problem(namespace, None)}")
