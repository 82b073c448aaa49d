"""Injected faults, each seen through the real client the way a real cluster shows it."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import kubernetes
import pytest
import urllib3
from fakecluster import FakeCluster
from fakecluster.jobs import pytorchjob
from fakecluster.testing import KF, RANK, pod
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


def succeeded(cluster: FakeCluster, name: str) -> bool:
    job = cluster.get("pytorchjobs", "default", name) or {}
    return any(
        c["type"] == "Succeeded" and c["status"] == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


def container_status(cluster: FakeCluster, pod: str) -> dict:
    return cluster.get("pods", "default", pod)["status"]["containerStatuses"][0]


def test_unschedulable_until_cancelled(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    fault = cluster.inject("unschedulable", resource="nvidia.com/gpu", job="gpu")
    kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("gpu", RANK, workers=1)
    )
    events = cluster.wait_for(
        lambda: cluster.events(involved="gpu-master-0", reason="FailedScheduling"), 10
    )
    assert events[0]["message"] == (
        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    )
    pod = kube.core.read_namespaced_pod("gpu-master-0", "default")
    assert pod.status.phase == "Pending"
    assert pod.status.conditions[0].reason == "Unschedulable"
    assert fault.fired
    fault.cancel()
    cluster.wait_for(lambda: succeeded(cluster, "gpu"), 30, "the job after the fault")


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        ("not-found", ": not found"),
        (
            "auth",
            "pull access denied, repository does not exist or may require authorization: "
            "unauthorized: authentication required",
        ),
    ],
)
def test_image_pull_failures(
    cluster: FakeCluster, kube: SimpleNamespace, cause: str, words: str
) -> None:
    fault = cluster.inject("image_pull", cause=cause, pod="img")
    kube.core.create_namespaced_pod("default", pod("img", ["true"], "registry.example/x:1"))
    seen: set[str] = set()

    def both_reasons() -> bool:
        state = container_status(cluster, "img")["state"]
        seen.add(state.get("waiting", {}).get("reason", ""))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    cluster.wait_for(both_reasons, 10, "ErrImagePull then ImagePullBackOff")
    failed = [e["message"] for e in cluster.events(involved="img", reason="Failed")]
    pulls = [m for m in failed if m.startswith('Failed to pull image "registry.example/x:1": ')]
    assert pulls and words in pulls[0]
    assert "Error: ErrImagePull" in failed and "Error: ImagePullBackOff" in failed
    assert fault.fired
    backoff = cluster.events(involved="img", reason="BackOff")[0]["message"]
    assert backoff == 'Back-off pulling image "registry.example/x:1"'
    with pytest.raises(ApiException) as exc:
        kube.core.read_namespaced_pod_log("img", "default")
    assert json.loads(exc.value.body)["message"] in (
        'container "main" in pod "img" is waiting to start: trying and failing to pull image',
        'container "main" in pod "img" is waiting to start: image can\'t be pulled',
    )
    fault.cancel()
    cluster.wait_for(
        lambda: cluster.get("pods", "default", "img")["status"]["phase"] == "Succeeded", 10
    )


def test_oom_killed(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    fault = cluster.inject("oom", pod="hungry", after_lines=1)
    code = "import time\nprint('allocating', flush=True)\ntime.sleep(30)"
    kube.core.create_namespaced_pod("default", pod("hungry", ["python", "-c", code]))
    cluster.wait_for(
        lambda: cluster.get("pods", "default", "hungry")["status"]["phase"] == "Failed", 20
    )
    term = container_status(cluster, "hungry")["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    assert kube.core.read_namespaced_pod_log("hungry", "default") == "allocating\n"
    assert fault.fired == 1
    assert not cluster.pod_processes()


def test_restart_then_previous_logs(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    fault = cluster.inject("restart", pod="rs-worker-1", after_lines=1)
    chatty = ["python", "-u", "-c", "import os; print('rank', os.environ['RANK']); print('done')"]
    kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", pytorchjob("rs", chatty, workers=2)
    )

    def restarted_and_done() -> bool:
        cs = container_status(cluster, "rs-worker-1")
        return cs["restartCount"] == 1 and "terminated" in cs["state"]

    cluster.wait_for(restarted_and_done, 30, "worker-1 restarted and finished")
    cs = container_status(cluster, "rs-worker-1")
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["state"]["terminated"]["exitCode"] == 0
    previous = kube.core.read_namespaced_pod_log("rs-worker-1", "default", previous=True)
    assert previous == "rank 2\n"  # exactly after_lines lines, then the kill
    assert kube.core.read_namespaced_pod_log("rs-worker-1", "default") == "rank 2\ndone\n"
    assert cluster.get("pods", "default", "rs-worker-1")["status"]["phase"] == "Succeeded"
    assert fault.fired == 1


def test_exit_code_policy_recreates_the_pod(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    fault = cluster.inject("oom", pod="ec-worker-0")
    kube.custom.create_namespaced_custom_object(
        *KF,
        "default",
        "pytorchjobs",
        pytorchjob(
            "ec",
            ["python", "-c", "import time; time.sleep(1.5)"],
            workers=1,
            restart_policy="ExitCode",
        ),
    )
    cluster.wait_for(lambda: succeeded(cluster, "ec"), 30)
    messages = [e["message"] for e in cluster.events(involved="ec")]
    assert "Pod: default.ec-worker-0 exited with code 137" in messages
    assert "PyTorchJob ec is restarting because Worker replica(s) failed." in messages
    scheduled = cluster.events(involved="ec-worker-0", reason="Scheduled")
    assert len({e["involvedObject"]["uid"] for e in scheduled}) == 2  # same name, new pod
    assert fault.fired == 1


def open_watch(kube: SimpleNamespace) -> urllib3.HTTPResponse:
    rv = kube.core.list_namespaced_config_map("default").metadata.resource_version
    return kube.core.list_namespaced_config_map(
        "default", watch=True, resource_version=rv, _preload_content=False
    )


def test_dropped_watches(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    resp = open_watch(kube)
    cluster.wait_for(lambda: cluster.apiserver.open_watches() == 1, 5)
    assert cluster.inject("watch_drop", after_events=2).fired == 1
    for i in range(3):
        kube.core.create_namespaced_config_map("default", {"metadata": {"name": f"d{i}"}})
    lines = resp.read().decode().splitlines()  # a clean end of the chunked body
    assert [json.loads(x)["object"]["metadata"]["name"] for x in lines] == ["d0", "d1"]

    resp = open_watch(kube)
    cluster.wait_for(lambda: cluster.apiserver.open_watches() == 1, 5)
    assert cluster.drop_watches(abrupt=True) == 1
    with pytest.raises(urllib3.exceptions.ProtocolError):
        resp.read()


def test_log_stream_cut_mid_line(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    code = "import time\nprint('a' * 40, flush=True)\ntime.sleep(0.3)\nprint('b' * 40)"
    kube.core.create_namespaced_pod("default", pod("cut", ["python", "-c", code]))
    cluster.wait_for(
        lambda: cluster.get("pods", "default", "cut")["status"]["phase"] == "Running", 10
    )
    fault = cluster.inject("log_cut", pod="cut", after_bytes=25)
    resp = kube.core.read_namespaced_pod_log("cut", "default", follow=True, _preload_content=False)
    got = b""
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in resp.stream(1024):
            got += chunk
    assert got == b"a" * 25
    assert fault.fired == 1
    full = kube.core.read_namespaced_pod_log("cut", "default", follow=True)
    assert full.startswith("a" * 40 + "\n")  # only the next follow was cut


def test_next_watch_resume_expires(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    rv = kube.core.list_namespaced_config_map("default").metadata.resource_version
    fault = cluster.inject("watch_expire")
    w = kubernetes.watch.Watch()

    def resume() -> list[dict]:
        config_maps = kube.core.list_namespaced_config_map
        return list(w.stream(config_maps, "default", resource_version=rv, timeout_seconds=1))

    with pytest.raises(ApiException) as exc:
        resume()
    assert exc.value.status == 410
    assert fault.fired == 1
    assert exc.value.reason.startswith(f"Expired: too old resource version: {rv} (")
    assert resume() == []


def test_stop_leaves_no_threads_or_processes() -> None:
    before = {t.ident for t in threading.enumerate()}
    cluster = FakeCluster().start()
    cluster.create("pods", pod("lingering", ["python", "-c", "import time; time.sleep(60)"]))
    pids = cluster.wait_for(cluster.pod_processes, 20)
    resp = urllib3.request(
        "GET",
        cluster.url + "/api/v1/namespaces/default/pods?watch=true",
        headers={"Authorization": f"Bearer {cluster.token}"},
        preload_content=False,
    )
    cluster.stop()
    resp.release_conn()
    import os

    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert [t.name for t in leftover] == []
