"""TFJob / PyTorchJob manifests as plain dicts (kubeflow.org/v1), and the names in them.

Pure functions: the plan (plan.py) holds what they return, `%dryrun` shows it and
`exec_code` sends it. The shapes follow the operator's contract (docs/kubeflow-contract.md)
and are validated in tests against its CRDs and admission-webhook rules.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.pod_settings import (
    cell_env,
    cell_env_from,
    cell_volumes,
    gang_scheduled,
    placement,
    pod_metadata,
    security_context,
    volcano_policy,
)
from ciao.config import DEFAULT_RUN_AS_USER
from ciao.constants import CODE_DIR
from ciao.interpreter.pod import PodSettings
from ciao.interpreter.types import REPLICA_TYPES, Framework, Parameter, Resources
from ciao.names import label_value
from ciao.s2i.types import Shipment

API_GROUP = "kubeflow.org"
API_VERSION = "v1"
#: Kubeflow Trainer v2's API (TrainJob), and the labels its JobSet gives pods.
TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_VERSION = "v1alpha1"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
MANAGED_BY = "app.kubernetes.io/managed-by"
#: Kueue's label: the LocalQueue a job waits in.
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
LABEL_PREFIX = "ciao.kubeflow.org"
#: Restarts the operator allows before it fails a job (sent explicitly: PyTorch replicas
#: restart OnFailure, and without a limit a crashing replica would loop forever).
BACKOFF_LIMIT = 3


@dataclass(frozen=True)
class JobKind:
    kind: str
    plural: str
    replica_specs: str
    container: str
    port_name: str
    port: int
    restart_policy: str
    operator_name: str
    group: str = API_GROUP
    version: str = API_VERSION
    #: The condition type that says the job succeeded.
    succeeded: str = "Succeeded"

    @property
    def resource(self) -> str:
        """`pytorchjobs.kubeflow.org`, as Kubernetes names it in messages."""
        return f"{self.plural}.{self.group}"

    @property
    def api(self) -> str:
        """v1 (Training Operator) or v2 (Kubeflow Trainer)."""
        return "v2" if self.group == TRAINER_GROUP else "v1"

    def path(self, namespace: str, name: str = "") -> str:
        collection = f"/apis/{self.group}/{self.version}/namespaces/{namespace}/{self.plural}"
        return f"{collection}/{name}" if name else collection


KINDS: dict[Framework, JobKind] = {
    "tensorflow": JobKind(
        "TFJob",
        "tfjobs",
        "tfReplicaSpecs",
        "tensorflow",
        "tfjob-port",
        2222,
        "Never",
        "tfjob-controller",
    ),
    "pytorch": JobKind(
        "PyTorchJob",
        "pytorchjobs",
        "pytorchReplicaSpecs",
        "pytorch",
        "pytorchjob-port",
        23456,
        "OnFailure",
        "pytorchjob-controller",
    ),
}


#: A TrainJob: one JobSet of indexed Jobs whose pods run container `node` (torch runtimes).
TRAINJOB = JobKind(
    "TrainJob",
    "trainjobs",
    "",
    "node",
    "",
    29500,
    "",
    "trainjob-controller",
    group=TRAINER_GROUP,
    version=TRAINER_VERSION,
    succeeded="Complete",
)
#: Every kind of job Ciao submits, v2 first.
ALL_KINDS: tuple[JobKind, ...] = (TRAINJOB, *KINDS.values())


def framework_of(kind: JobKind) -> Framework:
    return "tensorflow" if kind is KINDS["tensorflow"] else "pytorch"


def replicas_of(kind: JobKind, job: dict[str, Any]) -> dict[str, int]:
    """`{"master": 1, "worker": 2}` (v1) or `{"node": 3}` (v2) of a job object."""
    spec = job.get("spec") or {}
    if kind is TRAINJOB:
        return {"node": int((spec.get("trainer") or {}).get("numNodes") or 1)}
    replica_specs = spec.get(kind.replica_specs) or {}
    return {t.lower(): int(r.get("replicas", 1)) for t, r in replica_specs.items()}


def torchrun(parameter: Parameter) -> list[str]:
    """torchrun, as a node runs the cell. Several processes share the container's output
    and would cut each other's lines mid-line: `--tee 3` has torchrun write each process's
    lines whole, prefixed `[default<local rank>]:` (the local backend writes the same)."""
    procs = parameter.procs_per_node or 1
    return ["torchrun", "--tee", "3"] if procs > 1 else ["torchrun"]


def ciao_labels(parameter: Parameter) -> dict[str, str]:
    """Labels that tie the job and its pods to Ciao, the kernel and the cell."""
    labels = {MANAGED_BY: "ciao"}
    for key, value in sorted(parameter.owner.items()):
        labels[f"{LABEL_PREFIX}/{key}"] = label_value(value)
    return labels


def config_map_name(job_name: str) -> str:
    """The ConfigMap that holds a job's shipped files."""
    return f"{job_name}-code"


def config_map_manifest(parameter: Parameter, shipment: Shipment, namespace: str) -> dict[str, Any]:
    """The ConfigMap with the files the S2I step shipped (code, requirements)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(parameter.generate_name),
            "namespace": namespace,
            "labels": ciao_labels(parameter),
        },
        **config_map_data(shipment.files),
    }


def config_map_data(files: Mapping[str, str | bytes]) -> dict[str, dict[str, str]]:
    """A ConfigMap's `data` (texts) and `binaryData` (bytes, base64 as the API takes them:
    pickled values, the files' archive)."""
    data = {name: value for name, value in files.items() if isinstance(value, str)}
    binary = {
        name: base64.b64encode(value).decode("ascii")
        for name, value in files.items()
        if isinstance(value, bytes)
    }
    return {"data": data, **({"binaryData": binary} if binary else {})}


#: On every pod: an Istio sidecar (Kubeflow profile namespaces inject one) keeps a pod Running
#: after its training container exits, so the job would never finish.
POD_ANNOTATIONS = {"sidecar.istio.io/inject": "false"}

#: HOME of a pod that runs as a uid the image does not know (its HOME would be `/`, not
#: writable): an emptyDir, so caches and pip's user install (site-packages is root's) work.
HOME_DIR = "/home/ciao"
HOME_VOLUME = "ciao-home"


@dataclass(frozen=True)
class PodSecurity:
    """The securityContext of a job's pods (config `kubeflow.pod_security`, `run_as_user`).

    restricted: what Pod Security `restricted` asks for: runAsNonRoot, seccomp
    RuntimeDefault, no privilege escalation, every capability dropped; run as `run_as_user`
    (also the group and fsGroup, with HOME an emptyDir), or None: as the image's own user,
    which must then be numeric and not root. Not restricted: no securityContext at all.
    """

    restricted: bool = True
    run_as_user: int | None = DEFAULT_RUN_AS_USER

    @property
    def pod_context(self) -> dict[str, Any]:
        if not self.restricted:
            return {}
        context: dict[str, Any] = {"runAsNonRoot": True}
        if self.run_as_user is not None:
            uid = self.run_as_user
            context.update(runAsUser=uid, runAsGroup=uid, fsGroup=uid)
        context["seccompProfile"] = {"type": "RuntimeDefault"}
        return context

    @property
    def container_context(self) -> dict[str, Any]:
        if not self.restricted:
            return {}
        return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

    @property
    def home(self) -> bool:
        """Whether the pods get a HOME of their own (they run as a uid Ciao chose)."""
        return self.restricted and self.run_as_user is not None

    @property
    def env(self) -> list[dict[str, str]]:
        if not self.home:
            return []
        return [
            {"name": "HOME", "value": HOME_DIR},
            {"name": "PYTHONUSERBASE", "value": f"{HOME_DIR}/.local"},
        ]

    def describe(self) -> str:
        """For %dryrun: who the pods run as."""
        if not self.restricted:
            return "pods run as the image's user, with no securityContext"
        user = f"uid {self.run_as_user}" if self.run_as_user is not None else "the image's user"
        return f"pods run as {user} (Pod Security restricted)"


#: The default: Pod Security `restricted`, as uid DEFAULT_RUN_AS_USER.
RESTRICTED = PodSecurity()


def job_manifest(
    parameter: Parameter,
    shipment: Shipment,
    namespace: str,
    security: PodSecurity = RESTRICTED,
    queue: str = "",
) -> dict[str, Any]:
    """The TFJob / PyTorchJob that runs `shipment` with the cell's roles and resources; every
    role's pods get `security`'s securityContext and the role's pod settings. A job of
    Volcano's gets its gang scheduling (and `queue`) in `runPolicy.schedulingPolicy`."""
    kind = KINDS[parameter.framework]
    labels = ciao_labels(parameter)
    specs = {
        REPLICA_TYPES[role]: {
            "replicas": spec.count,
            "restartPolicy": kind.restart_policy,
            "template": _pod_template(parameter, shipment, kind, role, spec.resources, security),
        }
        for role, spec in parameter.roles.items()
        if spec.count > 0
    }
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": parameter.effective_clean_policy,
        "backoffLimit": BACKOFF_LIMIT,
        "suspend": False,
    }
    if gang_scheduled(parameter):
        run_policy["schedulingPolicy"] = volcano_policy(parameter, queue)
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind.kind,
        "metadata": {
            "name": parameter.generate_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": dict(POD_ANNOTATIONS),  # the manifest's own: a plan may be changed
        },
        "spec": {
            "runPolicy": run_policy,
            kind.replica_specs: specs,
            # %procs=N: the operator sets PET_NPROC_PER_NODE, torchrun starts N processes
            **(
                {"nprocPerNode": str(parameter.procs_per_node)}
                if parameter.procs_per_node and kind is KINDS["pytorch"]
                else {}
            ),
        },
    }


def _pod_template(
    parameter: Parameter,
    shipment: Shipment,
    kind: JobKind,
    role: str,
    resources: Resources,
    security: PodSecurity,
) -> dict[str, Any]:
    settings = parameter.pod_of(role)
    labels, annotations = pod_metadata(
        settings, ciao_labels(parameter), POD_ANNOTATIONS, LABEL_PREFIX
    )
    container: dict[str, Any] = {
        "name": kind.container,
        "image": shipment.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "CIAO_JOB_NAME", "value": parameter.generate_name},
            {"name": "CIAO_ROLE", "value": role},
            *security.env,
            *cell_env(settings),
        ],
        "ports": [{"name": kind.port_name, "containerPort": kind.port}],
    }
    if settings.env_from:
        container["envFrom"] = cell_env_from(settings)
    if parameter.procs_per_node and shipment.script:  # torchrun starts the processes
        container["command"] = list(shipment.run_with(torchrun(parameter)))
    elif shipment.command:
        container["command"] = list(shipment.command)
    amounts = resource_amounts(resources)
    if amounts:
        container["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    if security.container_context:
        container["securityContext"] = security.container_context
    spec: dict[str, Any] = {"containers": [container]}
    volumes, mounts = pod_volumes(parameter, shipment, security, settings)
    if mounts:
        container["volumeMounts"] = mounts
        spec["volumes"] = volumes
    context = security_context(settings, security.pod_context)
    if context:
        spec["securityContext"] = context
    spec.update(placement(settings))
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def pod_volumes(
    parameter: Parameter,
    shipment: Shipment,
    security: PodSecurity,
    settings: PodSettings | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and the training container's mounts: the shipped files' ConfigMap
    at CODE_DIR, the emptyDir HOME of a pod that runs as a uid of Ciao's choosing, then
    the cell's `%volume`s and `%shm` (`settings`)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if shipment.files:
        config_map = config_map_name(parameter.generate_name)
        volumes.append({"name": "ciao-code", "configMap": {"name": config_map}})
        mounts.append({"name": "ciao-code", "mountPath": CODE_DIR})
    if security.home:
        volumes.append({"name": HOME_VOLUME, "emptyDir": {}})
        mounts.append({"name": HOME_VOLUME, "mountPath": HOME_DIR})
    if settings is not None:
        theirs, their_mounts = cell_volumes(settings, {v["name"] for v in volumes})
        volumes += theirs
        mounts += their_mounts
    return volumes, mounts


def resource_amounts(resources: Resources) -> dict[str, str]:
    """requests == limits: memory and GPUs need limits, and equal cpu avoids surprises."""
    amounts = {}
    if resources.cpu:
        amounts["cpu"] = resources.cpu
    if resources.memory:
        amounts["memory"] = resources.memory
    if resources.gpu:
        amounts["nvidia.com/gpu"] = str(resources.gpu)
    return amounts


def replica_of(pod: dict[str, Any]) -> str:
    """`worker-1` for a pod of the v1 operator (new labels, else the older ones); `node-2`
    for the pod of node rank 2 of a TrainJob (its Job's completion index)."""
    labels = pod.get("metadata", {}).get("labels") or {}
    if JOBSET_NAME_LABEL in labels:
        index = labels.get(COMPLETION_INDEX_LABEL)
        if index is None:  # <job>-node-0-<index>-<suffix>
            parts = pod.get("metadata", {}).get("name", "").rsplit("-", 2)
            index = parts[-2] if len(parts) == 3 and parts[-2].isdigit() else "0"
        return f"{labels.get(REPLICATED_JOB_LABEL, 'node')}-{index}"
    role = index = None
    for prefix in ("training.kubeflow.org/", "", "tf-", "pytorch-"):
        role = role or labels.get(f"{prefix}replica-type")
        index = index if index is not None else labels.get(f"{prefix}replica-index")
    if role is not None and index is not None:
        return f"{role.lower()}-{index}"
    name = pod.get("metadata", {}).get("name", "")
    parts = name.rsplit("-", 2)  # {job}-{type}-{index}
    return "-".join(parts[-2:]) if len(parts) == 3 else name


def pod_selectors(job_name: str, kind: JobKind) -> list[str]:
    """Label selectors for a job's pods: the operator's (≥ v1.6), then older ones; a
    TrainJob's pods carry its JobSet's name."""
    if kind is TRAINJOB:
        return [f"{JOBSET_NAME_LABEL}={job_name}"]
    return [
        f"training.kubeflow.org/job-name={job_name},"
        f"training.kubeflow.org/operator-name={kind.operator_name}",
        f"job-name={job_name}",
        f"{'tf' if kind.kind == 'TFJob' else 'pytorch'}-job-name={job_name}",
    ]
