"""Job pods in a namespace that enforces Pod Security `restricted`, through the kernel: the
namespace is deploy/namespace.yaml's (the gateway's deployment, where its jobs run too), the
test cluster enforces the level as the API server does (tests/fakecluster/podsecurity.py),
and its kubelet refuses to run a root image under runAsNonRoot without a runAsUser.

PyTorchJob (master and workers), TFJob and TrainJob cells run to success with the default
`kubeflow.pod_security: restricted`; with `none` the same cells fail at once, naming Pod
Security and what to do, and leave nothing behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from fakecluster import FakeCluster, StatusError
from fakecluster.podsecurity import LevelVersion, evaluate
from kernel_client import (
    by_replica,
    interrupt_after,
    needs_torchrun,
    run,
    running_kernel,
    stream_text,
)

pytestmark = pytest.mark.timeout(180)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAMESPACE_YAML = DEPLOY / "namespace.yaml"
INIT_TEMPLATE = yaml.safe_load((DEPLOY / "training-operator-init-container.yaml").read_text())
GATEWAY_CONFIG = yaml.safe_load(
    next(
        d["data"]["config.yaml"]
        for d in yaml.safe_load_all((DEPLOY / "kernel-gateway.yaml").read_text())
        if d["kind"] == "ConfigMap"
    )
)
#: Whether the replica's HOME is a writable directory of its own (the pod's emptyDir, which
#: the test cluster's runtime gives as a local directory), where pip's user install goes.
WHOAMI = """
import json, os, tempfile
home = os.environ["HOME"]
with tempfile.NamedTemporaryFile(dir=home):
    writable = True
print("WHO " + json.dumps({"home": home not in ("/", "/root"), "writable": writable,
      "userbase": os.environ["PYTHONUSERBASE"] == home + "/.local"}))
"""
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@pytest.fixture(scope="module")
def namespace() -> dict:
    return yaml.safe_load(NAMESPACE_YAML.read_text())


@pytest.fixture(scope="module")
def cluster(namespace):
    """Kubeflow v1 and v2, the v1 operator given deploy/'s init container template."""
    with FakeCluster(
        namespaces=("default",),
        kubeflow=("v1", "v2"),
        pytorch_init_template=INIT_TEMPLATE["data"]["initContainer.yaml"],
    ) as fake:
        fake.create("namespaces", namespace)
        yield fake


@pytest.fixture(scope="module")
def stock(namespace, tmp_path_factory):
    """A cluster whose v1 operator has its built-in init container template."""
    with FakeCluster(namespaces=("default",), kubeflow=("v1",)) as fake:
        fake.create("namespaces", namespace)
        path = tmp_path_factory.mktemp("stock") / "kubeconfig"
        yield fake, fake.write_kubeconfig(path, namespace=namespace["metadata"]["name"])


@pytest.fixture(scope="module")
def home(cluster, namespace, tmp_path_factory) -> Path:
    """The kernel's directory: a kubeconfig for namespace ciao, and the deployment's own
    config.yaml (deploy/kernel-gateway.yaml's ConfigMap) naming it."""
    home = tmp_path_factory.mktemp("psa")
    kubeconfig = cluster.write_kubeconfig(
        home / "kubeconfig", namespace=namespace["metadata"]["name"]
    )
    (home / "config.yaml").write_text(
        yaml.safe_dump({**GATEWAY_CONFIG, "kubeconfig": str(kubeconfig)})
    )
    return home


@pytest.fixture(scope="module")
def kernel(home):
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(home / "config.yaml"))) as (km, kc):
        yield km, kc


@pytest.fixture
def configure(home):
    """Change the kernel's config (read for every cell): `kubeflow:` settings over the
    deployment's, and another cluster's kubeconfig."""
    config = home / "config.yaml"
    original = config.read_text()

    def write(kubeconfig: Path | None = None, **kubeflow: object) -> None:
        data = yaml.safe_load(original)
        data["kubeflow"] = {**data.get("kubeflow", {}), **kubeflow}
        if kubeconfig is not None:
            data["kubeconfig"] = str(kubeconfig)
        config.write_text(yaml.safe_dump(data))

    yield write
    config.write_text(original)


@pytest.fixture
def kc(kernel, cluster, namespace):
    yield kernel[1]
    cleanup(cluster, namespace["metadata"]["name"])


def listed(cluster: FakeCluster, resource: str, ns: str) -> list[dict]:
    try:
        return cluster.list(resource, ns)
    except KeyError:  # not served by this cluster
        return []


def cleanup(cluster: FakeCluster, ns: str) -> None:
    for resource in ("pytorchjobs", "tfjobs", "trainjobs"):
        for job in listed(cluster, resource, ns):
            try:
                cluster.delete(resource, ns, job["metadata"]["name"], propagation="Foreground")
            except StatusError as exc:
                if exc.code != 404:
                    raise
    cluster.wait_for(lambda: not cluster.list("pods", ns), timeout=30, message="no pods")


def nothing_left(cluster: FakeCluster, ns: str) -> None:
    def left() -> list[str]:
        return [
            f"{resource}/{o['metadata']['name']}"
            for resource in ("pytorchjobs", "tfjobs", "trainjobs", "pods", "configmaps")
            for o in listed(cluster, resource, ns)
        ]

    try:
        cluster.wait_for(lambda: not left(), timeout=30)
    except AssertionError:
        raise AssertionError(f"left behind: {left()}") from None


def who(lines: dict[str, list[str]]) -> dict[str, dict]:
    return {
        replica: json.loads(next(line for line in got if line.startswith("WHO "))[4:])
        for replica, got in lines.items()
    }


def pods_security(cluster: FakeCluster, ns: str, kind: str, name: str) -> list[tuple]:
    """(pod securityContext, container securityContexts) of the job's pods, as the cluster
    has them (they stay after success: cleanPodPolicy None, the default without PS)."""
    pods = [
        p
        for p in cluster.list("pods", ns)
        if any(ref.get("name") == name for ref in p["metadata"].get("ownerReferences") or [])
        or p["metadata"]["name"].startswith(f"{name}-")
    ]
    assert pods, f"no pods of {kind} {name}"
    return [
        (
            p["spec"].get("securityContext"),
            [c.get("securityContext") for c in p["spec"]["containers"]],
        )
        for p in pods
    ]


def test_the_deployments_namespace_enforces_restricted_and_its_gateway_passes(namespace):
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    assert GATEWAY_CONFIG["kubeflow"]["pod_security"] == "restricted"
    docs = yaml.safe_load_all((DEPLOY / "kernel-gateway.yaml").read_text())
    (gateway,) = [d for d in docs if d["kind"] == "Deployment"]
    template = gateway["spec"]["template"]
    assert evaluate(LevelVersion("restricted"), template["metadata"], template["spec"]) == []


def test_a_pytorch_job_with_master_and_workers_runs_as_a_non_root_uid(kc, cluster, configure):
    configure(api="v1")
    cell = "%framework=pytorch\n%master=1\n%worker=2\n%requirements=pip" + WHOAMI
    content, messages = run(kc, cell, timeout=120)
    assert content["status"] == "ok", content
    seen = who(by_replica(stream_text(messages)))
    assert set(seen) == {"master-0", "worker-0", "worker-1"}
    assert all(w == {"home": True, "writable": True, "userbase": True} for w in seen.values())
    job = cluster.list("pytorchjobs", "ciao")[-1]["metadata"]["name"]
    contexts = pods_security(cluster, "ciao", "PyTorchJob", job)
    assert len(contexts) == 3
    assert all(pod == RESTRICTED_POD and cs == [RESTRICTED_CONTAINER] for pod, cs in contexts)


def test_a_tf_job_runs_as_a_non_root_uid(kc, cluster, configure):
    configure(api="v1")
    cell = "%framework=tensorflow\n%chief=1\n%worker=1" + WHOAMI
    content, messages = run(kc, cell, timeout=120)
    assert content["status"] == "ok", content
    assert set(who(by_replica(stream_text(messages)))) == {"chief-0", "worker-0"}
    job = cluster.list("tfjobs", "ciao")[-1]["metadata"]["name"]
    contexts = pods_security(cluster, "ciao", "TFJob", job)
    assert all(pod == RESTRICTED_POD and cs == [RESTRICTED_CONTAINER] for pod, cs in contexts)


@needs_torchrun
def test_a_trainjob_runs_as_a_non_root_uid(kc, cluster, configure):
    configure(api="v2")
    content, messages = run(kc, "%nodes=2" + WHOAMI, timeout=150)
    assert content["status"] == "ok", content
    seen = who(by_replica(stream_text(messages)))
    assert set(seen) == {"node-0", "node-1"}
    assert all(w == {"home": True, "writable": True, "userbase": True} for w in seen.values())
    job = cluster.list("trainjobs", "ciao")[-1]["metadata"]["name"]
    pods = cluster.trainjob_pods(job, "ciao")
    assert len(pods) == 2
    for pod in pods:  # through the runtime patch, onto the JobSet's pods
        assert pod["spec"]["securityContext"] == RESTRICTED_POD
        (node,) = pod["spec"]["containers"]
        assert node["securityContext"] == RESTRICTED_CONTAINER


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_without_the_security_context_the_pods_are_refused_and_the_cell_says_why(
    kc, cluster, configure, api
):
    """The proof that the test cluster enforces the level: the same cell, its pods bare."""
    configure(api=api, pod_security="none")
    cell = "%framework=pytorch\n%master=1\n%worker=1\nprint('never runs')"
    content, messages = run(kc, cell, timeout=90)
    assert content["status"] == "error", content
    error = content["evalue"]
    assert "its pods cannot be created: the namespace's Pod Security level" in error, error
    assert "kubeflow.pod_security: restricted (the default)" in error
    assert 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in error
    assert "so it was stopped" in error
    text = stream_text(messages) + stream_text(messages, "stderr")
    reason = "FailedCreatePod" if api == "v1" else "FailedCreate"
    assert f"[job] {reason}: the namespace's Pod Security level" in text, text
    nothing_left(cluster, "ciao")


def test_as_the_images_own_user_a_root_image_is_not_started(kernel, kc, cluster, configure):
    """Why Ciao sets runAsUser: the stock images run as root, and under runAsNonRoot alone
    the kubelet refuses to start them."""
    configure(api="v1", run_as_user="image")
    cell = "%framework=pytorch\n%master=1\nprint('never runs')"
    reply, text = interrupt_after(kc, kernel[0], cell, "kubeflow.run_as_user", timeout=60)
    assert "[master-0] CreateContainerConfigError: the image runs as root" in text, text
    assert "container has runAsNonRoot and image will run as root" in text
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    nothing_left(cluster, "ciao")


def test_the_v1_operators_stock_init_container_is_refused_and_the_cell_says_what_to_do(
    kc, stock, configure
):
    """The Training Operator v1 gives a PyTorchJob's workers its own init container, with no
    securityContext: Ciao's pass `restricted`, that one does not. deploy/ has the template
    that fixes it (the other tests run with it)."""
    cluster, kubeconfig = stock
    configure(kubeconfig=kubeconfig, api="v1")
    content, messages = run(kc, "%framework=pytorch\n%master=1\n%worker=1\nprint(1)", timeout=90)
    assert content["status"] == "error", content
    error = content["evalue"]
    assert "refuses the workers for the init container init-pytorch" in error, error
    assert "deploy/training-operator-init-container.yaml" in error
    assert (
        'pods "' in error
        and '-worker-0" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "init-pytorch" must set'
        in error
    ), error
    nothing_left(cluster, "ciao")
    # a master alone gets no init container
    content, _ = run(kc, "%framework=pytorch\n%master=1\nprint(1)", timeout=90)
    assert content["status"] == "ok", content


def test_a_host_folder_is_refused_by_the_level_and_the_cell_says_to_use_a_claim(
    kc, cluster, configure
):
    """Pod Security's baseline and restricted levels refuse any hostPath volume, whatever
    securityContext Ciao sets: the cell names the %volume and the way out."""
    configure(api="v1")
    cell = "%master=1\n%volume=hostPath:/mnt/data:/data\nprint('never runs')"
    content, messages = run(kc, cell, timeout=90)
    assert content["status"] == "error", content
    error = content["evalue"]
    assert "refuses hostPath volumes, so a %volume=hostPath:... (a folder of the node)" in error
    assert "(%volume=pvc:NAME:/path)" in error and 'restricted volume type "hostPath"' in error
    assert "Ciao's pods pass every level" not in error
    nothing_left(cluster, "ciao")
