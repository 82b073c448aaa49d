"""TFJob / PyTorchJob manifests as plain dicts (kubeflow.org/v1), and the names in them.

Pure functions: what `%dryrun` shows is exactly what `exec_code` sends. The shapes follow
the operator's contract (shared/reference/kubeflow-contract.md) and are validated in tests
against its CRDs and admission-webhook rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ciao.interpreter.types import REPLICA_TYPES, Parameter, Resources

API_GROUP = "kubeflow.org"
API_VERSION = "v1"
MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PREFIX = "ciao.kubeflow.org"
#: Where the ConfigMap with the cell's code is mounted in every replica.
CODE_MOUNT_PATH = "/opt/ciao"
CODE_FILE = "code.py"
#: The cell's `%requirements`, one per line, beside the code in the same ConfigMap.
REQUIREMENTS_FILE = "requirements.txt"
#: With requirements, the container installs them and then runs the code. A fixed script:
#: the requirements reach pip only through the file, never through the command line.
INSTALL_AND_RUN = (
    f"python -m pip install --no-cache-dir --disable-pip-version-check "
    f"-r {CODE_MOUNT_PATH}/{REQUIREMENTS_FILE} "
    f"&& exec python -u {CODE_MOUNT_PATH}/{CODE_FILE}"
)
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

    @property
    def resource(self) -> str:
        """`pytorchjobs.kubeflow.org`, as Kubernetes names it in messages."""
        return f"{self.plural}.{API_GROUP}"


KINDS: dict[str, JobKind] = {
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


def ciao_labels(parameter: Parameter) -> dict[str, str]:
    """Labels that tie the job and its pods to Ciao, the kernel and the cell."""
    labels = {MANAGED_BY: "ciao"}
    for key, value in sorted(parameter.owner.items()):
        labels[f"{LABEL_PREFIX}/{key}"] = _label_value(value)
    return labels


def job_manifest(parameter: Parameter, namespace: str) -> dict[str, Any]:
    """The TFJob / PyTorchJob for a Parameter whose name and image are already set."""
    kind = KINDS[parameter.framework]
    labels = ciao_labels(parameter)
    annotations = {"sidecar.istio.io/inject": "false"}
    specs = {
        REPLICA_TYPES[role]: {
            "replicas": spec.count,
            "restartPolicy": kind.restart_policy,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": _pod_spec(parameter, kind, role, spec.resources),
            },
        }
        for role, spec in parameter.roles.items()
        if spec.count > 0
    }
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind.kind,
        "metadata": {
            "name": parameter.generate_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "runPolicy": {
                "cleanPodPolicy": parameter.effective_clean_policy,
                "backoffLimit": BACKOFF_LIMIT,
                "suspend": False,
            },
            kind.replica_specs: specs,
        },
    }


def _pod_spec(parameter: Parameter, kind: JobKind, role: str, resources: Resources) -> dict:
    container: dict[str, Any] = {
        "name": kind.container,
        "image": parameter.image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "CIAO_JOB_NAME", "value": parameter.generate_name},
            {"name": "CIAO_ROLE", "value": role},
        ],
        "ports": [{"name": kind.port_name, "containerPort": kind.port}],
    }
    if parameter.command:
        container["command"] = list(parameter.command)
    amounts = resource_amounts(resources)
    if amounts:
        container["resources"] = {"requests": dict(amounts), "limits": dict(amounts)}
    spec: dict[str, Any] = {"containers": [container]}
    if parameter.code_config_map:
        container["volumeMounts"] = [{"name": "ciao-code", "mountPath": CODE_MOUNT_PATH}]
        spec["volumes"] = [{"name": "ciao-code", "configMap": {"name": parameter.code_config_map}}]
    return spec


def code_command(with_requirements: bool) -> list[str]:
    """The container command that runs the ConfigMap's code (`python -u`), after a
    `pip install -r requirements.txt` when the cell has `%requirements`."""
    if with_requirements:
        return ["sh", "-c", INSTALL_AND_RUN]
    return ["python", "-u", f"{CODE_MOUNT_PATH}/{CODE_FILE}"]


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
    """`worker-1` for a pod of the operator (new labels, else the older ones)."""
    labels = pod.get("metadata", {}).get("labels") or {}
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
    """Label selectors for a job's pods: the operator's (≥ v1.6), then older ones."""
    return [
        f"training.kubeflow.org/job-name={job_name},"
        f"training.kubeflow.org/operator-name={kind.operator_name}",
        f"job-name={job_name}",
        f"{'tf' if kind.kind == 'TFJob' else 'pytorch'}-job-name={job_name}",
    ]


def _label_value(value: str) -> str:
    """A valid label value: ≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in str(value))[:63]
    return cleaned.strip("._-")
