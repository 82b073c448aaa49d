"""Why a replica stays Pending unscheduled: the scheduler's FailedScheduling message, read
for what the cell can change (a taint to tolerate, a label no node has), with the setting
that fixes it; and pods no scheduler takes, which get no message at all."""

from __future__ import annotations

import copy

import pytest

from ciao.backend.kubeflow.pods import diagnose_event, diagnose_pod
from ciao.backend.kubeflow.scheduling import scheduling_hint, unclaimed_by, unscheduled_hint

GPU_POD = {
    "metadata": {"name": "ciao-fit-node-0-0-7xk2p", "namespace": "team"},
    "spec": {
        "containers": [{"name": "node", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "schedulerName": "default-scheduler",
    },
    "status": {"phase": "Pending"},
}
PREEMPTION = " preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."


def failed_scheduling(message: str) -> dict:
    return {
        "type": "Warning",
        "reason": "FailedScheduling",
        "message": message,
        "involvedObject": {"kind": "Pod", "name": "ciao-fit-node-0-0-7xk2p", "namespace": "team"},
    }


def test_an_untolerated_taint_is_named_with_the_toleration_that_passes_it():
    message = (
        "0/3 nodes are available: 3 node(s) had untolerated taint {nvidia.com/gpu: }." + PREEMPTION
    )
    diagnosis = diagnose_event(failed_scheduling(message), "node-0", GPU_POD)
    assert diagnosis.reason == "FailedScheduling"
    assert diagnosis.hint.startswith(
        "the nodes have taints the pods do not tolerate ({nvidia.com/gpu: } on 3 node(s)): add "
        "%toleration=nvidia.com/gpu for the nodes to use (or a %profile that has it)"
    )
    assert message in diagnosis.hint


def test_a_taint_with_a_value_is_tolerated_with_its_value():
    message = "0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}."
    assert "%toleration=dedicated=gpu" in scheduling_hint(message)


def test_the_control_planes_taint_is_left_out_when_another_cause_is_there():
    """Every cluster's control plane is tainted: it is not what keeps a job Pending."""
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node "
        "affinity/selector." + PREEMPTION
    )
    hint = scheduling_hint(message, GPU_POD)
    assert hint.startswith(
        "2 node(s) lack the labels %nodeSelector=nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 "
        "asks for: check the values the nodes have (kubectl get nodes -L "
        "nvidia.com/gpu.product)"
    )
    assert "%toleration=node-role" not in hint


def test_a_tainted_gpu_node_and_unlabelled_others_give_both_causes():
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, 2 "
        "node(s) didn't match Pod's node affinity/selector." + PREEMPTION
    )
    hint = scheduling_hint(message, GPU_POD)
    assert "%toleration=nvidia.com/gpu=present" in hint and "%nodeSelector=" in hint
    assert hint.index("%toleration") < hint.index("%nodeSelector")


def test_recent_schedulers_do_not_name_the_taint_so_the_gpu_taint_is_suggested():
    """Kubernetes no longer puts the taint in the message: the nodes say it, and GPU node
    pools are usually tainted nvidia.com/gpu."""
    message = "0/3 nodes are available: 3 node(s) had untolerated taint(s)." + PREEMPTION
    hint = scheduling_hint(message, GPU_POD)
    assert hint.startswith("3 node(s) have taints the pods do not tolerate")
    assert "kubectl describe nodes | grep Taints" in hint
    assert "GPU nodes are usually tainted nvidia.com/gpu: %toleration=nvidia.com/gpu" in hint


def test_a_pod_that_already_tolerates_the_gpu_taint_is_not_told_to_add_it():
    pod = copy.deepcopy(GPU_POD)
    pod["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    message = "0/3 nodes are available: 3 node(s) had untolerated taint(s)."
    assert "GPU nodes are usually" not in scheduling_hint(message, pod)


def test_only_the_clusters_own_taints_say_the_nodes_are_not_for_workloads():
    message = (
        "0/1 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }." + PREEMPTION
    )
    hint = scheduling_hint(message)
    assert hint.startswith("the only nodes are kept from workloads by the cluster's own taints")
    assert "%toleration" not in hint


def test_a_selector_without_the_pod_still_says_where_to_look():
    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    hint = scheduling_hint(message)
    assert hint.startswith("3 node(s) do not match the pods' node selector or affinity")
    assert "kubectl get nodes --show-labels" in hint


def test_the_unschedulable_condition_gives_the_same_hint_as_the_event():
    message = "0/3 nodes are available: 3 node(s) had untolerated taint {nvidia.com/gpu: }."
    pod = copy.deepcopy(GPU_POD)
    pod["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    ]
    (diagnosis,) = diagnose_pod(pod, "node-0")
    event = diagnose_event(failed_scheduling(message), "node-0", pod)
    assert diagnosis == event


@pytest.mark.parametrize(
    "message, says",
    [
        (
            "0/3 nodes are available: 1 node(s) had volume node affinity conflict, 2 node(s) "
            "didn't match Pod's node affinity/selector.",
            "1 node(s) are not where the PVC's volume is",
        ),
        (
            "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind.",
            "no PersistentVolume fits the pods' claim on 3 node(s)",
        ),
    ],
)
def test_volumes_in_another_zone_or_none_at_all_are_said(message, says):
    assert scheduling_hint(message, GPU_POD).startswith(says)


def test_an_unnamed_taint_beside_another_cause_is_the_control_planes_and_left_out():
    """On recent releases the control plane's taint is unnamed too: beside a real cause it
    is noise, unless the pods want GPUs and tolerate no GPU taint."""
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't match "
        "Pod's node affinity/selector." + PREEMPTION
    )
    cpu_pod = copy.deepcopy(GPU_POD)
    cpu_pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "4"}}
    assert scheduling_hint(message, cpu_pod).startswith("2 node(s) lack the labels")
    assert scheduling_hint(message, GPU_POD).startswith(
        "1 node(s) have taints the pods do not tolerate"
    )


def test_a_readwriteoncepod_claim_in_use_says_one_pod_at_a_time():
    message = (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) unavailable "
        "due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by "
        "another pod. no new claims to deallocate," + PREEMPTION
    )
    pod = copy.deepcopy(GPU_POD)
    pod["spec"]["containers"][0]["resources"] = {}
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "ckpt"}}]
    assert scheduling_hint(message, pod).startswith(
        'the PVC "ckpt" is ReadWriteOncePod and another pod uses it: one pod at a time can'
    )


def test_an_unknown_message_is_shown_as_the_scheduler_wrote_it():
    message = "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod."
    assert scheduling_hint(message) == f"the scheduler cannot place this replica: {message}"


# --- pods no scheduler takes ------------------------------------------------------------------


def volcano_pod(**status) -> dict:
    pod = copy.deepcopy(GPU_POD)
    pod["spec"]["schedulerName"] = "volcano"
    pod["status"] = {"phase": "Pending", **status}
    return pod


def test_a_pending_pod_no_scheduler_looked_at_names_its_scheduler():
    assert unclaimed_by(volcano_pod()) == "volcano"


@pytest.mark.parametrize(
    "pod",
    [
        GPU_POD,  # the default scheduler always says why (a condition, an event)
        volcano_pod(
            conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
        ),
        volcano_pod(phase="Running"),
        {**volcano_pod(), "spec": {**volcano_pod()["spec"], "nodeName": "gpu-1"}},
        {
            **volcano_pod(),
            "spec": {**volcano_pod()["spec"], "schedulingGates": [{"name": "kueue.x-k8s.io/a"}]},
        },
    ],
)
def test_a_pod_a_scheduler_has_seen_or_that_waits_at_a_gate_is_not_unclaimed(pod):
    assert unclaimed_by(pod) == ""


def test_the_unclaimed_hint_names_the_scheduler_and_the_setting():
    hint = unscheduled_hint("volcano", 10)
    assert hint.startswith(
        "the job's pods are Pending and no scheduler has taken them after 10 s: no scheduler "
        "named volcano seems to run in this cluster"
    )
    assert "kubectl get pods -A | grep volcano" in hint and "%schedulerName=volcano" in hint
