"""A TrainJob's pod settings through each Trainer release's override field, as upstream's
CRDs accept them and its controller merges them: the pods carry the volumes, mounts,
nodeSelector, tolerations (and, where the release has them, pull secrets, affinity and
securityContext), and run with them on a tainted GPU node."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakecluster import FakeCluster, validate_trainjob
from fakecluster.jobs import pod_override, trainjob
from fakecluster.testing import conditions, connected, finished, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(90)

TR = ("trainer.kubeflow.org", "v1alpha1")
GPU = "nvidia.com/gpu"
H100 = "NVIDIA-H100-80GB-HBM3"
NODES = [
    {"name": "cpu-1"},
    {
        "name": "gpu-1",
        "labels": {"nvidia.com/gpu.product": H100},
        "taints": [{"key": GPU, "effect": "NoSchedule"}],
        "capacity": {GPU: "8"},
    },
]
SCRIPT = (
    "import os, shutil\n"
    "print(os.environ['TOKEN'], open('/data/x').read(), shutil.disk_usage('/dev/shm').total)\n"
)


def settings(release: str) -> dict:
    """Every setting the release's override field can carry."""
    spec: dict = {
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
        ],
        "containers": [
            {
                "name": "node",
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data", "readOnly": True},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "nodeSelector": {"nvidia.com/gpu.product": H100},
        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "trainer",
    }
    if release != "v2.0":
        spec["imagePullSecrets"] = [{"name": "regcred"}]
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "nvidia.com/gpu.product", "operator": "Exists"}
                            ]
                        }
                    ]
                }
            }
        }
    if release == "v2.3":
        spec["securityContext"] = {"fsGroup": 1000}
    metadata = {"labels": {"team": "nlp"}} if release != "v2.0" else None
    return pod_override(release, spec, metadata)


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[FakeCluster]:
    with FakeCluster(kubeflow=("v2",), trainer_release=request.param, nodes=NODES) as c:
        c.create("serviceaccounts", {"metadata": {"name": "trainer"}})
        token = base64.b64encode(b"hf_abc").decode()
        c.create("secrets", {"metadata": {"name": "hf"}, "data": {"token": token}})
        c.create_claim("datasets", access_modes=("ReadOnlyMany",))
        (c.claim_path("datasets") / "x").write_text("rows")
        yield c


@pytest.mark.parametrize("cluster", ["v2.0", "v2.1", "v2.3"], indirect=True)
def test_the_release_field_carries_the_pod_settings_to_the_pods(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    release = cluster.trainer_release
    job = trainjob("tuned", ["python", "-c", SCRIPT], num_nodes=2, **settings(release))
    job["spec"]["trainer"]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    ]
    assert validate_trainjob(job, release) == []
    with connected(cluster, tmp_path / "config") as k:
        k.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", job, field_validation="Strict"
        )
    cluster.wait_for(lambda: finished(cluster, "trainjobs", "tuned"), 60, "the TrainJob to end")
    assert conditions(cluster.get("trainjobs", "default", "tuned"))["Complete"]["status"] == "True"
    pods = cluster.trainjob_pods("tuned")
    assert [cluster.logs("default", p["metadata"]["name"]) for p in pods] == [
        f"hf_abc rows {8 * 1024**3}\n"
    ] * 2
    spec = pods[0]["spec"]
    assert spec["nodeName"] == "gpu-1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": H100}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["serviceAccountName"] == "trainer"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
    node = next(c for c in spec["containers"] if c["name"] == "node")
    assert {"name": "dshm", "mountPath": "/dev/shm"} in node["volumeMounts"]
    token = next(e for e in node["env"] if e["name"] == "TOKEN")
    assert token["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    if release != "v2.0":
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        assert "nodeAffinity" in spec["affinity"]
        assert pods[0]["metadata"]["labels"]["team"] == "nlp"
    if release == "v2.3":
        assert spec["securityContext"] == {"fsGroup": 1000}


@pytest.mark.parametrize(
    ("cluster", "field"),
    [
        ("v2.0", "podSpecOverrides[0].imagePullSecrets"),
        ("v2.1", "podTemplateOverrides[0].spec.securityContext"),
    ],
    indirect=["cluster"],
)
def test_what_a_release_cannot_carry_is_an_unknown_field(
    cluster: FakeCluster, field: str, tmp_path: Path
) -> None:
    release = cluster.trainer_release
    extra = (
        {"imagePullSecrets": [{"name": "regcred"}]}
        if release == "v2.0"
        else {"securityContext": {"fsGroup": 1000}}
    )
    job = trainjob("refused", ["true"], **pod_override(release, extra))
    assert validate_trainjob(job, release) == [f'unknown field "spec.{field}"']
    with connected(cluster, tmp_path / "config") as k, pytest.raises(ApiException) as refused:
        k.custom.create_namespaced_custom_object(
            *TR, "default", "trainjobs", job, field_validation="Strict"
        )
    assert status_of(refused.value)["message"] == (
        'TrainJob in version "v1alpha1" cannot be handled as a TrainJob: strict decoding '
        f'error: unknown field "spec.{field}"'
    )


@pytest.mark.parametrize("cluster", ["v2.1"], indirect=True)
def test_tolerations_are_replaced_as_a_strategic_merge_replaces_them(cluster: FakeCluster) -> None:
    """Tolerations have no merge key: the override's list replaces the runtime's."""
    runtime = cluster.get("clustertrainingruntimes", None, "torch-distributed")
    assert runtime is not None
    rjob = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]
    rjob["template"]["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "b", "operator": "Exists"}
    ]
    mine = [{"key": "a", "operator": "Exists"}]
    job = trainjob("tol", ["true"], **pod_override("v2.1", {"tolerations": mine}))
    built = cluster.trainer.build_jobset(
        {**job, "metadata": {"name": "tol", "namespace": "default", "uid": "u"}}, runtime
    )
    pod_spec = built["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod_spec["tolerations"] == mine
