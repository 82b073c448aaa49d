"""The Kubeflow backend against the test cluster, below the kernel: submission edge cases."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import pytorchjob
from shipping import ship

from ciao.backend.kubeflow.backend import KubeflowBackend
from ciao.backend.kubeflow.client import connect
from ciao.backend.kubeflow.plan import KubeflowPlan
from ciao.backend.types import Event, Idle, JobDone, LogLine
from ciao.config import KubeflowConfig, parse_config
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter, RoleSpec
from ciao.s2i.configmap import ConfigMapCode
from ciao.s2i.types import Shipment

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def parts(cluster, tmp_path):
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = parse_config({"backend": "kubeflow", "kubeconfig": str(kubeconfig)}, None)
    yield ConfigMapCode(config.images), KubeflowBackend(connect(config))
    cluster.allow()
    for resource in ("pytorchjobs", "configmaps"):
        for obj in cluster.list(resource, "default"):
            cluster.delete(resource, "default", obj["metadata"]["name"], propagation="Foreground")
    cluster.wait_for(lambda: cluster.list("pytorchjobs", "default") == [], timeout=20)


def backend_without_operator(cluster, tmp_path) -> KubeflowBackend:
    """A backend on a cluster with no training operator: pods come only from the test."""
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    kube = connect(parse_config({"kubeconfig": str(kubeconfig)}, None))
    return KubeflowBackend(kube, settings=KubeflowConfig(no_pods_after=0.3))


def parameter(cell: str, name: str = "ciao-tests") -> Parameter:
    return MagicInterpreter(name_factory=lambda: name).preprocess(cell)


def plan_of(parts, p: Parameter) -> KubeflowPlan:
    """Phase 2 (the configmap provider), then the backend's plan: what `%dryrun` shows."""
    s2i, backend = parts
    return backend.dry_run(p, ship(s2i, p))


def submit(parts, p: Parameter):
    _, backend = parts
    return backend.exec_code(plan_of(parts, p))


def events_of(backend: KubeflowBackend, job) -> Iterator[Event]:
    """The job's events as the kernel renders them (without the IDLE ticks)."""
    return (e for e in backend.get_logs(job) if not isinstance(e, Idle))


def names(cluster, resource: str) -> list[str]:
    return sorted(obj["metadata"]["name"] for obj in cluster.list(resource, "default"))


def test_a_webhook_rejection_is_shown_verbatim_and_the_configmap_is_deleted(parts, cluster):
    p = parameter("%framework=pytorch\n%master=1\nprint(1)")
    # what the interpreter refuses, the webhook too
    p = dataclasses.replace(p, roles={"master": RoleSpec("master", 2)})
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
    events = list(events_of(backend, second))
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
    p = dataclasses.replace(p, code="x = '" + "a" * 1_100_000 + "'")
    with pytest.raises(BackendError, match="more than a ConfigMap holds"):
        submit(parts, p)
    assert cluster.list("configmaps", "default") == []


# --- the plan is what is sent, whatever happens -------------------------------------------------


def posted(backend: KubeflowBackend, monkeypatch) -> list[dict]:
    """The body of every POST the backend makes, as it leaves the client."""
    bodies: list[dict] = []
    request = backend.cluster.request

    def spy(method, path, query=None, body=None, **options):
        if method == "POST":
            bodies.append(copy.deepcopy(body))
        return request(method, path, query, body, **options)

    monkeypatch.setattr(backend.cluster, "request", spy)
    return bodies


def without_server_defaults(spec: dict) -> dict:
    """`spec` as the client sent it: without what the API server fills in (a port's
    protocol, TCP)."""
    spec = copy.deepcopy(spec)
    for replica in spec["pytorchReplicaSpecs"].values():
        for container in replica["template"]["spec"]["containers"]:
            for port in container.get("ports", []):
                if port.get("protocol") == "TCP":
                    del port["protocol"]
    return spec


def test_exec_code_sends_exactly_the_plan_that_dry_run_showed(parts, cluster, monkeypatch):
    p = parameter("%master=1\n%worker=1\n%requirements=pip\nprint(1)", name="ciao-planned")
    plan = plan_of(parts, p)
    shown = copy.deepcopy(plan.documents())
    _, backend = parts
    sent = posted(backend, monkeypatch)

    job = backend.exec_code(plan)

    assert job.name == plan.name
    assert sent == [*plan.objects, plan.job], "the ConfigMap first, then the job, as planned"
    assert plan.documents() == shown, "submitting does not edit the plan"
    stored_job = cluster.get("pytorchjobs", "default", plan.name)
    assert without_server_defaults(stored_job["spec"]) == plan.job["spec"]
    for key in ("labels", "annotations"):
        assert stored_job["metadata"][key] == plan.job["metadata"][key]
    (config_map,) = plan.objects
    stored_config_map = cluster.get("configmaps", "default", plan.config_map)
    assert stored_config_map["data"] == config_map["data"]
    assert stored_config_map["metadata"]["labels"] == config_map["metadata"]["labels"]
    assert names(cluster, "pytorchjobs") == [plan.name]
    assert names(cluster, "configmaps") == [plan.config_map]


def existing(taken: str) -> tuple[str, dict]:
    """Someone else's object with the plan's job name, or with its ConfigMap's name."""
    if taken == "job":
        return "pytorchjobs", pytorchjob("ciao-clash", ["python", "-c", "pass"], workers=0)
    config_map = {"metadata": {"name": "ciao-clash-code"}, "data": {"theirs": "1"}}
    return "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", **config_map}


@pytest.mark.parametrize("taken", ["job", "configmap"])
def test_a_taken_name_renames_the_whole_plan_and_leaves_nothing_of_the_first_name(
    parts, cluster, taken
):
    plan = plan_of(parts, parameter("%master=1\nprint(1)", name="ciao-clash"))
    resource, obj = existing(taken)
    theirs = cluster.create(resource, obj, namespace="default")
    _, backend = parts

    job = backend.exec_code(plan)

    assert job.name != "ciao-clash" and job.name.startswith("ciao-")
    renamed = plan.renamed(job.name)
    stored = cluster.get("pytorchjobs", "default", job.name)["spec"]
    assert without_server_defaults(stored) == renamed.job["spec"]
    assert (
        cluster.get("configmaps", "default", renamed.config_map)["data"]
        == (plan.objects[0]["data"])
    )
    # of the first name, only the object that was there before: untouched, not adopted
    assert names(cluster, "pytorchjobs") == sorted(
        [job.name, *(["ciao-clash"] if taken == "job" else [])]
    )
    assert names(cluster, "configmaps") == sorted(
        [renamed.config_map, *(["ciao-clash-code"] if taken == "configmap" else [])]
    )
    still = cluster.get(resource, "default", theirs["metadata"]["name"])
    assert still["metadata"]["uid"] == theirs["metadata"]["uid"]
    assert not still["metadata"].get("ownerReferences")


@pytest.mark.parametrize(
    "verb, resource",
    [("create", "pytorchjobs"), ("patch", "configmaps")],
    ids=["the-job-is-refused", "the-configmap-cannot-be-handed-to-the-job"],
)
def test_a_failed_submission_leaves_nothing_behind(parts, cluster, verb, resource):
    plan = plan_of(parts, parameter("%master=1\nprint(1)", name="ciao-refused"))
    _, backend = parts
    rule = cluster.deny(verb, resource)
    try:
        with pytest.raises(BackendError, match="forbidden"):
            backend.exec_code(plan)
    finally:
        cluster.allow(rule)

    assert names(cluster, "configmaps") == []
    # a job that was created is deleted in the foreground: gone once its pods are
    cluster.wait_for(lambda: names(cluster, "pytorchjobs") == [], message="no job")


def test_choosing_the_backend_connects_only_when_the_cluster_is_needed_and_once(parts):
    _, connected = parts
    connections = []

    def connect_now():
        connections.append(connected.cluster)
        return connected.cluster

    backend = KubeflowBackend(connect_now)
    assert connections == []
    backend.jobs()
    backend.jobs()
    assert len(connections) == 1


def test_jobs_lists_a_submitted_job_with_its_replicas_and_owner(parts):
    p = parameter("%master=1\n%worker=2\nprint(1)", name="ciao-listed")
    job = submit(parts, dataclasses.replace(p, owner={"kernel-id": "k1"}))
    _, backend = parts

    (info,) = backend.jobs()

    assert (info.name, info.framework, info.backend) == (job.name, "pytorch", "kubeflow")
    assert info.replicas == {"master": 1, "worker": 2}
    assert info.owner == {"kernel-id": "k1"}


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
        command = ("python", "-c", "print('from an old operator')")
        job = backend.exec_code(backend.dry_run(p, Shipment("python:3.11", command=command)))
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
                        {"name": "pytorch", "image": "python:3.11", "command": list(command)}
                    ],
                },
            },
            namespace="default",
        )
        events = events_of(backend, job)
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
    assert LogLine("master-0", '{"loss": 0.5}') in list(events_of(backend, job))
    assert list(backend.logs(job.name)) == [LogLine("master-0", '{"loss": 0.5}')]


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
    assert list(backend.logs(job.name, "master-0")) == [
        LogLine("master-0", f"n {i}") for i in range(30)
    ]
    assert list(backend.logs(job.name, "master-0", tail=2)) == [
        LogLine("master-0", "n 28"),
        LogLine("master-0", "n 29"),
    ]


def succeeded(cluster, name: str) -> bool:
    status = cluster.get("pytorchjobs", "default", name).get("status") or {}
    return any(
        c["type"] == "Succeeded" and c["status"] == "True" for c in status.get("conditions", [])
    )


def test_metrics_come_from_the_record_once_followed_to_the_end_else_from_the_pods(
    parts, cluster, tmp_path
):
    s2i, followed_only = parts
    backend = KubeflowBackend(followed_only.cluster, run_root=tmp_path / "runs")
    cell = "%master=1\nfor epoch in range(1, 11):\n    print(f'epoch={epoch} loss={1 / epoch}')"
    job = submit((s2i, backend), parameter(cell, name="ciao-followed"))
    assert isinstance(list(events_of(backend, job))[-1], JobDone)
    assert (tmp_path / "runs" / job.name / "metrics.json").is_file()
    cluster.delete("pytorchjobs", "default", job.name, propagation="Foreground")
    cluster.wait_for(lambda: job.name not in names(cluster, "pytorchjobs"), timeout=20)
    loss = backend.metrics(job.name).of("loss", "master-0")  # the pods are gone
    assert (loss.count, loss.min, loss.latest) == (10, 0.1, 0.1)

    job = submit((s2i, backend), parameter(cell, name="ciao-detached"))
    events = backend.get_logs(job)
    for event in events:
        if isinstance(event, LogLine):
            backend.detach(job)
            break
    list(events)
    cluster.wait_for(lambda: succeeded(cluster, job.name), timeout=30)
    epoch = backend.metrics(job.name).of("epoch", "master-0")  # its record stops early
    assert [value for _, value in epoch.history()] == [float(n) for n in range(1, 11)]
    with pytest.raises(BackendError, match="no job 'ciao-nosuch'"):
        backend.metrics("ciao-nosuch")


def test_a_job_whose_pods_never_appear_says_the_operator_may_be_missing(tmp_path):
    with FakeCluster(operator=False) as cluster:
        backend = backend_without_operator(cluster, tmp_path)
        p = parameter("%master=1\nprint(1)", name="ciao-alone")
        job = backend.exec_code(backend.dry_run(p, Shipment("python:3.11")))
        events = events_of(backend, job)
        diagnosis = next(e for e in events if not isinstance(e, LogLine))
        assert diagnosis.replica == "job" and diagnosis.reason == "NoPods"
        assert "training operator running" in diagnosis.hint
        backend.cancel(job)
        assert isinstance(list(events)[-1], JobDone)


def test_a_failed_replicas_last_lines_written_before_an_attach_are_in_its_verdict(
    parts, cluster, tmp_path
):
    """Followed, detached, attached again before it fails: no line is delivered twice,
    and the verdict still carries the replica's last lines, from the record of the first
    follow."""
    s2i, followed_only = parts
    backend = KubeflowBackend(followed_only.cluster, run_root=tmp_path / "runs")
    go = tmp_path / "fail now"
    cell = (  # its restarts (up to the backoff limit) write nothing
        f"%master=1\nimport os, sys, time\nif not os.path.exists({str(go)!r}):\n"
        "    for i in range(30):\n        print(f'n {i}', flush=True)\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\nsys.exit(3)"
    )
    job = submit((s2i, backend), parameter(cell, name="ciao-fails"))
    events = backend.get_logs(job)
    for event in events:
        if event == LogLine("master-0", "n 29"):
            backend.detach(job)
    assert not any(isinstance(e, JobDone) for e in events), "detached before its end"

    attached = backend.attach(job.name)
    go.touch()
    after = list(events_of(backend, attached))

    assert attached.resumed and not any(isinstance(e, LogLine) for e in after), after
    done = after[-1]
    assert isinstance(done, JobDone) and (done.failed_replica, done.exit_code) == ("master-0", 3)
    assert done.tail == tuple(f"n {i}" for i in range(10, 30))
