"""Fixtures: fake clusters and real `kubernetes` clients loaded from their kubeconfigs.

What the tests share besides fixtures (clients, pods, conditions, commands) is in
`fakecluster.testing`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster
from fakecluster.testing import connected


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(capacity={"cpu": "8", "memory": "32Gi"}) as c:
        yield c


@pytest.fixture
def bare_cluster() -> Iterator[FakeCluster]:
    """Pods only: no Kubeflow API, no controller but the kubelet's and the collector's."""
    with FakeCluster(kubeflow=(), operator=False) as c:
        yield c


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[SimpleNamespace]:
    with connected(cluster, tmp_path / "kubeconfig") as k:
        yield k


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[FakeCluster]:
    """One cluster for tests that only touch objects of their own names."""
    with FakeCluster(namespaces=("default", "team")) as c:
        yield c


@pytest.fixture(scope="module")
def shared_kube(
    shared_cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    with connected(shared_cluster, tmp_path_factory.mktemp("kube") / "config") as k:
        yield k
