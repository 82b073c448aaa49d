"""TrainJob manifests (Kubeflow Trainer v2, `trainer.kubeflow.org/v1alpha1`), as plain dicts.

Pure functions, like manifests.py for v1. A PyTorch cell becomes one TrainJob on a torch
runtime: `numNodes` is the cell's replica count, every node runs the cell under `torchrun`
(which reads the torch plugin's PET_* variables and gives each process RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT, as the v1 operator does), and the shipped files
and the cell's pod settings reach the pods through the pod-override field of the installed
release: its name and what it can hold changed in every release (docs/kubeflow-trainer-v2.md;
trainer_overrides.py refuses what the release cannot hold). The cell's `%env` is the
trainer's env: the webhook refuses env for container `node` in an override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.manifests import (
    LABEL_PREFIX,
    POD_ANNOTATIONS,
    RESTRICTED,
    TRAINER_GROUP,
    TRAINER_VERSION,
    PodSecurity,
    ciao_labels,
    pod_volumes,
    resource_amounts,
    torchrun,
)
from ciao.backend.kubeflow.pod_settings import (
    cell_env,
    placement,
    pod_metadata,
    security_context,
)
from ciao.backend.kubeflow.trainer_overrides import (
    SECURITY_CONTEXT_RELEASES,
    check_release,
    node_settings,
)
from ciao.errors import BackendError
from ciao.interpreter.pod import PodSettings
from ciao.interpreter.types import Parameter
from ciao.s2i.types import Shipment

#: The replicated job (and container) of the torch runtimes that runs the trainer.
TRAINER_JOB = "node"
#: The pod-override field of each release.
OVERRIDE_FIELDS = {
    "v2.0": "podSpecOverrides",
    "v2.1": "podTemplateOverrides",
    "v2.2": "runtimePatches",
    "v2.3": "runtimePatches",
}
#: Who owns Ciao's runtime patch (a list-map keyed by manager).
PATCH_MANAGER = "ciao.kubeflow.org/kernel"
NO_SECURITY_CONTEXT = PodSecurity(restricted=False)


def pod_security_of(release: str, security: PodSecurity) -> PodSecurity:
    """What a TrainJob of `release` can set of `security`: all of it, or nothing."""
    return security if release in SECURITY_CONTEXT_RELEASES else NO_SECURITY_CONTEXT


@dataclass(frozen=True)
class Runtime:
    """The training runtime a TrainJob names, as found on the cluster."""

    name: str
    kind: str = "ClusterTrainingRuntime"  # or TrainingRuntime (namespaced)


def trainjob_manifest(
    parameter: Parameter,
    shipment: Shipment,
    namespace: str,
    runtime: Runtime,
    release: str,
    security: PodSecurity = RESTRICTED,
) -> dict[str, Any]:
    """The TrainJob that runs the cell's code on `parameter.total_replicas` nodes; its pods
    get `security`'s securityContext where the release's pod override can carry it."""
    if parameter.framework != "pytorch":
        raise BackendError(
            "Kubeflow Trainer v2 has no TensorFlow runtime: run TensorFlow cells on a cluster "
            "with the Training Operator v1 (TFJob; config `kubeflow: {api: v1}`), or port the "
            "cell to PyTorch"
        )
    if release not in OVERRIDE_FIELDS:
        raise BackendError(f"unknown Kubeflow Trainer release {release!r}")
    settings = node_settings(parameter)
    check_release(settings, release, OVERRIDE_FIELDS[release])
    security = pod_security_of(release, security)
    trainer: dict[str, Any] = {
        "numNodes": parameter.total_replicas,
        "command": list(shipment.run_with(torchrun(parameter))),
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "CIAO_JOB_NAME", "value": parameter.generate_name},
            # the trainer's env: the webhook refuses env for container `node` in overrides
            *security.env,
            *cell_env(settings),
        ],
    }
    if shipment.image:
        trainer["image"] = shipment.image
    resources = _node_resources(parameter)
    if resources:
        trainer["resourcesPerNode"] = {"requests": dict(resources), "limits": dict(resources)}
    # one process per node unless %procs says more: as on v1 and locally (the runtime's
    # "auto" would start one per CPU, and the cell would see another world size)
    trainer["numProcPerNode"] = parameter.procs_per_node or 1
    spec: dict[str, Any] = {
        "runtimeRef": {"name": runtime.name, "apiGroup": TRAINER_GROUP, "kind": runtime.kind},
        "trainer": trainer,
    }
    labels = ciao_labels(parameter)
    override = _pod_override(parameter, shipment, release, labels, security, settings)
    if override:
        spec[OVERRIDE_FIELDS[release]] = [override]
    return {
        "apiVersion": f"{TRAINER_GROUP}/{TRAINER_VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": parameter.generate_name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _node_resources(parameter: Parameter) -> dict[str, str]:
    """Every node gets the same resources on v2: the master's and the workers' must agree."""
    amounts = {role: resource_amounts(spec.resources) for role, spec in parameter.roles.items()}
    distinct = {tuple(sorted(a.items())) for a in amounts.values()}
    if len(distinct) > 1:
        given = "; ".join(f"{role}: {a or 'none'}" for role, a in amounts.items())
        raise BackendError(
            "Kubeflow Trainer v2 gives every node the same resources, but this cell asks for "
            f"different ones ({given}): use %nodes=N;%cpu=...;%memory=... for all of them"
        )
    return next(iter(amounts.values()), {})


def _pod_override(
    parameter: Parameter,
    shipment: Shipment,
    release: str,
    labels: dict[str, str],
    security: PodSecurity,
    settings: PodSettings,
) -> dict[str, Any]:
    """The code's ConfigMap mount, the cell's volumes and where its pods go, Ciao's pod
    labels and the no-sidecar annotation, and (from v2.2) the securityContext, in the
    release's shape (v2.0's podSpecOverrides has no pod metadata: there the runtime must
    carry the annotation in an Istio namespace). `check_release` has refused what the
    release cannot carry."""
    volumes, mounts = pod_volumes(parameter, shipment, security, settings)
    container: dict[str, Any] = {"name": TRAINER_JOB}
    if mounts:
        container["volumeMounts"] = mounts
    if security.container_context:
        container["securityContext"] = security.container_context
    pod_spec: dict[str, Any] = {}
    if len(container) > 1:
        pod_spec["containers"] = [container]
    if volumes:
        pod_spec["volumes"] = volumes
    context = security_context(settings, security.pod_context)
    if context:
        pod_spec["securityContext"] = context
    pod_spec.update(placement(settings))
    target = [{"name": TRAINER_JOB}]
    if release == "v2.0":
        return {"targetJobs": target, **pod_spec} if pod_spec else {}
    pod_labels, annotations = pod_metadata(settings, labels, POD_ANNOTATIONS, LABEL_PREFIX)
    metadata = {"labels": pod_labels, "annotations": annotations}
    if release == "v2.1":
        return {"targetJobs": target, "metadata": metadata, "spec": pod_spec}
    pod_template = {"metadata": metadata, "spec": pod_spec}
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {"name": TRAINER_JOB, "template": {"spec": {"template": pod_template}}}
                    ]
                }
            }
        },
    }
