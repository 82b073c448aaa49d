"""The test cluster's nodes and scheduler: labels, taints, node affinity, resources,
schedulerName, scheduling gates and preemption, with v1.31's FailedScheduling words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster
from fakecluster.testing import SLEEP, connected, phase, pod

pytestmark = pytest.mark.timeout(60)

GPU = "nvidia.com/gpu"
H100 = "NVIDIA-H100-80GB-HBM3"
GPU_TAINT = {"key": GPU, "effect": "NoSchedule"}
NODES = [
    {"name": "cpu-1", "labels": {"pool": "cpu"}},
    {
        "name": "gpu-1",
        "labels": {"nvidia.com/gpu.product": H100},
        "taints": [GPU_TAINT],
        "capacity": {GPU: "8"},
    },
    {
        "name": "gpu-2",
        "labels": {"nvidia.com/gpu.product": H100},
        "taints": [GPU_TAINT],
        "capacity": {GPU: "8"},
    },
]
NOT_HELPFUL_3 = "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."


@pytest.fixture(scope="module")
def pool() -> Iterator[FakeCluster]:
    with FakeCluster(kubeflow=(), operator=False, nodes=NODES) as c:
        yield c


@pytest.fixture(scope="module")
def kube(pool: FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with connected(pool, tmp_path_factory.mktemp("kube") / "config") as k:
        yield k


def failed_scheduling(cluster: FakeCluster, name: str) -> str:
    events = cluster.wait_for(
        lambda: cluster.events(involved=name, reason="FailedScheduling"), 10, f"{name} refused"
    )
    return str(events[-1]["message"])


def test_the_default_cluster_is_one_untainted_node(tmp_path: Path) -> None:
    with (
        FakeCluster(kubeflow=(), operator=False) as cluster,
        connected(cluster, tmp_path / "config") as k,
    ):
        nodes = k.core.list_node().items
        assert [n.metadata.name for n in nodes] == ["fake-node"]
        assert nodes[0].spec.taints is None
        assert nodes[0].status.allocatable == {
            "cpu": "8",
            "memory": "32Gi",
            "ephemeral-storage": "100Gi",
            GPU: "0",
            "pods": "110",
        }
        k.core.create_namespaced_pod("default", pod("p", ["true"]))
        cluster.wait_for(lambda: phase(cluster, "p") == "Succeeded")
        done = k.core.read_namespaced_pod("p", "default")
        assert (done.spec.node_name, done.status.host_ip) == ("fake-node", "127.0.0.1")


def test_nodes_are_served_with_their_labels_taints_capacity_and_address(
    kube: SimpleNamespace,
) -> None:
    nodes = {n.metadata.name: n for n in kube.core.list_node().items}
    assert list(nodes) == ["cpu-1", "gpu-1", "gpu-2"]
    gpu = nodes["gpu-1"]
    assert gpu.metadata.labels["nvidia.com/gpu.product"] == H100
    assert gpu.metadata.labels["kubernetes.io/hostname"] == "gpu-1"
    assert [(t.key, t.value, t.effect) for t in gpu.spec.taints] == [(GPU, None, "NoSchedule")]
    assert gpu.status.allocatable[GPU] == "8"
    assert [a.address for a in gpu.status.addresses] == ["127.0.0.2", "gpu-1"]


def test_an_untolerated_taint_and_a_selector_name_every_node(
    pool: FakeCluster, kube: SimpleNamespace
) -> None:
    selected = pod("selected", ["true"], nodeSelector={"nvidia.com/gpu.product": H100})
    kube.core.create_namespaced_pod("default", selected)
    assert failed_scheduling(pool, "selected") == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        f"2 node(s) had untolerated taint {{{GPU}: }}. {NOT_HELPFUL_3}"
    )
    refused = kube.core.read_namespaced_pod("selected", "default")
    scheduled = refused.status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )


def test_a_tolerating_selected_pod_runs_on_a_gpu_node_as_a_local_process(
    pool: FakeCluster, kube: SimpleNamespace
) -> None:
    tolerating = pod(
        "tolerating",
        ["python", "-c", "import os; print(os.environ['NODE'], os.environ['HOST_IP'])"],
        nodeSelector={"nvidia.com/gpu.product": H100},
        tolerations=[{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        container={
            "env": [
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            ],
            "resources": {"limits": {GPU: "1"}},
        },
    )
    kube.core.create_namespaced_pod("default", tolerating)
    pool.wait_for(lambda: phase(pool, "tolerating") == "Succeeded")
    done = kube.core.read_namespaced_pod("tolerating", "default")
    assert done.spec.node_name == "gpu-1"  # both fit equally: the first listed
    assert done.status.host_ip == "127.0.0.2"
    assert pool.logs("default", "tolerating") == "gpu-1 127.0.0.2\n"
    scheduled = pool.events(involved="tolerating", reason="Scheduled")[0]
    assert scheduled["message"] == "Successfully assigned default/tolerating to gpu-1"


def test_required_node_affinity_operators(pool: FakeCluster, kube: SimpleNamespace) -> None:
    def affinity(*expressions: dict) -> dict:
        terms = [{"matchExpressions": list(expressions)}]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }

    everywhere = [{"operator": "Exists"}]
    cases = {
        "in-cpu": affinity({"key": "pool", "operator": "In", "values": ["cpu"]}),
        "not-in": affinity({"key": "pool", "operator": "NotIn", "values": ["cpu"]}),
        "exists": affinity({"key": "pool", "operator": "Exists"}),
        "absent": affinity({"key": "pool", "operator": "DoesNotExist"}),
        "by-name": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["gpu-2"]}
                            ]
                        }
                    ]
                }
            }
        },
    }
    for name, rule in cases.items():
        kube.core.create_namespaced_pod(
            "default", pod(name, ["true"], affinity=rule, tolerations=everywhere)
        )
    for name in cases:
        pool.wait_for(lambda name=name: phase(pool, name) == "Succeeded", 20, name)
    placed = {name: pool.get("pods", "default", name)["spec"]["nodeName"] for name in cases}
    assert placed == {
        "in-cpu": "cpu-1",
        "not-in": "gpu-1",
        "exists": "cpu-1",
        "absent": "gpu-1",
        "by-name": "gpu-2",
    }
    kube.core.create_namespaced_pod(
        "default",
        pod(
            "nowhere",
            ["true"],
            affinity=affinity({"key": "pool", "operator": "In", "values": ["tpu"]}),
            tolerations=everywhere,
        ),
    )
    assert failed_scheduling(pool, "nowhere") == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        f"{NOT_HELPFUL_3}"
    )


def test_prefer_no_schedule_only_steers(tmp_path: Path) -> None:
    nodes = [
        {
            "name": "spot",
            "taints": [{"key": "spot", "value": "true", "effect": "PreferNoSchedule"}],
        },
        {"name": "plain"},
    ]
    with FakeCluster(kubeflow=(), operator=False, nodes=nodes) as cluster:
        cluster.create("pods", pod("steered", ["true"]))
        cluster.wait_for(lambda: phase(cluster, "steered") == "Succeeded")
        assert cluster.get("pods", "default", "steered")["spec"]["nodeName"] == "plain"
        only_spot = {"nodeSelector": {"kubernetes.io/hostname": "spot"}}
        cluster.create("pods", pod("allowed", ["true"], **only_spot))
        cluster.wait_for(lambda: phase(cluster, "allowed") == "Succeeded")


def test_resources_are_counted_per_node(pool: FakeCluster, kube: SimpleNamespace) -> None:
    greedy = pod(
        "greedy",
        ["true"],
        tolerations=[{"operator": "Exists"}],
        container={"resources": {"limits": {GPU: "9"}}},
    )
    kube.core.create_namespaced_pod("default", greedy)
    assert failed_scheduling(pool, "greedy") == (
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
        "available: 3 No preemption victims found for incoming pod."
    )


def test_a_pod_for_another_scheduler_is_left_pending_without_a_word(
    pool: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_pod("default", pod("volcanic", ["true"], schedulerName="volcano"))
    kube.core.create_namespaced_pod("default", pod("after", ["true"]))
    pool.wait_for(lambda: phase(pool, "after") == "Succeeded")  # the scheduler did pass by
    left = kube.core.read_namespaced_pod("volcanic", "default")
    assert left.spec.node_name is None and left.status.phase == "Pending"
    assert not left.status.conditions
    assert pool.events(involved="volcanic") == []


def test_scheduling_gates_hold_a_pod_until_removed(
    pool: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_pod(
        "default", pod("gated", ["true"], schedulingGates=[{"name": "example.com/quota"}])
    )
    held = pool.wait_for(
        lambda: kube.core.read_namespaced_pod("gated", "default").status.conditions, 10
    )
    assert (held[0].reason, held[0].message) == (
        "SchedulingGated",
        "Scheduling is blocked due to non-empty scheduling gates",
    )
    assert pool.events(involved="gated") == []
    kube.core.patch_namespaced_pod("gated", "default", {"spec": {"schedulingGates": None}})
    pool.wait_for(lambda: phase(pool, "gated") == "Succeeded")


def test_a_higher_priority_pod_preempts_a_lower_one(tmp_path: Path) -> None:
    one_gpu = [{"name": "box", "capacity": {GPU: "1"}}]
    gpu = {"resources": {"limits": {GPU: "1"}}}
    with (
        FakeCluster(kubeflow=(), operator=False, nodes=one_gpu) as cluster,
        connected(cluster, tmp_path / "config") as k,
    ):
        for name, value, policy in (
            ("low", 10, "PreemptLowerPriority"),
            ("high", 1000, "PreemptLowerPriority"),
            ("high-polite", 1000, "Never"),
        ):
            cluster.create(
                "priorityclasses",
                {"metadata": {"name": name}, "value": value, "preemptionPolicy": policy},
            )
        k.core.create_namespaced_pod(
            "default", pod("victim", SLEEP, container=gpu, priorityClassName="low")
        )
        cluster.wait_for(lambda: phase(cluster, "victim") == "Running")
        k.core.create_namespaced_pod(
            "default",
            pod("polite", ["true"], container=gpu, priorityClassName="high-polite"),
        )
        assert failed_scheduling(cluster, "polite") == (
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: not eligible "
            "due to preemptionPolicy=Never."
        )
        k.core.delete_namespaced_pod("polite", "default")
        k.core.create_namespaced_pod(
            "default", pod("urgent", ["true"], container=gpu, priorityClassName="high")
        )
        urgent = cluster.get("pods", "default", "urgent")
        preempted = cluster.wait_for(
            lambda: cluster.events(involved="victim", reason="Preempted"), 10
        )[0]
        assert preempted["message"] == f"Preempted by pod {urgent['metadata']['uid']} on node box"
        assert preempted["source"]["component"] == "default-scheduler"
        cluster.wait_for(lambda: cluster.get("pods", "default", "victim") is None, 20)
        cluster.wait_for(lambda: phase(cluster, "urgent") == "Succeeded", 20)
        assert cluster.get("pods", "default", "urgent")["spec"]["nodeName"] == "box"
        refusals = [
            e["message"] for e in cluster.events(involved="urgent", reason="FailedScheduling")
        ]
        assert refusals[0] == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."


def test_the_victim_is_marked_before_it_goes(tmp_path: Path) -> None:
    one_gpu = [{"name": "box", "capacity": {GPU: "1"}}]
    gpu = {"resources": {"limits": {GPU: "1"}}}
    with FakeCluster(kubeflow=(), operator=False, nodes=one_gpu, grace_cap=30) as cluster:
        cluster.create("priorityclasses", {"metadata": {"name": "high"}, "value": 1000})
        stubborn = [
            "python",
            "-u",
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up');"
            " time.sleep(60)",
        ]
        cluster.create(
            "pods", pod("victim", stubborn, container=gpu, terminationGracePeriodSeconds=5)
        )
        # Running only says the container started: its program ignores SIGTERM once it has
        # said so, and until then the preemption's SIGTERM ends it at once, its marked
        # state gone before a poll can see it.
        cluster.wait_for(lambda: cluster.logs("default", "victim") == "up\n", 30, "victim up")
        cluster.create("pods", pod("urgent", ["true"], container=gpu, priorityClassName="high"))

        def marked_victim() -> dict | None:
            victim = cluster.get("pods", "default", "victim")
            return victim if victim and victim["metadata"].get("deletionTimestamp") else None

        marked = cluster.wait_for(marked_victim, 30, "the victim marked for deletion")
        target = next(c for c in marked["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"], target["message"]) == (
            "True",
            "PreemptionByScheduler",
            "default-scheduler: preempting to accommodate a higher priority pod",
        )
        nominated = cluster.wait_for(
            lambda: cluster.get("pods", "default", "urgent")["status"].get("nominatedNodeName"), 10
        )
        assert nominated == "box"


@pytest.mark.parametrize(
    ("nodes", "error"),
    [
        ([], "FakeCluster(nodes=[]): a cluster needs at least one node"),
        ([{"name": "Bad_Name"}], "FakeCluster(nodes=...): node 0: name must be a DNS subdomain"),
        (
            [{"name": "a", "taints": [{"key": "k", "effect": "Sometimes"}]}],
            "FakeCluster(nodes=...): node 'a': taint k: effect must be one of NoSchedule, "
            "PreferNoSchedule, NoExecute, got 'Sometimes'",
        ),
        (
            [{"name": "a", "gpus": 2}],
            "FakeCluster(nodes=...): node 0: unknown key(s) ['gpus']; known: name, labels, "
            "taints, capacity",
        ),
    ],
)
def test_bad_nodes_are_refused_naming_the_node(nodes: list, error: str) -> None:
    with pytest.raises(ValueError) as refused:
        FakeCluster(nodes=nodes)
    assert str(refused.value).startswith(error)
