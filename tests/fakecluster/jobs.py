"""Small builders of manifests for tests: TFJob/PyTorchJob (v1), TrainJob and runtimes (v2),
batch Jobs and Katib Experiments."""

from __future__ import annotations

from typing import Any

from .trainer import torch_runtime as torch_runtime  # re-exported for tests


def container(name: str, command: list[str], image: str = "python:3.11", **extra: Any) -> dict:
    return {"name": name, "image": image, "command": command, **extra}


def replica(
    name: str,
    command: list[str],
    replicas: int = 1,
    restart_policy: str | None = None,
    **container_extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "template": {"spec": {"containers": [container(name, command, **container_extra)]}},
    }
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return spec


def pytorchjob(
    name: str,
    command: list[str],
    workers: int = 2,
    restart_policy: str = "OnFailure",
    clean_pod_policy: str = "None",
    worker_command: list[str] | None = None,
    **run_policy: Any,
) -> dict[str, Any]:
    """Master + `workers` Workers running `command` in the `pytorch` container."""
    specs = {"Master": replica("pytorch", command, 1, restart_policy)}
    if workers:
        specs["Worker"] = replica("pytorch", worker_command or command, workers, restart_policy)
    return _v1_job("PyTorchJob", name, clean_pod_policy, run_policy, pytorchReplicaSpecs=specs)


def tfjob(
    name: str,
    replicas: dict[str, tuple[int, list[str]]],
    restart_policy: str = "Never",
    clean_pod_policy: str = "None",
    **run_policy: Any,
) -> dict[str, Any]:
    """`replicas`: {"PS": (1, cmd), "Worker": (2, cmd)} in the `tensorflow` container."""
    specs = {
        rtype: replica("tensorflow", cmd, n, restart_policy) for rtype, (n, cmd) in replicas.items()
    }
    return _v1_job("TFJob", name, clean_pod_policy, run_policy, tfReplicaSpecs=specs)


def _v1_job(
    kind: str, name: str, clean_pod_policy: str, run_policy: dict[str, Any], **specs: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"runPolicy": {"cleanPodPolicy": clean_pod_policy, **run_policy}, **specs},
    }


def trainjob(
    name: str,
    command: list[str] | None = None,
    num_nodes: int | None = None,
    runtime: str = "torch-distributed",
    runtime_kind: str | None = None,
    image: str | None = None,
    env: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    num_proc_per_node: int | str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A TrainJob (trainer.kubeflow.org/v1alpha1) against `runtime`; extra spec keys as given
    (e.g. podTemplateOverrides=[...], runtimePatches=[...], suspend=True)."""
    trainer: dict[str, Any] = {}
    if image is not None:
        trainer["image"] = image
    if command is not None:
        trainer["command"] = list(command)
    if num_nodes is not None:
        trainer["numNodes"] = num_nodes
    if env:
        trainer["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if resources is not None:
        trainer["resourcesPerNode"] = resources
    if num_proc_per_node is not None:
        trainer["numProcPerNode"] = num_proc_per_node
    ref: dict[str, Any] = {"name": runtime}
    if runtime_kind:
        ref["kind"] = runtime_kind
    body: dict[str, Any] = {"runtimeRef": ref, **spec}
    if trainer:
        body["trainer"] = trainer
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": body,
    }


def pod_override(
    release: str,
    pod_spec: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    job: str = "node",
    manager: str = "ciao.dev/kernel",
) -> dict[str, Any]:
    """The release's pod-override spec field carrying `pod_spec` (and pod `metadata`, which
    v2.0 cannot carry) for the `job` pods: {field name: [one override]}."""
    if release == "v2.0":
        if metadata:
            raise ValueError("podSpecOverrides (v2.0) carry no pod metadata")
        return {"podSpecOverrides": [{"targetJobs": [{"name": job}], **pod_spec}]}
    pod: dict[str, Any] = {"spec": pod_spec}
    if metadata:
        pod["metadata"] = metadata
    if release == "v2.1":
        return {"podTemplateOverrides": [{"targetJobs": [{"name": job}], **pod}]}
    return {
        "runtimePatches": [
            {
                "manager": manager,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {"name": job, "template": {"spec": {"template": pod}}}
                            ]
                        }
                    }
                },
            }
        ]
    }


def configmap_mount(
    release: str,
    configmap: str,
    mount_path: str,
    volume: str = "code",
    container: str = "node",
    job: str = "node",
    manager: str = "ciao.dev/kernel",
) -> dict[str, Any]:
    """The pod-override spec field that mounts a ConfigMap into `container` of the `job`
    pods, in the shape of the given trainer release: {field name: [one override]}."""
    volumes = [{"name": volume, "configMap": {"name": configmap}}]
    containers = [{"name": container, "volumeMounts": [{"name": volume, "mountPath": mount_path}]}]
    return pod_override(release, {"volumes": volumes, "containers": containers}, None, job, manager)


def batch_job(command: list[str], container: str = "training", **extra: Any) -> dict[str, Any]:
    """A batch/v1 Job (no name: a trial template), one pod, restartPolicy Never, no retry."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": container, "image": "python:3.11", "command": command, **extra}
                    ],
                }
            },
        },
    }


def experiment(
    name: str,
    trial_spec: dict[str, Any],
    parameters: dict[str, tuple[str, dict[str, Any]]],
    primary_container: str,
    metric: str = "loss",
    objective: str = "minimize",
    algorithm: str = "random",
    seed: int | None = None,
    max_trials: int = 3,
    parallel: int = 3,
    collector: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Katib Experiment (kubeflow.org/v1beta1) over `parameters` {name: (parameterType,
    feasibleSpace)}, each a trialParameter of its own name the trial spec refers to as
    `${trialParameters.<name>}`; `collector`: the metricsCollectorSpec (default: none, so
    StdOut); extra spec keys as given (goal in objective via spec, maxFailedTrialCount...)."""
    settings = [{"name": "random_state", "value": str(seed)}] if seed is not None else []
    body: dict[str, Any] = {
        "objective": {"type": objective, "objectiveMetricName": metric},
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
        "parameters": [
            {"name": p, "parameterType": kind, "feasibleSpace": space}
            for p, (kind, space) in parameters.items()
        ],
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel,
        "trialTemplate": {
            "primaryContainerName": primary_container,
            "trialParameters": [{"name": p, "reference": p} for p in parameters],
            "trialSpec": trial_spec,
        },
        **spec,
    }
    if collector is not None:
        body["metricsCollectorSpec"] = collector
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": body,
    }
