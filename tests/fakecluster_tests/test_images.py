"""Image pull secrets: the kubelet names the ones that do not exist, and a private image is
pulled only with the pull Secret that grants it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster
from fakecluster.testing import connected, docker_config_secret, phase, pod, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)

PRIVATE = "registry.example.com/team/trainer:1.0"


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(kubeflow=(), operator=False, private_images={PRIVATE: "regcred"}) as c:
        yield c


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[SimpleNamespace]:
    with connected(cluster, tmp_path / "config") as k:
        yield k


def waiting_reason(cluster: FakeCluster, name: str) -> str:
    statuses = cluster.get("pods", "default", name)["status"].get("containerStatuses") or []
    return str(((statuses[0]["state"].get("waiting") or {}) if statuses else {}).get("reason"))


def test_a_missing_pull_secret_is_named_and_a_public_image_still_runs(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    secrets = [{"name": "regcred"}, {"name": "other"}]
    kube.core.create_namespaced_pod("default", pod("p", ["true"], imagePullSecrets=secrets))
    cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded", 20)
    event = cluster.events(involved="p", reason="FailedToRetrieveImagePullSecret")[0]
    assert (event["type"], event["message"]) == (
        "Warning",
        "Unable to retrieve some image pull secrets (regcred, other); attempting to pull the "
        "image may not succeed.",
    )
    assert event["source"] == {"component": "kubelet", "host": "fake-node"}


def test_a_private_image_without_its_secret_cannot_be_pulled(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_pod(
        "default", pod("p", ["true"], image=PRIVATE, imagePullSecrets=[{"name": "regcred"}])
    )
    cluster.wait_for(lambda: waiting_reason(cluster, "p") == "ImagePullBackOff", 10)
    ref = "registry.example.com/team/trainer:1.0"
    denied = (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": failed to '
        f'resolve reference "{ref}": pull access denied, repository does not exist or may '
        "require authorization: unauthorized: authentication required"
    )
    failed = [e["message"] for e in cluster.events(involved="p", reason="Failed")]
    assert f'Failed to pull image "{PRIVATE}": {denied}' in failed
    assert "Error: ErrImagePull" in failed and "Error: ImagePullBackOff" in failed
    # an Opaque Secret of that name gives the kubelet no credentials
    opaque = {"metadata": {"name": "regcred"}, "data": {"x": base64.b64encode(b"y").decode()}}
    kube.core.create_namespaced_secret("default", opaque)
    cluster.wait_for(lambda: waiting_reason(cluster, "p") == "ErrImagePull", 10)
    kube.core.delete_namespaced_secret("regcred", "default")
    kube.core.create_namespaced_secret(
        "default", docker_config_secret("regcred", "registry.example.com")
    )
    cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded", 20)
    pulled = [e["message"] for e in cluster.events(involved="p", reason="Pulled")]
    assert pulled[-1].startswith(f'Successfully pulled image "{PRIVATE}" in ')


def test_a_pull_secret_must_hold_a_docker_config(kube: SimpleNamespace) -> None:
    broken = {"metadata": {"name": "broken"}, "type": "kubernetes.io/dockerconfigjson"}
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_secret("default", broken)
    assert status_of(refused.value)["message"] == (
        'Secret "broken" is invalid: data[.dockerconfigjson]: Required value'
    )
