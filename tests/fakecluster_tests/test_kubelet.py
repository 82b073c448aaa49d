"""The simulated scheduler and kubelet: scheduling, volumes, env, logs, restarts, deletion."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import kubernetes
import pytest
import urllib3
from fakecluster import FakeCluster
from fakecluster.testing import phase, pod, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


def message(exc: ApiException) -> str:
    return str(status_of(exc)["message"])


def raw_get(cluster: FakeCluster, path: str) -> str:
    resp = urllib3.request(
        "GET", cluster.url + path, headers={"Authorization": f"Bearer {cluster.token}"}
    )
    assert resp.status == 200, resp.data
    return resp.data.decode()


def test_requests_beyond_capacity_stay_pending() -> None:
    with FakeCluster(capacity={"cpu": "2", "memory": "1Gi"}) as cluster:
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespaced_pod(
            "default",
            pod("big", ["true"], container={"resources": {"requests": {"cpu": "4"}}}),
        )
        core.create_namespaced_pod(
            "default",
            pod("gpu", ["true"], container={"resources": {"limits": {"nvidia.com/gpu": "1"}}}),
        )
        cluster.wait_for(lambda: len(cluster.events(reason="FailedScheduling")) == 2, 10)
        big = core.read_namespaced_pod("big", "default")
        assert big.status.phase == "Pending" and big.spec.node_name is None
        cond = big.status.conditions[0]
        assert (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable")
        assert cond.message == (
            "0/1 nodes are available: 1 Insufficient cpu."
            " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        )
        gpu_event = cluster.events(involved="gpu", reason="FailedScheduling")[0]
        assert gpu_event["message"] == (
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
            " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        )
        assert gpu_event["type"] == "Warning"
        assert gpu_event["source"]["component"] == "default-scheduler"
        assert core.read_namespaced_pod_log("big", "default") == ""  # no node: empty, not 400

        hold = ["python", "-c", "import time; time.sleep(1)"]
        half = {"resources": {"requests": {"cpu": "1500m"}}}
        once = {"container": half, "restartPolicy": "Never"}
        core.create_namespaced_pod("default", pod("first", hold, **once))
        core.create_namespaced_pod("default", pod("second", ["true"], **once))
        cluster.wait_for(lambda: cluster.events(involved="second", reason="FailedScheduling"), 10)
        assert cluster.get("pods", "default", "second")["status"]["phase"] == "Pending"
        cluster.wait_for(lambda: phase(cluster, "second") == "Succeeded", 20, "second to run")
        assert phase(cluster, "first") == "Succeeded"
        api.close()


def test_container_creating_pod_initializing_and_log_errors(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    core = kube.core
    mounted = pod(
        "cc",
        ["python", "/code/main.py"],
        container={"volumeMounts": [{"name": "code", "mountPath": "/code"}]},
        volumes=[{"name": "code", "configMap": {"name": "code"}}],
        restartPolicy="OnFailure",
    )
    core.create_namespaced_pod("default", mounted)
    event = cluster.wait_for(lambda: cluster.events(involved="cc", reason="FailedMount"), 10)
    assert event[0]["message"] == (
        'MountVolume.SetUp failed for volume "code" : configmap "code" not found'
    )
    status = core.read_namespaced_pod("cc", "default").status.container_statuses[0]
    assert status.state.waiting.reason == "ContainerCreating"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("cc", "default")
    assert exc.value.status == 400
    assert (
        message(exc.value) == 'container "main" in pod "cc" is waiting to start: ContainerCreating'
    )
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "code"}, "data": {"main.py": "print('from the map')"}}
    )
    cluster.wait_for(lambda: phase(cluster, "cc") == "Succeeded", 20)
    assert core.read_namespaced_pod_log("cc", "default") == "from the map\n"
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("cc", "default", previous=True)
    assert message(exc.value) == 'previous terminated container "main" in pod "cc" not found'

    slow_init = pod(
        "pi",
        ["true"],
        restartPolicy="Never",
        initContainers=[
            {
                "name": "setup",
                "image": "busybox",
                "command": ["python", "-c", "import time; time.sleep(2)"],
            }
        ],
    )
    core.create_namespaced_pod("default", slow_init)
    cluster.wait_for(lambda: cluster.pod_processes(), 10, "the init container to run")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("pi", "default", container="main")
    assert message(exc.value) == 'container "main" in pod "pi" is waiting to start: PodInitializing'
    initialized = core.read_namespaced_pod("pi", "default").status.conditions
    assert {c.type: c.status for c in initialized}["Initialized"] == "False"

    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("nobody", "default")
    assert exc.value.status == 404
    assert message(exc.value) == 'pods "nobody" not found'

    two = {
        "metadata": {"name": "two"},
        "spec": {
            "containers": [
                {"name": "a", "image": "busybox", "command": ["true"]},
                {"name": "b", "image": "busybox", "command": ["true"]},
            ]
        },
    }
    core.create_namespaced_pod("default", two)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("two", "default")
    assert (
        message(exc.value) == "a container name must be specified for pod two, choose one of: [a b]"
    )
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("two", "default", container="c")
    assert message(exc.value) == "container c is not valid for pod two"


def test_env_volumes_and_command_mapping(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    script = (
        "import os, sys\n"
        "print(os.environ['POD'], os.environ['NS'], os.environ['GREETING'])\n"
        "print(sys.argv[1])\n"
        "print(os.getcwd() == os.path.dirname(os.path.abspath(__file__)))\n"
        "print(open(os.environ['DATA']).read())\n"
    )
    kube.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "app"}, "data": {"run.py": script, "x.txt": "payload"}}
    )
    spec = pod(
        "envy",
        ["python3", "/app/run.py"],
        container={
            "args": ["$(GREETING)-arg"],
            "workingDir": "/app",
            "env": [
                {"name": "GREETING", "value": "hello"},
                {"name": "DATA", "value": "/app/x.txt"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
            "volumeMounts": [{"name": "app", "mountPath": "/app"}],
        },
        volumes=[{"name": "app", "configMap": {"name": "app"}}],
        restartPolicy="Never",
    )
    kube.core.create_namespaced_pod("default", spec)
    cluster.wait_for(lambda: phase(cluster, "envy") in ("Succeeded", "Failed"), 20)
    out = kube.core.read_namespaced_pod_log("envy", "default").splitlines()
    assert out == ["envy default hello", "hello-arg", "True", "payload"]
    status = kube.core.read_namespaced_pod("envy", "default").status.container_statuses[0]
    assert status.state.terminated.exit_code == 0
    assert status.state.terminated.reason == "Completed"


def test_follow_a_live_log_with_timestamps_tail_limit_and_since(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    code = "import time\nfor i in range(5):\n    print('line', i, flush=True)\n    time.sleep(0.15)"
    kube.core.create_namespaced_pod("default", pod("talk", ["python", "-c", code]))
    cluster.wait_for(lambda: phase(cluster, "talk") == "Running", 20)
    lines = list(
        kubernetes.watch.Watch().stream(
            kube.core.read_namespaced_pod_log, "talk", "default", timestamps=True
        )
    )
    assert [line.split(" ", 1)[1] for line in lines] == [f"line {i}" for i in range(5)]
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", s) for s in stamps)
    cluster.wait_for(lambda: phase(cluster, "talk") == "Succeeded", 5)  # ended with it
    assert kube.core.read_namespaced_pod_log("talk", "default", tail_lines=2) == "line 3\nline 4\n"
    assert kube.core.read_namespaced_pod_log("talk", "default", limit_bytes=9) == "line 0\nli"
    assert kube.core.read_namespaced_pod_log("talk", "default", since_seconds=3600).count("\n") == 5
    since = raw_get(cluster, f"/api/v1/namespaces/default/pods/talk/log?sinceTime={stamps[3]}")
    assert since == "line 3\nline 4\n"


def test_graceful_deletion_terminates_the_process(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('bye', flush=True), sys.exit(0)))\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    kube.core.create_namespaced_pod(
        "default", pod("victim", ["python", "-c", code], terminationGracePeriodSeconds=5)
    )
    cluster.wait_for(lambda: cluster.logs("default", "victim") == "up\n", 20)
    (pid,) = cluster.pod_processes().values()
    rv = kube.core.list_namespaced_pod("default").metadata.resource_version
    deleted = kube.core.delete_namespaced_pod("victim", "default")
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 5
    seen = []
    w = kubernetes.watch.Watch()
    for ev in w.stream(
        kube.core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    ):
        seen.append((ev["type"], bool(ev["raw_object"]["metadata"].get("deletionTimestamp"))))
        if ev["type"] == "DELETED":
            w.stop()
    assert seen[-1] == ("DELETED", True)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert cluster.events(involved="victim", reason="Killing")[0]["message"] == (
        "Stopping container main"
    )


def test_crash_loop_back_off_and_previous_logs(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.core.create_namespaced_pod(
        "default",
        pod("crash", ["python", "-c", "print('run'); raise SystemExit(2)"], restartPolicy="Always"),
    )

    def waiting_reason() -> str | None:
        obj = cluster.get("pods", "default", "crash")
        cs = obj["status"]["containerStatuses"][0]
        return cs["state"].get("waiting", {}).get("reason") if cs["restartCount"] >= 1 else None

    assert cluster.wait_for(lambda: waiting_reason() == "CrashLoopBackOff", 20)
    status = kube.core.read_namespaced_pod("crash", "default").status
    cs = status.container_statuses[0]
    assert status.phase == "Running"
    assert cs.last_state.terminated.exit_code == 2
    assert cs.last_state.terminated.reason == "Error"
    assert kube.core.read_namespaced_pod_log("crash", "default", previous=True) == "run\n"
    assert kube.core.read_namespaced_pod_log("crash", "default") == "run\n"
    backoff = cluster.events(involved="crash", reason="BackOff")[0]
    assert backoff["message"].startswith("Back-off restarting failed container main in pod crash_")
