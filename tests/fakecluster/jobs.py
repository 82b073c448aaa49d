"""Small builders of TFJob/PyTorchJob manifests for tests (the shapes the operator expects)."""

from __future__ import annotations

from typing import Any


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
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"cleanPodPolicy": clean_pod_policy, **run_policy},
            "pytorchReplicaSpecs": specs,
        },
    }


def tfjob(
    name: str,
    replicas: dict[str, tuple[int, list[str]]],
    restart_policy: str = "Never",
    clean_pod_policy: str = "None",
    **run_policy: Any,
) -> dict[str, Any]:
    """`replicas`: {"PS": (1, cmd), "Worker": (2, cmd)} in the `tensorflow` container."""
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name},
        "spec": {
            "runPolicy": {"cleanPodPolicy": clean_pod_policy, **run_policy},
            "tfReplicaSpecs": {
                rtype: replica("tensorflow", cmd, n, restart_policy)
                for rtype, (n, cmd) in replicas.items()
            },
        },
    }
