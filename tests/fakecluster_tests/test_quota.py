"""The test cluster's ResourceQuota admission: pods past a quota are refused as the real
plugin refuses them, and what is done no longer counts."""

from __future__ import annotations

import pytest
from fakecluster import FakeCluster, StatusError
from fakecluster.testing import phase


def pod(name: str, cpu: str, command: tuple[str, ...] = ("sleep", "30")) -> dict:
    container = {"name": "c", "image": "busybox", "command": list(command)}
    container["resources"] = {"requests": {"cpu": cpu}}
    return {
        "metadata": {"name": name},
        "spec": {"containers": [container], "restartPolicy": "Never"},
    }


@pytest.fixture
def cluster(bare_cluster: FakeCluster) -> FakeCluster:
    quota = {"metadata": {"name": "q"}, "spec": {"hard": {"cpu": "3"}}}
    bare_cluster.create("resourcequotas", quota)
    return bare_cluster


def test_a_pod_past_the_quota_is_forbidden_with_the_plugins_words(cluster):
    cluster.create("pods", pod("a", "2"))
    with pytest.raises(StatusError) as refused:
        cluster.create("pods", pod("b", "1500m"))
    assert refused.value.code == 403
    assert refused.value.message == (
        'pods "b" is forbidden: exceeded quota: q, requested: cpu=1.5, used: cpu=2, limited: cpu=3'
    )
    cluster.create("pods", pod("c", "1"))  # what fits is admitted


def test_a_finished_pod_no_longer_counts(cluster):
    cluster.create("pods", pod("a", "3", command=("true",)))
    cluster.wait_for(lambda: phase(cluster, "a") == "Succeeded")
    cluster.create("pods", pod("b", "3"))


def test_a_pod_that_does_not_state_what_a_quota_tracks_is_forbidden(cluster):
    cluster.create(
        "resourcequotas", {"metadata": {"name": "m"}, "spec": {"hard": {"limits.memory": "1Gi"}}}
    )
    bare = pod("bare", "1")
    with pytest.raises(StatusError) as refused:
        cluster.create("pods", bare)
    assert refused.value.message == (
        'pods "bare" is forbidden: failed quota: m: must specify limits.memory for: c'
    )
