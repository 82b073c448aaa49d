"""Pod settings on a cluster with a GPU node pool, through the kernel (the issue's "done
when"): a cell with `%profile=gpu`, a read-only dataset claim, a token from a Secret and
8 GiB of /dev/shm runs on the tainted GPU nodes, every replica reading the claim, the token
and a /dev/shm of 8G; and what is wrong with a cluster's settings is one line in the cell,
with what to do: a claim that does not exist, a Secret's key that does not exist, a taint
no toleration tolerates."""

from __future__ import annotations

import pytest
from fakecluster import FakeCluster
from kernel_client import by_replica, interrupt_after, kubeflow_env, run, running_kernel

pytestmark = pytest.mark.timeout(180)

GPU_LABEL = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "", "effect": "NoSchedule"}
NODES = [
    {"name": "cpu-1", "labels": {}},
    {"name": "gpu-1", "labels": GPU_LABEL, "taints": [GPU_TAINT]},
    {"name": "gpu-2", "labels": GPU_LABEL, "taints": [GPU_TAINT]},
]
PROFILES = """\
profiles:
  gpu:
    nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}
    tolerations: ["nvidia.com/gpu:NoSchedule"]
kubeflow: {no_pods_after: 3}
"""
READ_EVERYTHING = """\
import os, shutil
print(open("/data/hello.txt").read().strip(), os.environ["TOKEN"],
      shutil.disk_usage("/dev/shm").total // 2**30, flush=True)
"""


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(namespaces=("team",), kubeflow=("v1",), nodes=NODES) as fake:
        fake.create_claim("datasets", "team", access_modes=("ReadOnlyMany",))
        (fake.claim_path("datasets", "team") / "hello.txt").write_text("hello from the claim\n")
        fake.create(
            "secrets",
            {"metadata": {"name": "hf"}, "type": "Opaque", "stringData": {"token": "tok-1"}},
            "team",
        )
        yield fake


@pytest.fixture(scope="module")
def kernel(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("gpu-pool")
    with running_kernel(env=kubeflow_env(cluster, home, extra=PROFILES)) as (km, kc):
        yield km, kc


def test_the_replicas_run_on_the_gpu_pool_with_the_claim_the_token_and_shm(cluster, kernel):
    _, kc = kernel
    cell = (
        "%profile=gpu\n%master=1\n%worker=1\n%volume=pvc:datasets:/data:ro\n"
        "%env=TOKEN=secret:hf/token\n%shm=8Gi\n" + READ_EVERYTHING
    )
    content, messages = run(kc, cell, timeout=120)
    text = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
    assert content["status"] == "ok", (content, text)
    lines = by_replica(text)
    for replica in ("master-0", "worker-0"):
        assert lines[replica] == ["hello from the claim tok-1 8"], text
    pods = cluster.list("pods", "team")
    assert {p["spec"]["nodeName"] for p in pods} <= {"gpu-1", "gpu-2"}


def diagnosis_of(kernel, cell: str, needle: str) -> str:
    """The cell's output up to its diagnosis line (then the cell is interrupted: nothing of
    the job is left)."""
    km, kc = kernel
    reply, seen = interrupt_after(kc, km, cell, needle, timeout=60)
    assert reply["status"] == "error", reply
    return seen


def test_a_missing_claim_is_one_line_naming_it(cluster, kernel):
    seen = diagnosis_of(
        kernel, "%master=1\n%volume=pvc:checkpoints:/ckpt\nprint('never')", '"checkpoints"'
    )
    (line,) = [line for line in seen.splitlines() if "checkpoints" in line and "[" in line]
    assert "FailedScheduling" in line and "PVC" in line, line
    assert "never" not in seen


def test_a_missing_secret_key_is_one_line_naming_the_env_that_reads_it(cluster, kernel):
    seen = diagnosis_of(
        kernel, "%master=1\n%env=TOKEN=secret:hf/nope\nprint('never')", "CreateContainerConfigError"
    )
    lines = [line for line in seen.splitlines() if "CreateContainerConfigError" in line]
    assert len(lines) == 1, seen
    assert "nope" in lines[0] and "%env=TOKEN=secret:hf/nope" in lines[0], lines[0]


def test_an_untolerated_taint_is_one_line_with_the_toleration_to_add(cluster, kernel):
    cell = "%master=1\n%nodeSelector=nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3\nprint('x')"
    seen = diagnosis_of(kernel, cell, "FailedScheduling")
    lines = [line for line in seen.splitlines() if "FailedScheduling" in line]
    assert len(lines) == 1, seen
    assert "%toleration=nvidia.com/gpu" in lines[0], lines[0]
