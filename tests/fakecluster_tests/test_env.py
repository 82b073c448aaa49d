"""Container environment from Secrets and ConfigMaps, as the kubelet resolves it: values
reach the process, a missing source or key is CreateContainerConfigError in the kubelet's
words until it exists, `optional` sources are skipped."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster, StatusError
from fakecluster.testing import connected, phase, pod

pytestmark = pytest.mark.timeout(60)

PRINT_ENV = [
    "python",
    "-c",
    "import os; print(*(f'{k}={os.environ.get(k)}' for k in os.environ['SHOW'].split()))",
]


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(kubeflow=(), operator=False) as c:
        yield c


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[SimpleNamespace]:
    with connected(cluster, tmp_path / "config") as k:
        yield k


def secret(name: str, **data: str) -> dict:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": name}, "data": encoded}


def printer(name: str, show: str, env: list[dict], env_from: list[dict] | None = None) -> dict:
    container = {"env": [{"name": "SHOW", "value": show}, *env]}
    if env_from:
        container["envFrom"] = env_from
    return pod(name, PRINT_ENV, container=container)


def secret_key(var: str, name: str, key: str, optional: bool | None = None) -> dict:
    ref: dict = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"name": var, "valueFrom": {"secretKeyRef": ref}}


def waiting(cluster: FakeCluster, name: str) -> dict:
    def state() -> dict | None:
        statuses = cluster.get("pods", "default", name)["status"].get("containerStatuses") or []
        current = statuses[0]["state"].get("waiting") if statuses else None
        return current if (current or {}).get("reason") == "CreateContainerConfigError" else None

    return cluster.wait_for(state, 10, f"{name} to wait for its config")


def test_secret_and_configmap_values_reach_the_process(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_secret("default", secret("hf", token="hf_abc"))
    kube.core.create_namespaced_secret("default", secret("s3", AWS_KEY="AK", AWS_SECRET="SK"))
    kube.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "cfg"}, "data": {"mode": "fast"}}
    )
    body = printer(
        "p",
        "TOKEN AWS_KEY AWS_SECRET CFG_mode MODE",
        [
            secret_key("TOKEN", "hf", "token"),
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        ],
        [{"secretRef": {"name": "s3"}}, {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
    )
    kube.core.create_namespaced_pod("default", body)
    cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded", 20)
    assert cluster.logs("default", "p") == (
        "TOKEN=hf_abc AWS_KEY=AK AWS_SECRET=SK CFG_mode=fast MODE=fast\n"
    )


def test_a_missing_secret_waits_in_create_container_config_error_until_it_exists(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_pod(
        "default", printer("p", "TOKEN", [secret_key("TOKEN", "hf", "token")])
    )
    assert waiting(cluster, "p")["message"] == 'secret "hf" not found'
    failed = cluster.wait_for(lambda: cluster.events(involved="p", reason="Failed"), 10)[0]
    assert (failed["type"], failed["message"]) == ("Warning", 'Error: secret "hf" not found')
    assert failed["involvedObject"]["fieldPath"] == "spec.containers{main}"
    assert phase(cluster, "p") == "Pending"
    kube.core.create_namespaced_secret("default", secret("hf", token="hf_abc"))
    cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded", 20)  # the kubelet retried
    assert cluster.logs("default", "p") == "TOKEN=hf_abc\n"


def test_a_missing_key_names_the_key_and_the_secret(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_secret("default", secret("hf", user="me"))
    kube.core.create_namespaced_pod(
        "default", printer("p", "TOKEN", [secret_key("TOKEN", "hf", "token")])
    )
    assert waiting(cluster, "p")["message"] == "couldn't find key token in Secret default/hf"
    assert cluster.events(involved="p", reason="Failed")[0]["message"] == (
        "Error: couldn't find key token in Secret default/hf"
    )


def test_a_missing_configmap_of_env_from(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.core.create_namespaced_pod(
        "default", printer("p", "X", [], [{"configMapRef": {"name": "cfg"}}])
    )
    assert waiting(cluster, "p")["message"] == 'configmap "cfg" not found'


def test_optional_sources_may_be_missing(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.core.create_namespaced_secret("default", secret("hf", user="me"))
    body = printer(
        "p",
        "TOKEN OTHER",
        [
            secret_key("TOKEN", "hf", "token", optional=True),
            secret_key("OTHER", "absent", "x", optional=True),
        ],
        [{"secretRef": {"name": "absent", "optional": True}}],
    )
    kube.core.create_namespaced_pod("default", body)
    cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded", 20)
    assert cluster.logs("default", "p") == "TOKEN=None OTHER=None\n"


def test_a_secret_key_ref_needs_its_name_and_key(cluster: FakeCluster) -> None:
    body = printer("p", "", [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "hf"}}}])
    with pytest.raises(StatusError) as refused:  # (the typed client would not send it)
        cluster.create("pods", body)
    assert refused.value.code == 422
    assert refused.value.message == (
        'Pod "p" is invalid: spec.containers[0].env[1].valueFrom.secretKeyRef.key: Required value'
    )
