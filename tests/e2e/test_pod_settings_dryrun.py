"""The issue's example through the kernel: a config profile `gpu` (a GPU pool's label and
taint) and a cell with a dataset claim, a Secret's token and 8 GiB of /dev/shm `%dryrun`s on
the Training Operator v1 and Kubeflow Trainer v2.0, v2.1 and v2.3; every document the cell
shows is then created on the test cluster with strict field validation (an unknown or
misplaced field is refused, not dropped), so what %dryrun shows is what the API accepts.
What a release cannot carry is an error before anything is built or created."""

from __future__ import annotations

import pytest
import yaml
from fakecluster import FakeCluster
from fakecluster.testing import connected
from kernel_client import kubeflow_env, run, running_kernel

pytestmark = pytest.mark.timeout(120)

PROFILES = """\
profiles:
  gpu:
    nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}
    tolerations: ["nvidia.com/gpu:NoSchedule"]
"""
CELL = """\
%profile=gpu
%nodes=2
%volume=pvc:datasets:/data:ro
%env=TOKEN=secret:hf/token
%shm=8Gi
print("training")
"""


@pytest.fixture(scope="module", params=["v1", "v2.0", "v2.1", "v2.3"])
def release(request):
    return request.param


@pytest.fixture(scope="module")
def cluster(release):
    installed = ("v1",) if release == "v1" else ("v2",)
    with FakeCluster(
        namespaces=("team",),
        kubeflow=installed,
        trainer_release=("v2.3" if release == "v1" else release),
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def kernel(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("pod-settings")
    with running_kernel(env=kubeflow_env(cluster, home, extra=PROFILES)) as (km, kc):
        yield kc, home


def shown_documents(messages: list[dict]) -> list[dict]:
    (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
    return [d for d in yaml.safe_load_all(result["content"]["data"]["text/plain"]) if d]


def test_the_dryrun_shows_documents_the_api_accepts_strictly(cluster, kernel, release):
    kc, home = kernel
    content, messages = run(kc, "%dryrun\n" + CELL)
    assert content["status"] == "ok", content
    documents = shown_documents(messages)
    (job,) = [d for d in documents if d["kind"] != "ConfigMap"]
    assert job["kind"] == ("PyTorchJob" if release == "v1" else "TrainJob")
    text = yaml.safe_dump(job)
    for landed in ("claimName: datasets", "medium: Memory", "sizeLimit: 8Gi", "secretKeyRef"):
        assert landed in text, (landed, text)
    assert "nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3" in text
    assert cluster.list("configmaps", "team") == []  # a dry run creates nothing
    with connected(cluster, home / "strict-kubeconfig", namespace="team") as kube:
        for document in documents:
            if document["kind"] == "ConfigMap":
                kube.core.create_namespaced_config_map("team", document, field_validation="Strict")
                continue
            group, version = document["apiVersion"].split("/")
            plural = document["kind"].lower() + "s"
            kube.custom.create_namespaced_custom_object(
                group, version, "team", plural, document, field_validation="Strict"
            )
            kube.custom.delete_namespaced_custom_object(
                group, version, "team", plural, document["metadata"]["name"]
            )
        for document in documents:
            if document["kind"] == "ConfigMap":
                kube.core.delete_namespaced_config_map(document["metadata"]["name"], "team")


def test_a_setting_the_release_cannot_carry_is_refused_before_anything_is_made(
    cluster, kernel, release
):
    if release != "v2.0":
        pytest.skip("v1, v2.1 and later carry imagePullSecrets")
    kc, _ = kernel
    content, _ = run(kc, "%imagePullSecret=regcred\n" + CELL)
    assert content["status"] == "error"
    error = content["evalue"]
    assert "%imagePullSecret=regcred (line 1)" in error and "v2.0" in error, error
    assert "kubectl patch serviceaccount" in error and "%serviceAccount" in error, error
    assert cluster.list("trainjobs", "team") == [] and cluster.list("configmaps", "team") == []
