"""The simulated training operator: pods, services, env, status, cleanup, deletion."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import pytorchjob, tfjob
from fakecluster.store import WatchEvent
from fakecluster.testing import KF, RANK, SLEEP, conditions, finished, owned_by

pytestmark = pytest.mark.timeout(60)


def env_of(pod: kubernetes.client.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env}


def test_pytorchjob_master_and_two_workers_succeeds(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    created = kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("pt", RANK, workers=2)
    )
    w = kubernetes.watch.Watch()
    for ev in w.stream(
        kube.custom.list_namespaced_custom_object,
        *KF,
        "default",
        "pytorchjobs",
        field_selector="metadata.name=pt",
        timeout_seconds=30,
    ):
        conds = ev["object"].get("status", {}).get("conditions", [])
        if any(c["type"] == "Succeeded" and c["status"] == "True" for c in conds):
            w.stop()
    job = cluster.get("pytorchjobs", "default", "pt")
    conds = conditions(job)
    assert [c["type"] for c in job["status"]["conditions"]] == ["Created", "Running", "Succeeded"]
    assert conds["Running"]["status"] == "False"
    assert conds["Succeeded"]["reason"] == "PyTorchJobSucceeded"
    assert conds["Succeeded"]["message"] == "PyTorchJob pt is successfully completed."
    assert conds["Created"]["message"] == "PyTorchJob pt is created."
    statuses = job["status"]["replicaStatuses"]
    assert statuses["Master"]["succeeded"] == 1 and "active" not in statuses["Master"]
    # Success is master-0's alone; workers not yet Running are not counted (as in v1.9).
    assert "failed" not in statuses["Worker"] and "active" not in statuses["Worker"]
    assert job["status"]["startTime"] and job["status"]["completionTime"]
    cluster.wait_for(
        lambda: {p["status"]["phase"] for p in cluster.list("pods", "default")} == {"Succeeded"},
        20,
        "the workers to finish too (cleanPodPolicy None)",
    )

    selector = (
        "training.kubeflow.org/job-name=pt,"
        "training.kubeflow.org/operator-name=pytorchjob-controller"
    )
    pods = {
        p.metadata.name: p
        for p in kube.core.list_namespaced_pod("default", label_selector=selector).items
    }
    assert sorted(pods) == ["pt-master-0", "pt-worker-0", "pt-worker-1"]
    master, worker = pods["pt-master-0"], pods["pt-worker-1"]
    assert master.metadata.labels["training.kubeflow.org/job-role"] == "master"
    assert "training.kubeflow.org/job-role" not in worker.metadata.labels
    assert worker.metadata.labels["training.kubeflow.org/replica-type"] == "worker"
    assert worker.metadata.labels["training.kubeflow.org/replica-index"] == "1"
    ref = worker.metadata.owner_references[0]
    assert (ref.kind, ref.name, ref.uid) == ("PyTorchJob", "pt", created["metadata"]["uid"])
    assert ref.controller and ref.block_owner_deletion
    assert worker.spec.restart_policy == "OnFailure"
    assert [c.name for c in worker.spec.init_containers] == ["init-pytorch"]
    assert master.spec.init_containers is None
    assert env_of(worker) == {
        "PYTHONUNBUFFERED": "1",
        "MASTER_PORT": "23456",
        "PET_MASTER_PORT": "23456",
        "MASTER_ADDR": "pt-master-0",
        "PET_MASTER_ADDR": "pt-master-0",
        "WORLD_SIZE": "3",
        "RANK": "2",
        "PET_NODE_RANK": "2",
        "PET_NNODES": "3",
        "PET_NPROC_PER_NODE": "auto",
    }
    assert env_of(master)["RANK"] == "0"
    assert [p.container_port for p in master.spec.containers[0].ports] == [23456]
    assert {p.status.phase for p in pods.values()} == {"Succeeded"}
    assert worker.status.container_statuses[0].state.terminated.reason == "Completed"

    services = kube.core.list_namespaced_service("default", label_selector=selector).items
    assert sorted(s.metadata.name for s in services) == sorted(pods)
    assert {s.spec.cluster_ip for s in services} == {"None"}

    for name, rank in (("pt-master-0", "0"), ("pt-worker-0", "1"), ("pt-worker-1", "2")):
        assert (
            kube.core.read_namespaced_pod_log(name, "default", container="pytorch") == f"{rank}\n"
        )
    stamped = kube.core.read_namespaced_pod_log("pt-worker-0", "default", timestamps=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z 1\n", stamped)
    followed = list(
        kubernetes.watch.Watch().stream(
            kube.core.read_namespaced_pod_log, "pt-worker-0", "default", container="pytorch"
        )
    )
    assert followed == ["1"]  # following a terminated container returns at once
    init_log = kube.core.read_namespaced_pod_log("pt-worker-0", "default", container="init-pytorch")
    assert "Name:      pt-master-0" in init_log
    master_ip = pods["pt-master-0"].status.pod_ip
    assert f"Address 1: {master_ip} pt-master-0.default.svc.cluster.local" in init_log
    reasons = [e["reason"] for e in cluster.events("default", "pt")]
    assert reasons.count("SuccessfulCreatePod") == 3
    assert reasons.count("SuccessfulCreateService") == 3
    assert "PyTorchJobSucceeded" in reasons


def test_tfjob_with_ps_and_clean_pod_policy_running(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    worker = [
        "python",
        "-u",
        "-c",
        "import json, os, socket; c = json.loads(os.environ['TF_CONFIG']); print(json.dumps(c));"
        " print(socket.gethostbyname(c['cluster']['ps'][0].split(':')[0]))",
    ]
    job = tfjob("tfps", {"PS": (1, SLEEP), "Worker": (2, worker)}, clean_pod_policy="Running")
    kube.custom.create_namespaced_custom_object(*KF, "default", "tfjobs", job)
    ps_ip = cluster.wait_for(
        lambda: cluster.get("pods", "default", "tfps-ps-0")["status"]["podIP"], 30, "the PS's IP"
    )
    done = cluster.wait_for(lambda: finished(cluster, "tfjobs", "tfps"), 30, "the TFJob to end")
    assert conditions(done)["Succeeded"]["message"] == "TFJob default/tfps successfully completed."
    cluster.wait_for(lambda: cluster.get("pods", "default", "tfps-ps-0") is None, 20, "PS deleted")
    assert cluster.get("services", "default", "tfps-ps-0") is None
    cluster.wait_for(lambda: not cluster.pod_processes(), 10, "no processes left")
    log = kube.core.read_namespaced_pod_log("tfps-worker-0", "default").splitlines()
    assert json.loads(log[0]) == {
        "cluster": {
            "ps": ["tfps-ps-0.default.svc:2222"],
            "worker": ["tfps-worker-0.default.svc:2222", "tfps-worker-1.default.svc:2222"],
        },
        "task": {"type": "worker", "index": 0},
        "environment": "cloud",
    }
    assert log[1] == ps_ip  # the PS's Service name resolves, inside the pod, to the PS pod
    pod = kube.core.read_namespaced_pod("tfps-worker-0", "default")
    assert pod.metadata.labels["training.kubeflow.org/operator-name"] == "tfjob-controller"
    assert pod.metadata.labels["training.kubeflow.org/job-role"] == "master"
    assert pod.spec.restart_policy == "Never"
    deleted = [e["message"] for e in cluster.events("default", "tfps", "SuccessfulDeletePod")]
    assert "Deleted pod: tfps-ps-0" in deleted
    assert "Deleted pod: tfps-worker-0" not in deleted  # Succeeded pods stay under Running


def test_a_single_replica_tfjob_has_no_tf_config(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    probe = ["python", "-c", "import os; print(os.environ.get('TF_CONFIG', 'none'))"]
    kube.custom.create_namespaced_custom_object(
        *KF, "default", "tfjobs", tfjob("solo", {"Worker": (1, probe)})
    )
    cluster.wait_for(lambda: finished(cluster, "tfjobs", "solo"), 20)
    assert cluster.logs("default", "solo-worker-0") == "none\n"


def test_a_failed_worker_fails_the_job_and_cleans_up(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    job = pytorchjob(
        "pf",
        SLEEP,
        workers=1,
        restart_policy="Never",
        clean_pod_policy="All",
        worker_command=["python", "-c", "import sys; print('boom'); sys.exit(3)"],
    )
    kube.custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", job)
    done = cluster.wait_for(lambda: finished(cluster, "pytorchjobs", "pf"), 30)
    conds = conditions(done)
    assert (
        conds["Failed"]["message"] == "PyTorchJob pf is failed because 1 Worker replica(s) failed."
    )
    assert conds["Failed"]["reason"] == "PyTorchJobFailed"
    assert conds.get("Running", {}).get("status", "False") == "False"
    assert done["status"]["replicaStatuses"]["Worker"]["failed"] == 1
    cluster.wait_for(lambda: not cluster.list("pods", "default"), 20, "pods cleaned (All)")
    assert not cluster.pod_processes()
    messages = [e["message"] for e in cluster.events("default", "pf", "ExitedWithCode")]
    assert "Pod: default.pf-worker-0 exited with code 3" in messages


def test_backoff_limit_deletes_every_pod_then_fails_the_job(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    """As training-operator v1.9: past the backoff limit the job is not finished yet, so
    DeletePodsAndServices deletes every pod (cleanPodPolicy None notwithstanding), and only
    then is Failed set, with a message that names no replica."""
    order: list[tuple[str, str]] = []
    restarts: list[int] = []

    def watch(ev: WatchEvent) -> None:
        meta = ev.obj["metadata"]
        if ev.resource == "pods" and meta["name"].startswith("bo-"):
            if ev.type == "DELETED" or meta.get("deletionTimestamp"):
                order.append(("deleted", meta["name"]))
            for cs in ev.obj.get("status", {}).get("containerStatuses") or []:
                if meta["name"] == "bo-worker-0":
                    restarts.append(cs["restartCount"])
        if ev.resource == "pytorchjobs" and meta["name"] == "bo":
            conds = ev.obj.get("status", {}).get("conditions") or []
            if any(c["type"] == "Failed" and c["status"] == "True" for c in conds):
                order.append(("failed", "bo"))

    cluster.store.add_listener(watch)
    job = pytorchjob(
        "bo",
        SLEEP,
        workers=1,
        backoffLimit=2,
        worker_command=["python", "-c", "raise SystemExit(1)"],
    )
    kube.custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", job)
    done = cluster.wait_for(lambda: finished(cluster, "pytorchjobs", "bo"), 30)
    failed = conditions(done)["Failed"]
    assert (
        failed["message"] == "Job bo has failed because it has reached the specified backoff limit"
    )
    assert failed["reason"] == "PyTorchJobFailed"
    assert done["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    first_failed = order.index(("failed", "bo"))
    assert {name for what, name in order[:first_failed] if what == "deleted"} == {
        "bo-master-0",
        "bo-worker-0",
    }
    assert max(restarts) >= 2
    cluster.wait_for(lambda: not cluster.list("pods", "default"), 20, "every pod gone")
    assert cluster.list("services", "default") == []
    deleted = [e["message"] for e in cluster.events("default", "bo", "SuccessfulDeletePod")]
    assert sorted(deleted) == ["Deleted pod: bo-master-0", "Deleted pod: bo-worker-0"]


def test_foreground_deletion_removes_dependents_and_processes(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    created = kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("fg", SLEEP, workers=1)
    )
    kube.core.create_namespaced_config_map("default", owned_by(created, "fg-code"))
    cluster.wait_for(lambda: len(cluster.pod_processes()) == 2, 20, "both processes running")
    pids = set(cluster.pod_processes().values())
    answer = kube.custom.delete_namespaced_custom_object(
        *KF, "default", "pytorchjobs", "fg", propagation_policy="Foreground"
    )
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert answer["metadata"]["deletionTimestamp"]
    cluster.wait_for(lambda: cluster.get("pytorchjobs", "default", "fg") is None, 20, "job gone")
    assert cluster.list("pods", "default") == []
    assert cluster.list("services", "default") == []
    assert cluster.get("configmaps", "default", "fg-code") is None
    assert not cluster.pod_processes()
    import os

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert cluster.events("default", "fg-master-0", "Killing")


def test_background_deletion_returns_at_once(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("bg", SLEEP, workers=0)
    )
    cluster.wait_for(lambda: cluster.pod_processes(), 20, "the master running")
    answer = kube.custom.delete_namespaced_custom_object(*KF, "default", "pytorchjobs", "bg")
    assert answer["status"] == "Success"
    assert cluster.get("pytorchjobs", "default", "bg") is None
    cluster.wait_for(lambda: not cluster.list("pods", "default"), 20, "pods collected")
    assert not cluster.pod_processes()


def test_suspended_jobs_create_no_pods(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("sus", RANK, workers=1, suspend=True)
    )
    job = cluster.wait_for(
        lambda: conditions(cluster.get("pytorchjobs", "default", "sus")).get("Suspended"), 10
    )
    assert job["message"] == "PyTorchJob sus is suspended."
    assert cluster.list("pods", "default") == []
