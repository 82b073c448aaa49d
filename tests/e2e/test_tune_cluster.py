"""Ciao's own tuning engine on a cluster without Katib: every trial is an ordinary
PyTorchJob of the cell (named `<study>-<n>`), the objective is read from its master's
lines, `%delete` of the study deletes every trial's job, and an interrupt leaves no job."""

from __future__ import annotations

import re

import pytest
from fakecluster import FakeCluster
from kernel_client import interrupt_after, kubeflow_env, run, running_kernel, stream_text

pytestmark = pytest.mark.timeout(180)

STUDY = """\
%tune x=uniform(-10,10)
%objective=minimize:loss
%trials=4;%parallel=2;%algorithm=random;%seed=1
%master=1
import ciao.hp
x = ciao.hp.float("x", 0.0)
print(f"loss={(x - 2) ** 2:.4f}", flush=True)
"""


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(namespaces=("team",), kubeflow=("v1",)) as fake:
        yield fake


@pytest.fixture(scope="module")
def kernel(cluster, tmp_path_factory):
    env = kubeflow_env(cluster, tmp_path_factory.mktemp("tune-cluster"))
    with running_kernel(env=env) as (km, kc):
        yield km, kc


def test_a_study_runs_its_trials_as_pytorchjobs_and_delete_removes_them(cluster, kernel):
    _, kc = kernel
    content, messages = run(kc, STUDY, timeout=120)
    text = stream_text(messages)
    assert content["status"] == "ok", (content, text)
    study = re.search(r"%best (ciao-[a-z]{5})", text).group(1)
    jobs = sorted(job["metadata"]["name"] for job in cluster.list("pytorchjobs", "team"))
    assert jobs == [f"{study}-{n}" for n in range(4)]
    for n in range(4):
        assert re.search(rf"^\[#{n} master-0\] loss=\d+\.\d{{4}}$", text, re.M), text
    content, messages = run(kc, f"%best {study}")
    assert content["status"] == "ok", content
    content, _ = run(kc, f"%delete {study}")
    assert content["status"] == "ok", content
    cluster.wait_for(lambda: not cluster.list("pytorchjobs", "team"), 60, "no trial job left")


def test_an_interrupt_deletes_every_running_trial(cluster, kernel):
    km, kc = kernel
    slow = STUDY.replace("flush=True)\n", "flush=True)\nimport time; time.sleep(60)\n")
    reply, seen = interrupt_after(kc, km, slow, "loss=", timeout=60)
    assert reply["status"] == "error", reply
    cluster.wait_for(
        lambda: not cluster.list("pytorchjobs", "team") and not cluster.list("pods", "team"),
        60,
        "no trial job or pod left",
    )
