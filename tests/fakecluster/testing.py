"""What tests of a FakeCluster share: real `kubernetes` clients of it, what an ApiException
says, an object's conditions, pods to run, commands their containers run, and pull Secrets
(docker_config_secret(name, registry)).

    with FakeCluster() as cluster, connected(cluster, tmp_path / "kubeconfig") as kube:
        kube.core.create_namespaced_pod("default", pod("hello", ["echo", "hi"]))
        cluster.wait_for(lambda: phase(cluster, "hello") == "Succeeded")
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes

from .cluster import FakeCluster
from .configdata import docker_config_secret as docker_config_secret  # re-exported
from .store import Obj

#: The group and version of the v1 training operator's jobs, for CustomObjectsApi calls.
KF = ("kubeflow.org", "v1")
#: A replica that prints its RANK.
RANK = ["python", "-u", "-c", "import os; print(os.environ['RANK'])"]
#: A container that prints `up`, then sleeps a minute.
SLEEP = ["python", "-u", "-c", "import time; print('up', flush=True); time.sleep(60)"]
#: Conditions that end a v1 job (Succeeded/Failed) or a TrainJob (Complete/Failed).
TERMINAL = ("Succeeded", "Complete", "Failed")


def clients(kubeconfig: Path) -> SimpleNamespace:
    """`api` (an ApiClient, to close) and the `core`, `custom` and `ext` APIs through it."""
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return SimpleNamespace(
        api=api,
        core=kubernetes.client.CoreV1Api(api),
        custom=kubernetes.client.CustomObjectsApi(api),
        ext=kubernetes.client.ApiextensionsV1Api(api),
    )


@contextmanager
def connected(
    cluster: FakeCluster, kubeconfig: Path, namespace: str = "default"
) -> Iterator[SimpleNamespace]:
    """`clients` of `cluster` through a kubeconfig written at `kubeconfig`, closed after."""
    kube = clients(cluster.write_kubeconfig(kubeconfig, namespace=namespace))
    try:
        yield kube
    finally:
        kube.api.close()


def status_of(exc: kubernetes.client.ApiException) -> dict[str, Any]:
    """The Status object of an error answer."""
    status: dict[str, Any] = json.loads(exc.body or "{}")
    return status


def conditions(obj: Obj) -> dict[str, Obj]:
    """An object's status conditions by type."""
    return {c["type"]: c for c in obj["status"]["conditions"]}


def finished(
    cluster: FakeCluster, resource: str, name: str, namespace: str = "default"
) -> Obj | None:
    """The job once a terminal condition is True (whichever came last), else None."""
    job = cluster.get(resource, namespace, name)
    conds = (job or {}).get("status", {}).get("conditions", [])
    done = any(c["type"] in TERMINAL and c["status"] == "True" for c in conds)
    return job if done else None


def owned_by(owner: Obj, name: str) -> Obj:
    """A ConfigMap `name` that `owner` (as the API returned it) owns, blocking its deletion
    in the foreground until the ConfigMap is gone."""
    meta = owner["metadata"]
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "blockOwnerDeletion": True,
    }
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


def pod(
    name: str,
    command: list[str],
    image: str = "python:3.11",
    container: dict[str, Any] | None = None,
    **spec: Any,
) -> Obj:
    """A pod of one container `main` (more of its fields in `container`), restartPolicy
    Never unless `spec` says otherwise."""
    main = {"name": "main", "image": image, "command": command, **(container or {})}
    spec.setdefault("restartPolicy", "Never")
    return {"metadata": {"name": name}, "spec": {"containers": [main], **spec}}


def phase(cluster: FakeCluster, name: str, namespace: str = "default") -> str:
    """A pod's phase; "" while it has none or when there is no such pod."""
    obj = cluster.get("pods", namespace, name) or {}
    return str((obj.get("status") or {}).get("phase") or "")
