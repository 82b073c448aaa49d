"""The Kubeflow backend against the test cluster, below the kernel: submission edge cases."""

from __future__ import annotations

import pytest
from fakecluster import FakeCluster

from ciao.backend.kube_client import connect
from ciao.backend.kubeflow import KubeflowBackend
from ciao.backend.types import JobDone, LogLine
from ciao.config import parse_config
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import RoleSpec
from ciao.s2i.configmap import ConfigMapCode

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def parts(cluster, tmp_path):
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = parse_config({"backend": "kubeflow", "kubeconfig": str(kubeconfig)}, None)
    kube = connect(config)
    yield ConfigMapCode(kube, config.images), KubeflowBackend(kube)
    for resource in ("pytorchjobs", "configmaps"):
        for obj in cluster.list(resource, "default"):
            cluster.delete(resource, "default", obj["metadata"]["name"], propagation="Foreground")


def backend_without_operator(cluster, tmp_path) -> KubeflowBackend:
    """A backend on a cluster with no training operator: pods come only from the test."""
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    kube = connect(parse_config({"kubeconfig": str(kubeconfig)}, None))
    return KubeflowBackend(kube, fallback_after=0.3)


def parameter(cell: str, name: str = "ciao-tests"):
    return MagicInterpreter(name_factory=lambda: name).preprocess(cell)


def submit(parts, p):
    s2i, backend = parts
    p.image = s2i.source_to_image(p.code, p)
    return backend.exec_code(p)


def test_a_webhook_rejection_is_shown_verbatim_and_the_configmap_is_deleted(parts, cluster):
    p = parameter("%framework=pytorch\n%master=1\nprint(1)")
    p.roles["master"] = RoleSpec("master", 2)  # what the interpreter refuses, the webhook too
    with pytest.raises(BackendError) as info:
        submit(parts, p)
    text = str(info.value)
    assert 'admission webhook "validator.pytorchjob.training-operator.kubeflow.org"' in text
    assert "webhook rejected the job" in text and "RBAC" not in text and "Role" not in text
    assert cluster.list("configmaps", "default") == []
    assert cluster.list("pytorchjobs", "default") == []


def test_a_taken_job_name_is_replaced_by_a_fresh_one(parts, cluster):
    first = submit(parts, parameter("%master=1\nprint('first')", name="ciao-taken"))
    second_parameter = parameter("%master=1\nprint('second')", name="ciao-taken")
    second = submit(parts, second_parameter)
    assert first.name == "ciao-taken"
    assert second.name != "ciao-taken" and second.name.startswith("ciao-")
    _, backend = parts
    events = list(backend.get_logs(second))
    assert LogLine("master-0", "second") in events
    assert isinstance(events[-1], JobDone) and events[-1].succeeded


def test_the_code_configmap_belongs_to_the_job(parts, cluster):
    job = submit(parts, parameter("%master=1\nprint(1)", name="ciao-owned"))
    config_map = cluster.get("configmaps", "default", "ciao-owned-code")
    assert config_map["data"]["code.py"] == "\nprint(1)"
    (owner,) = config_map["metadata"]["ownerReferences"]
    uid = cluster.get("pytorchjobs", "default", job.name)["metadata"]["uid"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("PyTorchJob", job.name, uid)


def test_code_too_large_for_a_configmap_is_refused_before_anything_is_created(parts, cluster):
    p = parameter("%master=1\nx = 1")
    p.code = "x = '" + "a" * 1_100_000 + "'"
    with pytest.raises(BackendError, match="more than a ConfigMap holds"):
        submit(parts, p)
    assert cluster.list("configmaps", "default") == []


def test_cancel_removes_the_job_its_pods_and_its_configmap(parts, cluster):
    job = submit(parts, parameter("%master=1\n%worker=1\nimport time\ntime.sleep(300)"))
    cluster.wait_for(lambda: len(cluster.pod_processes()) == 2, timeout=20)
    _, backend = parts
    backend.cancel(job)
    assert cluster.list("pytorchjobs", "default") == []
    assert cluster.list("pods", "default") == []
    assert cluster.list("configmaps", "default") == []
    assert cluster.pod_processes() == {}


@pytest.mark.parametrize(
    "labels_of",
    [
        pytest.param(
            lambda job, i: {"job-name": job, "replica-type": "master", "replica-index": str(i)},
            id="old-labels",
        ),
        pytest.param(lambda job, i: {}, id="owner-references-only"),
    ],
)
def test_pods_of_old_operators_are_found_by_old_labels_or_owner(tmp_path, labels_of):
    """An operator older than v1.6 labels pods differently (or not at all)."""
    from kubernetes.client import CustomObjectsApi

    with FakeCluster(operator=False) as cluster:
        backend = backend_without_operator(cluster, tmp_path)
        p = parameter("%master=1\nprint(1)", name="ciao-old")
        p.image = "python:3.11"
        p.command = ["python", "-c", "print('from an old operator')"]
        job = backend.exec_code(p)
        uid = cluster.get("pytorchjobs", "default", "ciao-old")["metadata"]["uid"]
        owner = {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "name": "ciao-old",
            "uid": uid,
            "controller": True,
        }
        cluster.create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "ciao-old-master-0",
                    "labels": labels_of("ciao-old", 0),
                    "ownerReferences": [owner],
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "pytorch", "image": "python:3.11", "command": p.command}
                    ],
                },
            },
            namespace="default",
        )
        events = backend.get_logs(job)
        seen = []
        for event in events:
            seen.append(event)
            if LogLine("master-0", "from an old operator") in seen:
                break
        CustomObjectsApi(cluster.api_client()).patch_namespaced_custom_object_status(
            "kubeflow.org",
            "v1",
            "default",
            "pytorchjobs",
            "ciao-old",
            {
                "status": {
                    "conditions": [
                        {"type": "Succeeded", "status": "True", "message": "done by hand"}
                    ]
                }
            },
        )
        rest = list(events)
        assert isinstance(rest[-1], JobDone) and rest[-1].succeeded


def test_a_log_line_that_looks_like_json_is_shown_as_the_text_it_is(parts, cluster):
    job = submit(parts, parameter("%master=1\nprint('{\"loss\": 0.5}')", name="ciao-json"))
    _, backend = parts
    assert LogLine("master-0", '{"loss": 0.5}') in list(backend.get_logs(job))
    assert backend.logs(job.name) == [LogLine("master-0", '{"loss": 0.5}')]


def test_logs_after_a_detach_include_what_the_job_wrote_after_it(parts, cluster, tmp_path):
    s2i, followed_only = parts
    backend = KubeflowBackend(followed_only.cluster, run_root=tmp_path / "runs")
    cell = "%master=1\nimport time\nfor i in range(30):\n    print(f'n {i}')\n    time.sleep(0.05)"
    job = submit((s2i, backend), parameter(cell, name="ciao-left"))
    events = backend.get_logs(job)
    for event in events:
        if isinstance(event, LogLine):
            backend.detach(job)
            break
    list(events)
    cluster.wait_for(
        lambda: any(
            c["type"] == "Succeeded" and c["status"] == "True"
            for c in (cluster.get("pytorchjobs", "default", job.name).get("status") or {}).get(
                "conditions", []
            )
        ),
        timeout=30,
    )
    assert backend.logs(job.name, "master-0") == [LogLine("master-0", f"n {i}") for i in range(30)]
    assert backend.logs(job.name, "master-0", tail=2) == [
        LogLine("master-0", "n 28"),
        LogLine("master-0", "n 29"),
    ]


def test_a_job_whose_pods_never_appear_says_the_operator_may_be_missing(tmp_path):
    with FakeCluster(operator=False) as cluster:
        backend = backend_without_operator(cluster, tmp_path)
        p = parameter("%master=1\nprint(1)", name="ciao-alone")
        p.image = "python:3.11"
        job = backend.exec_code(p)
        events = backend.get_logs(job)
        diagnosis = next(e for e in events if not isinstance(e, LogLine))
        assert diagnosis.replica == "job" and diagnosis.reason == "NoPods"
        assert "training operator running" in diagnosis.hint
        backend.cancel(job)
        assert isinstance(list(events)[-1], JobDone)
