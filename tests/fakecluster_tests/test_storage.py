"""PersistentVolumeClaims, Secret volumes and in-memory emptyDirs in the test cluster: what
the API server, the scheduler, the attach/detach controller and the kubelet say and do."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster
from fakecluster.testing import SLEEP, connected, phase, pod, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)

GI = 1024**3
NOT_HELPFUL_1 = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster(kubeflow=(), operator=False) as c:
        yield c


@pytest.fixture
def kube(cluster: FakeCluster, tmp_path: Path) -> Iterator[SimpleNamespace]:
    with connected(cluster, tmp_path / "config") as k:
        yield k


def claim(name: str, *modes: str, storage: str = "1Gi") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": list(modes or ("ReadWriteOnce",)),
            "resources": {"requests": {"storage": storage}},
        },
    }


def mounted(
    name: str, command: list[str], claim_name: str, path: str = "/data", **extra: object
) -> dict:
    """A pod mounting the claim at `path` (`read_only` for a read-only mount)."""
    read_only = bool(extra.pop("read_only", False))
    mount = {"name": "data", "mountPath": path, **({"readOnly": True} if read_only else {})}
    return pod(
        name,
        command,
        container={"volumeMounts": [mount]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        **extra,
    )


def message_of(cluster: FakeCluster, name: str, reason: str) -> str:
    events = cluster.wait_for(lambda: cluster.events(involved=name, reason=reason), 10, reason)
    return str(events[-1]["message"])


def test_a_claim_of_the_default_class_is_bound_at_once(kube: SimpleNamespace) -> None:
    made = kube.core.create_namespaced_persistent_volume_claim(
        "default", claim("datasets", "ReadWriteMany", storage="100Gi")
    )
    assert made.spec.storage_class_name == "standard"
    assert made.spec.volume_name == f"pvc-{made.metadata.uid}"
    assert made.spec.volume_mode == "Filesystem"
    assert made.status.phase == "Bound"
    assert made.status.access_modes == ["ReadWriteMany"]
    assert made.status.capacity == {"storage": "100Gi"}
    listed = kube.core.list_namespaced_persistent_volume_claim("default").items
    assert [c.metadata.name for c in listed] == ["datasets"]


def test_a_claim_without_access_modes_or_size_is_invalid(kube: SimpleNamespace) -> None:
    bare = {"metadata": {"name": "bare"}, "spec": {}}
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_persistent_volume_claim("default", bare)
    assert refused.value.status == 422
    assert status_of(refused.value)["message"] == (
        'PersistentVolumeClaim "bare" is invalid: [spec.accessModes: Required value: at least 1 '
        "access mode is required, spec.resources[storage]: Required value]"
    )
    mixed = claim("mixed", "ReadWriteOncePod", "ReadOnlyMany")
    with pytest.raises(ApiException) as refused:
        kube.core.create_namespaced_persistent_volume_claim("default", mixed)
    assert status_of(refused.value)["message"] == (
        'PersistentVolumeClaim "mixed" is invalid: spec.accessModes: Forbidden: may not use '
        "ReadWriteOncePod with other access modes"
    )


def test_a_missing_claim_keeps_the_pod_pending_until_it_exists(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    reader = mounted("reader", ["python", "-c", "print(open('/data/x').read())"], "datasets")
    kube.core.create_namespaced_pod("default", reader)
    assert message_of(cluster, "reader", "FailedScheduling") == (
        f'0/1 nodes are available: persistentvolumeclaim "datasets" not found. {NOT_HELPFUL_1}'
    )
    assert kube.core.read_namespaced_pod("reader", "default").spec.node_name is None
    kube.core.create_namespaced_persistent_volume_claim("default", claim("datasets"))
    (cluster.claim_path("datasets") / "x").write_text("the data")
    cluster.wait_for(lambda: phase(cluster, "reader") == "Succeeded", 20)
    assert cluster.logs("default", "reader") == "the data\n"


def test_an_unbound_claim_keeps_the_pod_pending(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    cluster.create_claim("manual", bound=False)
    pending = kube.core.read_namespaced_persistent_volume_claim("manual", "default")
    assert (pending.status.phase, pending.spec.volume_name) == ("Pending", None)
    assert message_of(cluster, "manual", "ProvisioningFailed") == (
        'storageclass.storage.k8s.io "manual" not found'
    )
    kube.core.create_namespaced_pod("default", mounted("waiting", ["true"], "manual"))
    assert message_of(cluster, "waiting", "FailedScheduling") == (
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        + NOT_HELPFUL_1
    )


def test_a_claims_data_is_shared_by_its_pods_and_outlives_them(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_persistent_volume_claim("default", claim("ckpt", "ReadWriteMany"))
    code = {
        "save.py": "import os\nos.makedirs('/ckpt/run', exist_ok=True)\n"
        "open('/ckpt/run/step', 'w').write('100')\n",
        "load.py": "from pathlib import Path\nprint(Path('/ckpt/run/step').read_text())\n",
    }
    kube.core.create_namespaced_config_map("default", {"metadata": {"name": "code"}, "data": code})
    code_volume = {"name": "code", "configMap": {"name": "code"}}
    for name, script in (("save", "save.py"), ("load", "load.py")):
        body = mounted(name, ["python", f"/code/{script}"], "ckpt", "/ckpt")
        body["spec"]["volumes"].append(code_volume)
        body["spec"]["containers"][0]["volumeMounts"].append({"name": "code", "mountPath": "/code"})
        kube.core.create_namespaced_pod("default", body)
        cluster.wait_for(lambda name=name: phase(cluster, name) == "Succeeded", 20, name)
    assert cluster.logs("default", "load") == "100\n"  # paths in the code itself, mapped
    kube.core.delete_namespaced_pod("save", "default")
    kube.core.delete_namespaced_pod("load", "default")
    cluster.wait_for(lambda: not cluster.list("pods"), 10)
    data = cluster.claim_path("ckpt")
    assert (data / "run" / "step").read_text() == "100"
    kube.core.delete_namespaced_persistent_volume_claim("ckpt", "default")
    cluster.wait_for(lambda: not data.exists(), 10, "the volume to go with its claim")


def test_a_read_only_mount_refuses_writes(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    kube.core.create_namespaced_persistent_volume_claim("default", claim("datasets"))
    (cluster.claim_path("datasets") / "train.csv").write_text("a,b\n")
    script = (
        "import os\n"
        "print(open(os.path.join('/da' + 'ta', 'train.csv')).read(), end='')\n"
        "try:\n"
        "    open('/da' + 'ta/new', 'w')\n"
        "except OSError as e:\n"
        "    print(e)\n"
    )
    kube.core.create_namespaced_pod(
        "default", mounted("ro", ["python", "-c", script], "datasets", read_only=True)
    )
    cluster.wait_for(lambda: phase(cluster, "ro") == "Succeeded", 20)
    assert cluster.logs("default", "ro") == "a,b\n[Errno 30] Read-only file system: '/data/new'\n"
    assert not (cluster.claim_path("datasets") / "new").exists()


def test_a_read_write_once_claim_cannot_attach_on_two_nodes(tmp_path: Path) -> None:
    nodes = [{"name": "node-a"}, {"name": "node-b"}]
    with (
        FakeCluster(kubeflow=(), operator=False, nodes=nodes) as cluster,
        connected(cluster, tmp_path / "config") as k,
    ):
        made = k.core.create_namespaced_persistent_volume_claim("default", claim("rwo"))
        on = {n: {"nodeSelector": {"kubernetes.io/hostname": n}} for n in ("node-a", "node-b")}
        k.core.create_namespaced_pod("default", mounted("first", SLEEP, "rwo", **on["node-a"]))
        cluster.wait_for(lambda: phase(cluster, "first") == "Running", 20)
        k.core.create_namespaced_pod("default", mounted("second", ["true"], "rwo", **on["node-b"]))
        event = cluster.wait_for(
            lambda: cluster.events(involved="second", reason="FailedAttachVolume"), 10
        )[0]
        assert event["type"] == "Warning"
        assert event["source"] == {"component": "attachdetach-controller"}
        assert event["message"] == (
            f'Multi-Attach error for volume "pvc-{made.metadata.uid}" Volume is already used by '
            "pod(s) first"
        )
        second = k.core.read_namespaced_pod("second", "default")
        assert second.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
        k.core.delete_namespaced_pod("first", "default")
        cluster.wait_for(lambda: phase(cluster, "second") == "Succeeded", 20)


def test_a_read_write_many_claim_attaches_on_every_node(tmp_path: Path) -> None:
    nodes = [{"name": "node-a"}, {"name": "node-b"}]
    with FakeCluster(kubeflow=(), operator=False, nodes=nodes) as cluster:
        cluster.create_claim("shared", access_modes=("ReadWriteMany",))
        for name, node in (("one", "node-a"), ("two", "node-b")):
            cluster.create(
                "pods",
                mounted(
                    name,
                    ["python", "-c", "import time; time.sleep(0.5)"],
                    "shared",
                    nodeSelector={"kubernetes.io/hostname": node},
                ),
            )
        for name in ("one", "two"):
            cluster.wait_for(lambda name=name: phase(cluster, name) == "Succeeded", 20, name)
        assert not cluster.events(reason="FailedAttachVolume")


def test_a_read_write_once_pod_claim_takes_one_pod(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    kube.core.create_namespaced_persistent_volume_claim(
        "default", claim("solo", "ReadWriteOncePod")
    )
    kube.core.create_namespaced_pod("default", mounted("holder", SLEEP, "solo"))
    cluster.wait_for(lambda: phase(cluster, "holder") == "Running", 20)
    kube.core.create_namespaced_pod("default", mounted("second", ["true"], "solo"))
    assert message_of(cluster, "second", "FailedScheduling") == (
        "0/1 nodes are available: 1 node has pod using PersistentVolumeClaim with the same name "
        "and ReadWriteOncePod access mode. preemption: 0/1 nodes are available: 1 No preemption "
        "victims found for incoming pod."
    )


SHM_SIZE = ["python", "-c", "import shutil; print(shutil.disk_usage('/dev/shm').total)"]


@pytest.mark.parametrize(
    ("volume", "limit", "size"),
    [
        ({"medium": "Memory", "sizeLimit": "8Gi"}, None, 8 * GI),
        ({"medium": "Memory", "sizeLimit": "8Gi"}, "4Gi", 4 * GI),  # the pod's memory limit
        ({"medium": "Memory"}, None, 32 * GI),  # the node's allocatable memory
        (None, None, 64 * 1024**2),  # the container runtime's own /dev/shm
    ],
)
def test_dev_shm_is_as_big_as_the_kubelet_makes_it(
    cluster: FakeCluster, volume: dict | None, limit: str | None, size: int
) -> None:
    container: dict = {}
    spec: dict = {}
    if volume is not None:
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
        spec["volumes"] = [{"name": "dshm", "emptyDir": volume}]
    if limit is not None:
        container["resources"] = {"limits": {"memory": limit}}
    cluster.create("pods", pod("shm", SHM_SIZE, container=container, **spec))
    cluster.wait_for(lambda: phase(cluster, "shm") == "Succeeded", 20)
    assert int(cluster.logs("default", "shm")) == size


def test_a_secret_volume_holds_its_keys_and_waits_for_the_secret(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    show = "import os; print(sorted(os.listdir('/creds')), open('/creds/token').read())"
    kube.core.create_namespaced_pod(
        "default",
        pod(
            "reader",
            ["python", "-c", show],
            container={"volumeMounts": [{"name": "creds", "mountPath": "/creds"}]},
            volumes=[{"name": "creds", "secret": {"secretName": "hf"}}],
        ),
    )
    assert message_of(cluster, "reader", "FailedMount") == (
        'MountVolume.SetUp failed for volume "creds" : secret "hf" not found'
    )
    token = base64.b64encode(b"hf_abc").decode()
    kube.core.create_namespaced_secret(
        "default",
        {"metadata": {"name": "hf"}, "data": {"token": token}, "stringData": {"user": "me"}},
    )
    cluster.wait_for(lambda: phase(cluster, "reader") == "Succeeded", 20)
    assert cluster.logs("default", "reader") == "['token', 'user'] hf_abc\n"
    stored = kube.core.read_namespaced_secret("hf", "default")
    assert stored.type == "Opaque" and stored.string_data is None
    assert base64.b64decode(stored.data["user"]) == b"me"


def test_torch_save_to_a_mount_path_lands_in_the_claim(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    pytest.importorskip("torch")
    kube.core.create_namespaced_persistent_volume_claim("default", claim("ckpt"))
    code = "import torch\ntorch.save({'step': 7}, '/ckpt/model.pt')\n"
    kube.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "code"}, "data": {"s.py": code}}
    )
    body = mounted("saver", ["python", "/code/s.py"], "ckpt", "/ckpt")
    body["spec"]["volumes"].append({"name": "code", "configMap": {"name": "code"}})
    body["spec"]["containers"][0]["volumeMounts"].append({"name": "code", "mountPath": "/code"})
    kube.core.create_namespaced_pod("default", body)
    cluster.wait_for(lambda: phase(cluster, "saver") in ("Succeeded", "Failed"), 60)
    assert phase(cluster, "saver") == "Succeeded", cluster.logs("default", "saver")
    assert (cluster.claim_path("ckpt") / "model.pt").stat().st_size > 0
