"""The issue's example on the test cluster, for the Training Operator v1 and Kubeflow Trainer
v2.0, v2.1 and v2.3: `%profile=gpu` (a GPU pool's nodeSelector and toleration), a read-only
dataset claim, a token from a Secret and 8 GiB of /dev/shm. Each job is created with strict
field validation (an unknown field would be refused, not dropped), and the pods the operator
makes carry every setting. What a release cannot carry fails at plan time, leaving nothing.

(Whether the pods can then run is the cluster's business: the claim, the Secret and a GPU
node may not exist, so only the pods' specs are checked here.)
"""

from __future__ import annotations

from typing import Any

import pytest
from fakecluster import FakeCluster
from pod_examples import (
    DATA_MOUNT,
    DATA_VOLUME,
    DONE_WHEN,
    GPU_NODES,
    GPU_TAINT,
    SHM_MOUNT,
    SHM_VOLUME,
    TOKEN,
    cell,
    given,
)
from shipping import ship

from ciao.backend.kubeflow.backend import KubeflowBackend
from ciao.backend.kubeflow.client import connect
from ciao.backend.kubeflow.manifests import pod_selectors
from ciao.config import parse_config
from ciao.errors import BackendError
from ciao.s2i.configmap import ConfigMapCode

pytestmark = pytest.mark.timeout(120)

RELEASES = ["v1", "v2.0", "v2.1", "v2.3"]
CELL = "%framework=pytorch\n%nodes=2\nprint('ok')"


@pytest.fixture(scope="module", params=RELEASES)
def release(request):
    return request.param


@pytest.fixture(scope="module")
def cluster(release):
    """A cluster with the v1 operator, or with Kubeflow Trainer of one release."""
    if release == "v1":
        fake = FakeCluster(kubeflow=("v1",))
    else:
        fake = FakeCluster(kubeflow=("v2",), trainer_release=release)
    with fake:
        yield fake


@pytest.fixture
def parts(cluster, tmp_path):
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = parse_config({"backend": "kubeflow", "kubeconfig": str(kubeconfig)}, None)
    return ConfigMapCode(config.images), KubeflowBackend(connect(config), settings=config.kubeflow)


def pods_of(cluster, job) -> list[dict[str, Any]]:
    selector = pod_selectors(job.name, job.handle.kind)[0]
    return cluster.list("pods", "default", label_selector=selector)


def test_the_issues_example_is_accepted_strictly_and_every_pod_carries_it(cluster, release, parts):
    s2i, backend = parts
    parameter = cell(CELL, DONE_WHEN)
    plan = backend.dry_run(parameter, ship(s2i, parameter))
    assert plan.target.api == release.split(".")[0]
    assert release == "v1" or plan.target.release == release
    job = backend.exec_code(plan)  # POST ...?fieldValidation=Strict
    try:
        pods = cluster.wait_for(
            lambda: (found := pods_of(cluster, job)) and len(found) == 2 and found,
            60,
            "both pods of the job",
        )
        for pod in pods:
            spec = pod["spec"]
            (container,) = spec["containers"]
            assert DATA_VOLUME in spec["volumes"] and SHM_VOLUME in spec["volumes"]
            mounts = container["volumeMounts"]
            assert DATA_MOUNT in mounts and SHM_MOUNT in mounts
            env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
            assert env["TOKEN"] == TOKEN and env["CIAO_VOLUME_DATA"] == "/data"
            assert spec["nodeSelector"] == GPU_NODES
            assert all(t in spec["tolerations"] for t in GPU_TAINT)
    finally:
        backend.cancel(job)


@pytest.mark.parametrize("release", ["v2.0"], indirect=True)
def test_a_pull_secret_on_v2_0_fails_the_plan_and_nothing_is_created(cluster, parts):
    """v2.0's podSpecOverrides has no imagePullSecrets: the service account's, instead."""
    s2i, backend = parts
    parameter = cell(CELL, given(("imagePullSecret", "regcred", "line 2")))
    with pytest.raises(BackendError, match="kubectl patch serviceaccount"):
        backend.dry_run(parameter, ship(s2i, parameter))
    assert cluster.list("trainjobs", "default") == []
    assert cluster.list("configmaps", "default") == []
