"""TrainJob manifests (Kubeflow Trainer v2) and the choice between v1 and v2."""

from __future__ import annotations

import pytest
from fakecluster import validate_trainjob
from fakecluster.podsecurity import LevelVersion, evaluate
from shipping import ship

from ciao.backend.kubeflow.discovery import ServedApis, choose_api
from ciao.backend.kubeflow.manifests import PodSecurity
from ciao.backend.kubeflow.plan import Target, plan_job
from ciao.backend.kubeflow.trainjob import OVERRIDE_FIELDS, Runtime, trainjob_manifest
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.configmap import ConfigMapCode

IMAGES = {"pytorch": "pytorch/pytorch:2.5.1", "tensorflow": "tensorflow/tensorflow:2.18.0"}
BOTH = ServedApis(frozenset({"pytorchjobs", "tfjobs"}), True)
V1 = ServedApis(frozenset({"pytorchjobs", "tfjobs"}), False)
V2 = ServedApis(frozenset(), True)
NONE = ServedApis(frozenset(), False)


def cell(text: str):
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess(text)
    return parameter, ship(ConfigMapCode(IMAGES), parameter)


@pytest.mark.parametrize(
    ("framework", "configured", "served", "api"),
    [
        ("pytorch", "auto", BOTH, "v2"),
        ("pytorch", "auto", V1, "v1"),
        ("pytorch", "auto", V2, "v2"),
        ("pytorch", "v1", BOTH, "v1"),
        ("tensorflow", "auto", BOTH, "v1"),
        ("tensorflow", "v2", BOTH, "v1"),
    ],
)
def test_auto_prefers_trainer_v2_for_pytorch_and_tensorflow_stays_on_v1(
    framework, configured, served, api
):
    choice = choose_api(framework, configured, served)
    assert choice.api == api and choice.why


@pytest.mark.parametrize(
    ("framework", "configured", "served", "words"),
    [
        ("pytorch", "auto", NONE, "neither trainjobs.trainer.kubeflow.org (Kubeflow Trainer v2)"),
        ("pytorch", "v2", V1, "kubeflow.api is v2, but the cluster serves"),
        ("pytorch", "v1", V2, "kubeflow.api is v1, but the cluster serves"),
        ("tensorflow", "auto", V2, "Kubeflow Trainer v2 has no TensorFlow runtime"),
    ],
)
def test_a_cluster_without_the_api_a_cell_needs_is_one_clear_error(
    framework, configured, served, words
):
    with pytest.raises(BackendError, match=words.replace("(", r"\(").replace(")", r"\)")):
        choose_api(framework, configured, served)


def test_a_cell_becomes_a_trainjob_that_runs_it_under_torchrun():
    parameter, shipment = cell("%nodes=3;%cpu=2;%memory=4Gi\n%procs=2\nprint(1)")
    job = trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), "v2.3")
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ciao"
    spec = job["spec"]
    assert spec["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 3 and trainer["numProcPerNode"] == 2
    assert trainer["command"] == ["torchrun", "--tee", "3", "/opt/ciao/code.py"]
    plain, shipped = cell("%nodes=2\nprint(1)")
    one = trainjob_manifest(plain, shipped, "team", Runtime("torch-distributed"), "v2.3")
    assert one["spec"]["trainer"]["numProcPerNode"] == 1, "one process a node, as on v1"
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert {"name": "PYTHONUNBUFFERED", "value": "1"} in trainer["env"]
    assert not any(e["name"].startswith("PET_") for e in trainer["env"]), "reserved"


@pytest.mark.parametrize("release", sorted(OVERRIDE_FIELDS))
def test_the_code_is_mounted_through_the_field_of_the_installed_release(release):
    parameter, shipment = cell("%nodes=2\nprint(1)")
    spec = trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), release)[
        "spec"
    ]
    field = OVERRIDE_FIELDS[release]
    assert [k for k in spec if k in OVERRIDE_FIELDS.values()] == [field]
    (override,) = spec[field]
    if release == "v2.0":
        pod = override
    elif release == "v2.1":
        pod = override["spec"]
    else:
        (replicated,) = override["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        assert replicated["name"] == "node" and override["manager"]
        pod = replicated["template"]["spec"]["template"]["spec"]
    code = {"name": "ciao-code", "configMap": {"name": "ciao-abcde-code"}}
    code_mount = {"name": "ciao-code", "mountPath": "/opt/ciao"}
    if release in ("v2.0", "v2.1"):  # no securityContext there, so no uid of Ciao's and no HOME
        assert pod["volumes"] == [code]
        assert pod["containers"] == [{"name": "node", "volumeMounts": [code_mount]}]
        return
    assert pod["volumes"] == [code, {"name": "ciao-home", "emptyDir": {}}]
    ((container),) = pod["containers"]
    assert container["volumeMounts"] == [
        code_mount,
        {"name": "ciao-home", "mountPath": "/home/ciao"},
    ]


@pytest.mark.parametrize("release", sorted(OVERRIDE_FIELDS))
def test_from_v2_2_the_runtime_patch_makes_every_node_pass_pod_security_restricted(release):
    parameter, shipment = cell("%nodes=2\n%requirements=pandas\nprint(1)")
    job = trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), release)
    assert validate_trainjob(job, release=release) == []  # the release's CRD, strictly
    env = {e["name"]: e["value"] for e in job["spec"]["trainer"]["env"]}
    (override,) = job["spec"][OVERRIDE_FIELDS[release]]
    if release in ("v2.0", "v2.1"):
        assert "securityContext" not in repr(override) and "HOME" not in env
        return
    (replicated,) = override["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = replicated["template"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    node = {**container, "image": "x"}
    assert evaluate(LevelVersion("restricted"), {}, {**pod, "containers": [node]}) == []
    # HOME through the trainer's env: the webhook refuses env for `node` in an override
    assert env["HOME"] == "/home/ciao" and env["PYTHONUSERBASE"] == "/home/ciao/.local"
    off = trainjob_manifest(
        parameter, shipment, "team", Runtime("torch-distributed"), release, PodSecurity(False)
    )
    assert "securityContext" not in repr(off) and "ciao-home" not in repr(off)


def test_on_v2_0_and_v2_1_the_plan_says_the_runtime_decides_pod_security():
    parameter, shipment = cell("%nodes=2\nprint(1)")
    target = Target("v2", "auto", Runtime("torch-distributed"), "v2.1", "openapi")
    assert "Kubeflow Trainer v2.1's TrainJob cannot set a securityContext" in (
        plan_job(parameter, shipment, "team", target).description
    )
    newer = Target("v2", "auto", Runtime("torch-distributed"), "v2.3", "openapi")
    assert "pods run as uid 1000" in plan_job(parameter, shipment, "team", newer).description


@pytest.mark.parametrize("release", ["v2.1", "v2.3"])
def test_every_node_pod_opts_out_of_an_istio_sidecar(release):
    """A sidecar keeps the pod Running after the trainer exits: the job would never end."""
    parameter, shipment = cell("%nodes=2\nprint(1)")
    job = trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), release)
    (override,) = job["spec"][OVERRIDE_FIELDS[release]]
    if release == "v2.1":
        metadata = override["metadata"]
    else:
        (replicated,) = override["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        metadata = replicated["template"]["spec"]["template"]["metadata"]
    assert metadata["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "ciao"


def test_requirements_are_installed_before_torchrun_starts():
    parameter, shipment = cell("%nodes=2\n%requirements=pandas\nprint(1)")
    job = trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), "v2.1")
    command = job["spec"]["trainer"]["command"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith("python -m pip install")
    assert command[2].endswith("&& exec torchrun /opt/ciao/code.py")


def test_master_and_workers_with_different_resources_cannot_be_one_trainjob():
    parameter, shipment = cell("%master=1;%cpu=4\n%worker=2;%cpu=1\nprint(1)")
    with pytest.raises(BackendError, match="same resources"):
        trainjob_manifest(parameter, shipment, "team", Runtime("torch-distributed"), "v2.3")


def test_a_renamed_plan_keeps_its_api_runtime_and_release():
    parameter, shipment = cell("%nodes=2\nprint(1)")
    target = Target("v2", "auto", Runtime("my-torch", "TrainingRuntime"), "v2.1", "openapi")
    plan = plan_job(parameter, shipment, "team", target).renamed("ciao-fghij")
    assert plan.name == "ciao-fghij" and plan.kind.kind == "TrainJob"
    assert plan.job["spec"]["runtimeRef"]["kind"] == "TrainingRuntime"
    assert "podTemplateOverrides" in plan.job["spec"]
    assert plan.objects[0]["metadata"]["name"] == "ciao-fghij-code"
    assert "TrainJob" in plan.description and "my-torch" in plan.description


def test_on_v1_procs_are_the_operators_nproc_per_node_and_the_code_runs_under_torchrun():
    from ciao.backend.kubeflow.manifests import job_manifest

    parameter, shipment = cell("%nodes=2\n%procs=4\nprint(1)")
    job = job_manifest(parameter, shipment, "team")
    assert job["spec"]["nprocPerNode"] == "4"
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        (container,) = replica["template"]["spec"]["containers"]
        assert container["command"] == ["torchrun", "--tee", "3", "/opt/ciao/code.py"]
