"""Fixtures: a fake cluster and real `kubernetes` clients loaded from its kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster


def clients(kubeconfig: Path) -> SimpleNamespace:
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    return SimpleNamespace(
        api=api,
        core=kubernetes.client.CoreV1Api(api),
        custom=kubernetes.client.CustomObjectsApi(api),
        ext=kubernetes.client.ApiextensionsV1Api(api),
    )


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(capacity={"cpu": "8", "memory": "32Gi"}) as c:
        yield c


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[SimpleNamespace]:
    k = clients(cluster.write_kubeconfig(tmp_path / "kubeconfig"))
    yield k
    k.api.close()


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[FakeCluster]:
    """One cluster for tests that only touch objects of their own names."""
    with FakeCluster(namespaces=("default", "team")) as c:
        yield c


@pytest.fixture(scope="module")
def shared_kube(
    shared_cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    path = tmp_path_factory.mktemp("kube") / "config"
    k = clients(shared_cluster.write_kubeconfig(path))
    yield k
    k.api.close()
