"""Kubeflow Trainer v2 on the test cluster, seen through the real `kubernetes` client."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import configmap_mount, torch_runtime, trainjob
from fakecluster.store import WatchEvent
from fakecluster.testing import SLEEP, conditions, connected, finished, owned_by, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(120)
TR = ("trainer.kubeflow.org", "v1alpha1")
JS = ("jobset.x-k8s.io", "v1alpha2")
PRINT_ENV = [
    "python",
    "-u",
    "-c",
    "import json, os, socket; "
    "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('PET_') "
    "or k in ('HOSTNAME', 'JOB_COMPLETION_INDEX')}, sort_keys=True)); "
    "print(socket.gethostbyname(os.environ['PET_MASTER_ADDR']))",
]
ALLREDUCE = """\
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()} sum {t.item():g}", flush=True)
dist.destroy_process_group()
"""


WEBHOOK = 'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request:'


@pytest.fixture(scope="module")
def v2() -> Iterator[FakeCluster]:
    """Trainer v2.3 only; the default torch-distributed runtime plus one without retries.
    The kubelet backs off 0.02 s doubling to 0.1 s (0.2 s to 1.6 s by default) before it
    restarts a failed container: the six restarts of the default runtime's Job in a third
    of a second, not five."""
    runtimes = [torch_runtime(), torch_runtime("torch-once", backoff_limit=0)]
    with FakeCluster(kubeflow=("v2",), runtimes=runtimes, backoff_base=0.02, backoff_cap=0.1) as c:
        yield c


@pytest.fixture(scope="module")
def kube(v2: FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with connected(v2, tmp_path_factory.mktemp("kube") / "config") as k:
        yield k


# -- discovery -----------------------------------------------------------------------------
@pytest.mark.parametrize("installed", [(), ("v1",), ("v2",), ("v1", "v2")])
def test_discovery_lists_exactly_what_is_installed(
    installed: tuple[str, ...], tmp_path: Path
) -> None:
    with (
        FakeCluster(kubeflow=installed, operator=False) as cluster,
        connected(cluster, tmp_path / "kubeconfig") as k,
    ):
        groups = {g.name for g in kubernetes.client.ApisApi(k.api).get_api_versions().groups}
        assert {"batch", "apiextensions.k8s.io"} <= groups
        assert ("kubeflow.org" in groups) == ("v1" in installed)
        assert ("trainer.kubeflow.org" in groups) == ("v2" in installed)
        assert ("jobset.x-k8s.io" in groups) == ("v2" in installed)
        if "v2" in installed:
            resources = {r.name: r for r in k.custom.get_api_resources(*TR).resources}
            assert {
                "trainjobs",
                "trainjobs/status",
                "clustertrainingruntimes",
                "trainingruntimes",
            } <= set(resources)
            assert resources["trainjobs"].namespaced
            assert not resources["clustertrainingruntimes"].namespaced
            runtimes = k.custom.list_cluster_custom_object(*TR, "clustertrainingruntimes")
            assert [r["metadata"]["name"] for r in runtimes["items"]] == ["torch-distributed"]
        else:
            with pytest.raises(ApiException) as exc:
                k.custom.get_api_resources(*TR)
            assert exc.value.status == 404
        if "v1" in installed:
            names = {r.name for r in k.custom.get_api_resources("kubeflow.org", "v1").resources}
            assert {"pytorchjobs", "tfjobs"} <= names


@pytest.mark.parametrize(
    ("release", "field"),
    [
        ("v2.0", "podSpecOverrides"),
        ("v2.1", "podTemplateOverrides"),
        ("v2.2", "runtimePatches"),
        ("v2.3", "runtimePatches"),
    ],
)
def test_openapi_v3_names_the_release_pod_override_field(
    release: str, field: str, tmp_path: Path
) -> None:
    with (
        FakeCluster(kubeflow=("v1", "v2"), trainer_release=release, operator=False) as cluster,
        connected(cluster, tmp_path / "kubeconfig") as k,
    ):

        def get(path: str) -> dict:
            request = k.api.param_serialize("GET", path, auth_settings=["BearerToken"])
            response = k.api.call_api(*request)
            response.read()
            return k.api.response_deserialize(response, {"200": "object"}).data

        paths = get("/openapi/v3")["paths"]
        assert {"api/v1", "apis/batch/v1", "apis/kubeflow.org/v1"} <= set(paths)
        url = paths["apis/trainer.kubeflow.org/v1alpha1"]["serverRelativeURL"]
        assert re.fullmatch(
            r"/openapi/v3/apis/trainer\.kubeflow\.org/v1alpha1\?hash=[0-9A-F]+", url
        )
        doc = get(url)
        assert doc["openapi"] == "3.0.0"
        schema = doc["components"]["schemas"]["org.kubeflow.trainer.v1alpha1.TrainJob"]
        assert schema["x-kubernetes-group-version-kind"] == [
            {"group": "trainer.kubeflow.org", "kind": "TrainJob", "version": "v1alpha1"}
        ]
        spec = schema["properties"]["spec"]["properties"]
        overrides = {"podSpecOverrides", "podTemplateOverrides", "runtimePatches"}
        assert overrides & set(spec) == {field}
        assert {"runtimeRef", "trainer"} <= set(spec)
        assert (
            "org.kubeflow.trainer.v1alpha1.ClusterTrainingRuntime" in doc["components"]["schemas"]
        )
        v1 = get(paths["apis/kubeflow.org/v1"]["serverRelativeURL"])
        assert "org.kubeflow.v1.PyTorchJob" in v1["components"]["schemas"]
        cluster.deny("*", "*")  # discovery stays readable to any authenticated user
        assert get("/openapi/v3/apis/trainer.kubeflow.org/v1alpha1")["components"]
        cluster.allow()
        with pytest.raises(urllib.error.HTTPError) as denied:  # no token
            urllib.request.urlopen(cluster.url + "/openapi/v3")
        assert denied.value.code == 401


# -- what runs -----------------------------------------------------------------------------
def test_three_node_trainjob_pods_names_labels_env(v2: FakeCluster, kube: SimpleNamespace) -> None:
    job = trainjob("three", PRINT_ENV, num_nodes=3, resources={"limits": {"cpu": "2"}})
    job["spec"]["trainer"]["env"] = [{"name": "FOO", "value": "bar"}]
    created = kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", job)
    assert created["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    done = v2.wait_for(lambda: finished(v2, "trainjobs", "three"), 60, "the TrainJob to end")
    complete = conditions(done)["Complete"]
    assert (complete["reason"], complete["message"]) == (
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    assert complete["lastTransitionTime"]
    assert done["status"]["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]

    jobset = kube.custom.get_namespaced_custom_object(*JS, "default", "jobsets", "three")
    ref = jobset["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"]) == (
        "TrainJob",
        "three",
        created["metadata"]["uid"],
    )
    batch = kubernetes.client.BatchV1Api(kube.api)
    jobs = batch.list_namespaced_job(
        "default", label_selector="jobset.sigs.k8s.io/jobset-name=three"
    )
    assert [j.metadata.name for j in jobs.items] == ["three-node-0"]
    bjob = jobs.items[0]
    assert (bjob.spec.completions, bjob.spec.parallelism, bjob.spec.completion_mode) == (
        3,
        3,
        "Indexed",
    )
    assert bjob.metadata.owner_references[0].kind == "JobSet"
    assert bjob.metadata.labels["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert bjob.status.succeeded == 3 and bjob.status.completed_indexes == "0-2"
    assert [c.type for c in bjob.status.conditions] == ["SuccessCriteriaMet", "Complete"]
    svc = kube.core.read_namespaced_service("three", "default")
    assert svc.spec.cluster_ip == "None"
    assert svc.spec.selector == {"jobset.sigs.k8s.io/jobset-name": "three"}

    pods = kube.core.list_namespaced_pod(
        "default", label_selector="jobset.sigs.k8s.io/jobset-name=three"
    ).items
    pods.sort(key=lambda p: p.metadata.labels["batch.kubernetes.io/job-completion-index"])
    assert len(pods) == 3
    for rank, pod in enumerate(pods):
        assert re.fullmatch(rf"three-node-0-{rank}-[a-z0-9]{{5}}", pod.metadata.name)
        labels = pod.metadata.labels
        assert labels["jobset.sigs.k8s.io/jobset-name"] == "three"
        assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
        assert labels["jobset.sigs.k8s.io/job-index"] == "0"
        assert labels["batch.kubernetes.io/job-completion-index"] == str(rank)
        # the ancestor label is the Job template's: JobSet copies only its own to pods
        assert "trainer.kubeflow.org/trainjob-ancestor-step" not in labels
        assert (pod.spec.hostname, pod.spec.subdomain) == (f"three-node-0-{rank}", "three")
        assert pod.spec.restart_policy == "OnFailure"
        assert pod.metadata.owner_references[0].kind == "Job"
        (node,) = pod.spec.containers
        assert node.name == "node"
        assert node.image == "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"
        assert [p.container_port for p in node.ports] == [29500]
        assert node.resources.limits == {"cpu": "2"}
        env = {e.name: e.value for e in node.env}
        assert [e.name for e in node.env] == [
            "FOO",
            "PET_NNODES",
            "PET_NPROC_PER_NODE",
            "PET_NODE_RANK",
            "PET_MASTER_ADDR",
            "PET_MASTER_PORT",
            "JOB_COMPLETION_INDEX",
        ]
        assert env["FOO"] == "bar" and env["PET_NNODES"] == "3"
        assert env["PET_NPROC_PER_NODE"] == "2"  # auto: the CPUs per node
        assert env["PET_MASTER_ADDR"] == "three-node-0-0.three"
        assert env["PET_MASTER_PORT"] == "29500"
        rank_ref = next(e for e in node.env if e.name == "PET_NODE_RANK")
        assert rank_ref.value_from.field_ref.field_path == (
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        )
        printed, address = kube.core.read_namespaced_pod_log(
            pod.metadata.name, "default"
        ).splitlines()
        assert json.loads(printed) == {
            "HOSTNAME": f"three-node-0-{rank}",
            "JOB_COMPLETION_INDEX": str(rank),
            "PET_MASTER_ADDR": "three-node-0-0.three",
            "PET_MASTER_PORT": "29500",
            "PET_NNODES": "3",
            "PET_NODE_RANK": str(rank),
            "PET_NPROC_PER_NODE": "2",
        }
        assert address == pods[0].status.pod_ip  # node 0's DNS name resolves to node 0
    assert len({p.status.pod_ip for p in pods}) == 3
    reasons = [e["reason"] for e in v2.events("default", "three-node-0")]
    assert reasons.count("SuccessfulCreate") == 3 and "Completed" in reasons


@pytest.mark.parametrize("release", ["v2.0", "v2.1", "v2.3"])
def test_code_in_a_configmap_mounted_through_the_release_field(
    release: str, tmp_path: Path
) -> None:
    with (
        FakeCluster(kubeflow=("v2",), trainer_release=release) as cluster,
        connected(cluster, tmp_path / "kubeconfig") as k,
    ):
        code = "import os; print('hello from', os.environ['PET_NODE_RANK'])\n"
        k.core.create_namespaced_config_map(
            "default", {"metadata": {"name": "code"}, "data": {"main.py": code}}
        )
        job = trainjob(
            "mounted",
            ["python", "/opt/ciao/main.py"],
            num_nodes=2,
            **configmap_mount(release, "code", "/opt/ciao"),
        )
        made = k.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", job, field_validation="Strict"
        )
        field = next(iter(configmap_mount(release, "c", "/p")))
        assert made["spec"][field]
        if release == "v2.3":
            assert made["spec"]["runtimePatches"][0]["time"]  # set by the defaulting webhook
        cluster.wait_for(
            lambda: finished(cluster, "trainjobs", "mounted"), 60, "the TrainJob to end"
        )
        assert conditions(cluster.get("trainjobs", "default", "mounted"))["Complete"]
        pods = cluster.trainjob_pods("mounted")
        assert [cluster.logs("default", p["metadata"]["name"]) for p in pods] == [
            "hello from 0\n",
            "hello from 1\n",
        ]
        volumes = {v["name"]: v for v in pods[0]["spec"]["volumes"]}
        assert volumes["code"]["configMap"]["name"] == "code"
        mounts = pods[0]["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "code", "mountPath": "/opt/ciao"} in mounts

        # another release's field: dropped silently, or a 400 with Strict
        other = "v2.3" if release != "v2.3" else "v2.1"
        wrong = trainjob("wrong", SLEEP, **configmap_mount(other, "code", "/opt/ciao"))
        wrong_field = next(iter(configmap_mount(other, "c", "/p")))
        with pytest.raises(ApiException) as exc:
            k.custom.create_namespaced_custom_object(
                *TR, "default", "trainjobs", wrong, field_validation="Strict"
            )
        assert exc.value.status == 400
        assert status_of(exc.value)["message"] == (
            'TrainJob in version "v1alpha1" cannot be handled as a TrainJob: strict decoding '
            f'error: unknown field "spec.{wrong_field}"'
        )
        kept = k.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", wrong)
        assert wrong_field not in kept["spec"]
        assert wrong_field not in cluster.get("trainjobs", "default", "wrong")["spec"]


# -- admission -----------------------------------------------------------------------------
def test_reserved_pet_env_and_bad_names_are_refused(kube: SimpleNamespace) -> None:
    job = trainjob("pet", SLEEP, env={"PET_NNODES": "5", "OK": "1", "PET_MASTER_PORT": "1"})
    with pytest.raises(ApiException) as exc:
        kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", job)
    assert exc.value.status == 403
    assert status_of(exc.value)["reason"] == "Forbidden"
    message = status_of(exc.value)["message"]
    assert message.startswith(
        f'{WEBHOOK} spec.trainer.env: Invalid value: []v1.EnvVar{{v1.EnvVar{{Name:"PET_NNODES"'
    )
    assert message.endswith(
        ": must not have reserved envs, invalid envs configured: [PET_MASTER_PORT PET_NNODES]"
    )

    with pytest.raises(ApiException) as exc:
        kube.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", trainjob("1bad", SLEEP)
        )
    assert exc.value.status == 422
    assert status_of(exc.value)["message"] == (
        'TrainJob.trainer.kubeflow.org "1bad" is invalid: <nil>: Invalid value: "object": '
        "metadata.name must match RFC 1035 DNS label format"
    )
    with pytest.raises(ApiException) as exc:
        kube.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", trainjob("kind", SLEEP, runtime_kind="Runtime")
        )
    assert status_of(exc.value)["message"] == (
        'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: '
        "unsupported runtime: Runtime.trainer.kubeflow.org"
    )
    patch = configmap_mount("v2.3", "code", "/opt/ciao", job="launcher")
    with pytest.raises(ApiException) as exc:
        kube.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", trainjob("target", SLEEP, **patch)
        )
    assert status_of(exc.value)["message"].endswith(
        ": must not have replicated job that doesn't exist in the runtime job template"
    )


def test_runtime_not_found(v2: FakeCluster, kube: SimpleNamespace, tmp_path: Path) -> None:
    lost = trainjob("lost", SLEEP, runtime="no-such-runtime")
    with pytest.raises(ApiException) as exc:
        kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", lost)
    assert exc.value.status == 403
    message = status_of(exc.value)["message"]
    assert message.startswith(f"{WEBHOOK} spec.RuntimeRef: Invalid value: v1alpha1.RuntimeRef{{")
    assert message.endswith(
        ': clustertrainingruntimes.trainer.kubeflow.org "no-such-runtime" not found: '
        "specified clusterTrainingRuntime must be created before the TrainJob is created"
    )

    with (
        FakeCluster(kubeflow=("v2",), missing_runtime="admit") as lenient,
        connected(lenient, tmp_path / "kubeconfig") as k,
    ):
        k.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", trainjob("lost", SLEEP, runtime="no-such-runtime")
        )
        (event,) = lenient.wait_for(
            lambda: lenient.events("default", "lost", "TrainJobResourcesCreationFailed"), 20
        )
        assert event["type"] == "Warning"
        assert event["message"] == (
            "TrainJob resources reconciliation failed: not found ClusterTrainingRuntime "
            "specified in TrainJob: clustertrainingruntimes.trainer.kubeflow.org "
            '"no-such-runtime" not found'
        )
        job = lenient.get("trainjobs", "default", "lost")
        assert not (job.get("status") or {}).get("conditions")  # upstream retries, no condition
        assert lenient.get("jobsets", "default", "lost") is None


# -- failure, deletion, faults -------------------------------------------------------------
def test_a_failing_node_fails_the_trainjob(v2: FakeCluster, kube: SimpleNamespace) -> None:
    fail_rank_1 = [
        "python",
        "-c",
        "import os, sys, time; r = os.environ['PET_NODE_RANK']; print('rank', r, flush=True); "
        "sys.exit(3) if r == '1' else time.sleep(60)",
    ]
    seen: dict[str, int] = {}

    def watch(ev: WatchEvent) -> None:
        if ev.resource == "pods" and ev.obj["metadata"]["name"].startswith("bad-node-0-1-"):
            for cs in ev.obj.get("status", {}).get("containerStatuses") or []:
                term = cs.get("lastState", {}).get("terminated") or cs["state"].get("terminated")
                if term:
                    seen["exit"] = term["exitCode"]

    v2.store.add_listener(watch)
    job = trainjob("bad", fail_rank_1, num_nodes=2, runtime="torch-once")
    kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", job)
    done = v2.wait_for(lambda: finished(v2, "trainjobs", "bad"), 60, "the TrainJob to fail")
    failed = conditions(done)["Failed"]
    assert (failed["reason"], failed["message"]) == (
        "FailedJobs",
        "jobset failed due to one or more job failures (first failed job: bad-node-0)",
    )
    assert done["status"]["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 0, "failed": 1, "active": 0, "suspended": 0}
    ]
    assert seen["exit"] == 3
    job_conds = conditions(v2.get("jobs", "default", "bad-node-0"))
    assert job_conds["Failed"]["reason"] == "BackoffLimitExceeded"
    assert job_conds["Failed"]["message"] == "Job has reached the specified backoff limit"
    # the Job controller deleted the active pods (rank 0 still sleeping, rank 1 restarting)
    v2.wait_for(lambda: not v2.trainjob_pods("bad"), 20, "the pods to go")
    assert v2.events("default", "bad", "FailedJobs")


def test_default_runtime_retries_in_place_up_to_the_job_backoff_limit(
    v2: FakeCluster, kube: SimpleNamespace
) -> None:
    restarts: list[int] = []

    def watch(ev: WatchEvent) -> None:
        if ev.resource == "pods" and ev.obj["metadata"]["name"].startswith("retry-node-0-0-"):
            for cs in ev.obj.get("status", {}).get("containerStatuses") or []:
                restarts.append(cs["restartCount"])

    v2.store.add_listener(watch)
    job = trainjob("retry", ["python", "-c", "raise SystemExit(2)"], num_nodes=1)
    kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", job)
    v2.wait_for(lambda: finished(v2, "trainjobs", "retry"), 60, "the TrainJob to fail")
    assert v2.get("jobs", "default", "retry-node-0")["spec"]["backoffLimit"] == 6
    assert max(restarts) == 6  # the batch/v1 default: the runtime sets none


def test_foreground_delete_leaves_nothing(v2: FakeCluster, kube: SimpleNamespace) -> None:
    made = kube.custom.create_namespaced_custom_object(
        *TR, "default", "trainjobs", trainjob("gone", SLEEP, num_nodes=2)
    )
    kube.core.create_namespaced_config_map("default", owned_by(made, "gone-code"))
    v2.wait_for(
        lambda: len([k for k in v2.pod_processes() if k.startswith("default/gone-")]) == 2,
        30,
        "both nodes running",
    )
    answer = kube.custom.delete_namespaced_custom_object(
        *TR, "default", "trainjobs", "gone", propagation_policy="Foreground"
    )
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    v2.wait_for(lambda: v2.get("trainjobs", "default", "gone") is None, 30, "the TrainJob gone")
    # foreground all the way down: the TrainJob goes last
    assert v2.trainjob_pods("gone") == []
    assert v2.get("jobsets", "default", "gone") is None
    assert v2.get("jobs", "default", "gone-node-0") is None
    v2.wait_for(lambda: v2.get("configmaps", "default", "gone-code") is None, 20, "the ConfigMap")
    v2.wait_for(lambda: v2.get("services", "default", "gone") is None, 20, "the Service")
    assert not [k for k in v2.pod_processes() if k.startswith("default/gone-")]


def test_faults_match_trainjob_pods(v2: FakeCluster, kube: SimpleNamespace) -> None:
    fault = v2.inject("unschedulable", resource="nvidia.com/gpu", job="stuck")
    kube.custom.create_namespaced_custom_object(
        *TR, "default", "trainjobs", trainjob("stuck", SLEEP, num_nodes=2)
    )
    pods = v2.wait_for(lambda: len(v2.trainjob_pods("stuck")) == 2 and v2.trainjob_pods("stuck"))
    for pod in pods:
        events = v2.wait_for(
            lambda p=pod: v2.events(involved=p["metadata"]["name"], reason="FailedScheduling")
        )
        assert events[0]["message"] == (
            "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
            " preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        )
    fault.cancel()
    oom = v2.inject("oom", job="stuck", replica_type="node", pod="stuck-node-0-1-*")
    v2.wait_for(lambda: oom.fired, 30, "the OOM kill of node 1")
    kube.custom.delete_namespaced_custom_object(
        *TR, "default", "trainjobs", "stuck", propagation_policy="Foreground"
    )
    v2.wait_for(lambda: v2.get("trainjobs", "default", "stuck") is None, 30)


# -- torchrun ------------------------------------------------------------------------------
def test_torchrun_two_nodes_gloo_allreduce(v2: FakeCluster, kube: SimpleNamespace) -> None:
    pytest.importorskip("torch")
    kube.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "ddp"}, "data": {"train.py": ALLREDUCE}}
    )
    for name in ("ddp-a", "ddp-b"):  # two at once: each has its own port 29500
        job = trainjob(
            name,
            ["torchrun", "/code/train.py"],
            num_nodes=2,
            num_proc_per_node=1,
            **configmap_mount("v2.3", "ddp", "/code"),
        )
        kube.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", job, field_validation="Strict"
        )
    for name in ("ddp-a", "ddp-b"):
        done = v2.wait_for(lambda n=name: finished(v2, "trainjobs", n), 90, f"{name} to end")
        assert "Complete" in conditions(done), done["status"]
        logs = [v2.logs("default", p["metadata"]["name"]) for p in v2.trainjob_pods(name)]
        assert "rank 0 of 2 sum 3" in logs[0].splitlines()
        assert "rank 1 of 2 sum 3" in logs[1].splitlines()


def test_torchrun_without_torch_fails_to_start(tmp_path: Path) -> None:
    with FakeCluster(
        kubeflow=("v2",), torchrun=False, runtimes=[torch_runtime(backoff_limit=0)]
    ) as c:
        c.create("trainjobs", trainjob("notorch", ["torchrun", "train.py"]))
        c.wait_for(lambda: finished(c, "trainjobs", "notorch"), 30, "the TrainJob to fail")
        starts = [
            e["message"] for e in c.events("default", reason="Failed") if "torchrun" in e["message"]
        ]
        assert starts[0] == (
            "Error: failed to create containerd task: failed to create shim task: OCI runtime "
            "create failed: runc create failed: unable to start container process: exec: "
            '"torchrun": executable file not found in $PATH: unknown'
        )


def test_validate_trainjob_without_a_server() -> None:
    from fakecluster import validate_trainjob

    good = trainjob("ok", SLEEP, num_nodes=2, **configmap_mount("v2.1", "code", "/opt/ciao"))
    assert validate_trainjob(good, "v2.1") == []
    problems = validate_trainjob(good, "v2.3")
    assert problems == ['unknown field "spec.podTemplateOverrides"']
    assert validate_trainjob(good, "v2.3", strict=False) == []
    bad = trainjob("1bad", SLEEP, env={"PET_NODE_RANK": "0"}, num_proc_per_node="many")
    problems = validate_trainjob(bad, "v2.1")
    assert '<nil>: Invalid value: "object": metadata.name must match RFC 1035 DNS label format' in (
        problems
    )
    assert any(p.startswith("spec.trainer.env: Invalid value: []v1.EnvVar{") for p in problems)
    assert any(
        p.endswith("must have an int value or [auto cpu gpu]")
        and p.startswith("spec.trainer.numProcPerNode: Invalid value: intstr.IntOrString{")
        for p in problems
    )


def test_kueue_holds_a_queued_trainjob_until_admitted(v2: FakeCluster, kube: SimpleNamespace):
    queued = trainjob("queued", SLEEP)
    queued["metadata"]["labels"] = {"kueue.x-k8s.io/queue-name": "q"}
    with v2.kueue() as kueue:
        kube.custom.create_namespaced_custom_object(*TR, "default", "trainjobs", queued)
        kube.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", trainjob("free", SLEEP)
        )
    assert kueue.queued == [("trainjobs", "default", "queued")]
    assert v2.get("trainjobs", "default", "queued")["spec"]["suspend"] is True
    assert not v2.get("trainjobs", "default", "free")["spec"].get("suspend")
    v2.wait_for(lambda: conditions(v2.get("trainjobs", "default", "queued"))["Suspended"])
    assert v2.trainjob_pods("queued") == []
    kueue.admit("trainjobs", "default", "queued")
    v2.wait_for(lambda: len(v2.trainjob_pods("queued")) == 1, 20, "the admitted job's pod")
    for name in ("queued", "free"):
        v2.delete("trainjobs", "default", name, propagation="Foreground")
