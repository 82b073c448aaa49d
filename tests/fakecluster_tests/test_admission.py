"""The ServiceAccount and Priority admission plugins and the objects they read: a pod's
service account and priority class must exist, and controllers record the refusal."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster, StatusError
from fakecluster.jobs import pytorchjob
from fakecluster.testing import KF, connected, pod, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(namespaces=("default", "team")) as c:
        yield c


@pytest.fixture(scope="module")
def kube(
    cluster: FakeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    with connected(cluster, tmp_path_factory.mktemp("kube") / "config") as k:
        yield k


def batch_job(name: str, **pod_spec: object) -> dict:
    template = {"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}
    template["spec"].update({"restartPolicy": "Never", **pod_spec})
    return {"metadata": {"name": name}, "spec": {"template": template}}


def test_every_namespace_has_the_default_service_account(kube: SimpleNamespace) -> None:
    kube.core.create_namespace({"metadata": {"name": "fresh"}})
    for namespace in ("default", "team", "fresh"):
        names = [
            a.metadata.name for a in kube.core.list_namespaced_service_account(namespace).items
        ]
        assert names == ["default"]
    kube.core.create_namespaced_pod("fresh", pod("p", ["true"]))
    assert kube.core.read_namespaced_pod("p", "fresh").spec.service_account_name == "default"


def test_a_pod_naming_a_missing_service_account_is_forbidden(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_pod("default", pod("x", ["true"], serviceAccountName="trainer"))
    assert refused.value.status == 403
    assert status_of(refused.value)["message"] == (
        'pods "x" is forbidden: error looking up service account default/trainer: '
        'serviceaccount "trainer" not found'
    )
    batch = kubernetes.client.BatchV1Api(kube.api)
    batch.create_namespaced_job("default", batch_job("train", serviceAccountName="trainer"))
    event = cluster.wait_for(lambda: cluster.events(involved="train", reason="FailedCreate"), 10)
    assert event[0]["message"] == (  # generated names are refused by their prefix
        'Error creating: pods "train-" is forbidden: error looking up service account '
        'default/trainer: serviceaccount "trainer" not found'
    )
    kube.core.create_namespaced_service_account("default", {"metadata": {"name": "trainer"}})
    made = cluster.wait_for(lambda: cluster.list("pods", "default", "job-name=train"), 20)
    assert made[0]["spec"]["serviceAccountName"] == "trainer"


def test_a_pod_without_pull_secrets_gets_its_accounts(kube: SimpleNamespace) -> None:
    kube.core.create_namespaced_service_account(
        "team", {"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "regcred"}]}
    )
    kube.core.create_namespaced_pod("team", pod("a", ["true"], serviceAccountName="puller"))
    own = [{"name": "mine"}]
    kube.core.create_namespaced_pod(
        "team", pod("b", ["true"], serviceAccountName="puller", imagePullSecrets=own)
    )
    secrets = {
        name: [s.name for s in kube.core.read_namespaced_pod(name, "team").spec.image_pull_secrets]
        for name in ("a", "b")
    }
    assert secrets == {"a": ["regcred"], "b": ["mine"]}


def test_priority_classes_resolve_to_a_priority(kube: SimpleNamespace) -> None:
    scheduling = kubernetes.client.SchedulingV1Api(kube.api)
    builtin = {c.metadata.name: c.value for c in scheduling.list_priority_class().items}
    assert builtin == {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
    scheduling.create_priority_class({"metadata": {"name": "high"}, "value": 1000})
    kube.core.create_namespaced_pod("default", pod("prio", ["true"], priorityClassName="high"))
    made = kube.core.read_namespaced_pod("prio", "default")
    assert (made.spec.priority, made.spec.preemption_policy) == (1000, "PreemptLowerPriority")
    kube.core.create_namespaced_pod("default", pod("plain", ["true"]))
    plain = kube.core.read_namespaced_pod("plain", "default")
    assert (plain.spec.priority, plain.spec.priority_class_name) == (0, None)


def test_an_unknown_priority_class_is_forbidden(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_pod("team", pod("y", ["true"], priorityClassName="urgent"))
    assert status_of(refused.value)["message"] == (
        'pods "y" is forbidden: no PriorityClass with name urgent was found'
    )
    job = pytorchjob("ranked", ["true"], workers=0)
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["priorityClassName"] = "urgent"
    kube.custom.create_namespaced_custom_object(*KF, "team", "pytorchjobs", job)
    event = cluster.wait_for(
        lambda: cluster.events("team", involved="ranked", reason="FailedCreatePod"), 10
    )
    assert event[0]["message"] == (
        'Error creating: pods "ranked-master-0" is forbidden: no PriorityClass with name urgent '
        "was found"
    )


def test_priority_class_rules(kube: SimpleNamespace) -> None:
    scheduling = kubernetes.client.SchedulingV1Api(kube.api)
    with pytest.raises(ApiException) as refused:
        scheduling.create_priority_class({"metadata": {"name": "huge"}, "value": 2000000000})
    assert status_of(refused.value)["message"] == (
        'PriorityClass.scheduling.k8s.io "huge" is invalid: value: Forbidden: maximum allowed '
        "value of a user defined priority is 1000000000"
    )
    scheduling.create_priority_class(
        {"metadata": {"name": "usual"}, "value": 5, "globalDefault": True}
    )
    with pytest.raises(ApiException) as refused:
        scheduling.create_priority_class(
            {"metadata": {"name": "another"}, "value": 6, "globalDefault": True}
        )
    assert refused.value.status == 403
    assert status_of(refused.value)["message"] == (
        'priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass usual is '
        "already marked as default. Only one default can exist"
    )
    kube.core.create_namespaced_pod("team", pod("defaulted", ["true"]))
    made = kube.core.read_namespaced_pod("defaulted", "team")
    assert (made.spec.priority_class_name, made.spec.priority) == ("usual", 5)
    scheduling.delete_priority_class("usual")


def test_a_preset_priority_must_match_its_class(cluster: FakeCluster) -> None:
    with pytest.raises(StatusError) as refused:
        cluster.create("pods", pod("z", ["true"], priority=7))
    assert refused.value.message == (
        'pods "z" is forbidden: the integer value of priority (7) must not be provided in pod '
        "spec; priority admission controller computed 0 from the given PriorityClass name"
    )
