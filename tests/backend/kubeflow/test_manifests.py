"""The TFJob / PyTorchJob manifests: the operator's contract, its CRDs and its webhook."""

from __future__ import annotations

import dataclasses

import pytest
from cells import VALID_CELLS
from fakecluster import validate_job
from fakecluster.podsecurity import LevelVersion, evaluate

from ciao.backend.kubeflow.manifests import (
    KINDS,
    PodSecurity,
    config_map_manifest,
    config_map_name,
    job_manifest,
    pod_selectors,
    replica_of,
)
from ciao.constants import CODE_DIR
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter, Resources
from ciao.s2i.types import Shipment

#: What an image provider ships: an image that runs the code by itself.
IMAGE = Shipment("pytorch/pytorch:2.5.1")
#: What the configmap provider ships: the stock image, a command, and the files beside it.
CODE_BESIDE = Shipment(
    "pytorch/pytorch:2.5.1",
    command=("python", "-u", f"{CODE_DIR}/code.py"),
    files={"code.py": "print(1)\n"},
)


def parameter_of(cell: str, **extra) -> Parameter:
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess(cell)
    owner = {"kernel-id": "0b4c2f9e-1234", "session": "abcdef0123", "cell": "7"}
    return dataclasses.replace(parameter, **{"owner": owner, **extra})


@pytest.mark.parametrize("name", sorted(VALID_CELLS))
def test_every_valid_cell_gives_a_manifest_the_crd_and_webhook_accept(name):
    manifest = job_manifest(parameter_of(VALID_CELLS[name]), IMAGE, "team")
    assert validate_job(manifest) == []


@pytest.mark.parametrize("name", sorted(VALID_CELLS))
def test_with_the_code_in_a_configmap_too(name):
    assert validate_job(job_manifest(parameter_of(VALID_CELLS[name]), CODE_BESIDE, "team")) == []


def test_a_pytorch_job_has_the_operator_shape():
    cell = "%framework=pytorch\n%master=1;%cpu=1;%memory=2Gi\n%worker=2;%gpu=1"
    manifest = job_manifest(parameter_of(cell), IMAGE, "team")
    assert manifest["apiVersion"] == "kubeflow.org/v1"
    assert manifest["kind"] == "PyTorchJob"
    assert manifest["metadata"]["name"] == "ciao-abcde"
    assert manifest["metadata"]["namespace"] == "team"
    specs = manifest["spec"]["pytorchReplicaSpecs"]
    assert list(specs) == ["Master", "Worker"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2
    assert specs["Worker"]["restartPolicy"] == "OnFailure"
    master = specs["Master"]["template"]["spec"]["containers"][0]
    assert master["name"] == "pytorch"
    assert master["image"] == "pytorch/pytorch:2.5.1"
    assert master["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    worker = specs["Worker"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert master["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]
    assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == "None"
    assert manifest["spec"]["runPolicy"]["backoffLimit"] >= 1


def test_a_tensorflow_job_with_ps_cleans_running_pods_by_default():
    manifest = job_manifest(parameter_of("%framework=tensorflow\n%ps=1\n%worker=2"), IMAGE, "ns")
    assert manifest["kind"] == "TFJob"
    assert list(manifest["spec"]["tfReplicaSpecs"]) == ["PS", "Worker"]
    assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
    container = manifest["spec"]["tfReplicaSpecs"]["PS"]["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow"
    assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]
    assert manifest["spec"]["tfReplicaSpecs"]["PS"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("policy, sent", [("all", "All"), ("running", "Running"), ("none", "None")])
def test_the_clean_policy_is_sent_capitalised(policy, sent):
    cell = f"%framework=pytorch\n%master=1\n%cleanPolicy={policy}"
    manifest = job_manifest(parameter_of(cell), IMAGE, "ns")
    assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == sent


def test_labels_tie_the_job_and_its_pods_to_ciao_the_kernel_and_the_cell():
    manifest = job_manifest(parameter_of("%framework=pytorch\n%master=1"), IMAGE, "ns")
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "ciao"
    assert labels["ciao.kubeflow.org/kernel-id"] == "0b4c2f9e-1234"
    assert labels["ciao.kubeflow.org/session"] == "abcdef0123"
    assert labels["ciao.kubeflow.org/cell"] == "7"
    template = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    assert template["metadata"]["labels"] == labels
    for metadata in (manifest["metadata"], template["metadata"]):
        assert metadata["annotations"]["sidecar.istio.io/inject"] == "false"


def test_the_shipment_gives_the_image_the_command_and_the_mounted_files():
    parameter = parameter_of("%framework=pytorch\n%master=1")
    manifest = job_manifest(parameter, CODE_BESIDE, "ns")
    spec = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "pytorch/pytorch:2.5.1"
    assert container["command"] == ["python", "-u", "/opt/ciao/code.py"]
    assert container["volumeMounts"] == [
        {"name": "ciao-code", "mountPath": CODE_DIR},
        {"name": "ciao-home", "mountPath": "/home/ciao"},
    ]
    assert spec["volumes"] == [
        {"name": "ciao-code", "configMap": {"name": "ciao-abcde-code"}},
        {"name": "ciao-home", "emptyDir": {}},
    ]


def test_an_image_that_runs_the_code_by_itself_gets_no_command_and_no_code_volume():
    manifest = job_manifest(parameter_of("%framework=pytorch\n%master=1"), IMAGE, "ns")
    spec = manifest["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "pytorch/pytorch:2.5.1"
    assert "command" not in container
    assert [v["name"] for v in spec["volumes"]] == ["ciao-home"]
    bare = job_manifest(
        parameter_of("%framework=pytorch\n%master=1"), IMAGE, "ns", PodSecurity(restricted=False)
    )
    spec = bare["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]


@pytest.mark.parametrize(
    "cell",
    [
        "%framework=pytorch\n%master=1\n%worker=2",
        "%framework=tensorflow\n%chief=1\n%ps=1\n%worker=2\n%evaluator=1",
    ],
)
def test_every_role_passes_pod_security_restricted_as_a_non_root_uid(cell):
    manifest = job_manifest(parameter_of(cell), CODE_BESIDE, "ns")
    kind = KINDS["tensorflow" if "tensorflow" in cell else "pytorch"]
    specs = manifest["spec"][kind.replica_specs]
    assert len(specs) == cell.count("\n%")  # every role
    for spec in specs.values():
        pod = spec["template"]["spec"]
        # the test cluster's Pod Security checks, faithful to upstream's
        assert evaluate(LevelVersion("restricted"), spec["template"]["metadata"], pod) == []
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
        env = {e["name"]: e["value"] for e in container["env"]}
        # the uid has no home in the image: HOME is the pod's emptyDir, where pip's user
        # install of %requirements goes (site-packages belongs to root)
        assert env["HOME"] == "/home/ciao" and env["PYTHONUSERBASE"] == "/home/ciao/.local"
    assert validate_job(manifest) == []


def test_the_images_own_user_or_no_security_context_at_all_when_configured():
    cell = "%framework=pytorch\n%master=1"
    own = job_manifest(parameter_of(cell), CODE_BESIDE, "ns", PodSecurity(True, None))
    pod = own["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert evaluate(LevelVersion("restricted"), {}, pod) == []
    assert "HOME" not in {e["name"] for e in pod["containers"][0]["env"]}
    assert [v["name"] for v in pod["volumes"]] == ["ciao-code"]
    off = job_manifest(parameter_of(cell), CODE_BESIDE, "ns", PodSecurity(restricted=False))
    pod = off["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert "securityContext" not in pod and "securityContext" not in pod["containers"][0]
    reasons = [reason for reason, _ in evaluate(LevelVersion("restricted"), {}, pod)]
    assert reasons == [
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ]
    assert evaluate(LevelVersion("baseline"), {}, pod) == []


def test_the_configmap_holds_the_shipped_files_under_the_jobs_name():
    parameter = parameter_of("%framework=pytorch\n%master=1")
    config_map = config_map_manifest(parameter, CODE_BESIDE, "team")
    assert config_map_name("ciao-abcde") == "ciao-abcde-code"
    assert config_map == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "ciao-abcde-code",
            "namespace": "team",
            "labels": job_manifest(parameter, CODE_BESIDE, "team")["metadata"]["labels"],
        },
        "data": {"code.py": "print(1)\n"},
    }


def test_label_values_are_made_valid():
    parameter = parameter_of("%master=1", owner={"session": "a/b:c" + "x" * 80 + "-"})
    value = job_manifest(parameter, IMAGE, "ns")["metadata"]["labels"]["ciao.kubeflow.org/session"]
    assert len(value) <= 63 and "/" not in value and not value.endswith("-")


def test_the_validator_catches_what_the_webhook_rejects():
    manifest = job_manifest(parameter_of("%framework=pytorch\n%master=1\n%worker=1"), IMAGE, "ns")
    manifest["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    manifest["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
        "name"
    ] = "main"
    assert len(validate_job(manifest)) >= 2


def test_replicas_are_named_from_the_operators_labels_new_and_old():
    new = {
        "metadata": {
            "labels": {
                "training.kubeflow.org/replica-type": "worker",
                "training.kubeflow.org/replica-index": "1",
            }
        }
    }
    old = {"metadata": {"labels": {"tf-replica-type": "ps", "tf-replica-index": "0"}}}
    assert replica_of(new) == "worker-1"
    assert replica_of(old) == "ps-0"
    selectors = pod_selectors("ciao-abcde", KINDS["pytorch"])
    assert selectors[0] == (
        "training.kubeflow.org/job-name=ciao-abcde,"
        "training.kubeflow.org/operator-name=pytorchjob-controller"
    )
    assert "job-name=ciao-abcde" in selectors


def test_resources_of_a_role_default_from_the_config():
    parameter = MagicInterpreter({"worker": Resources("250m", "512Mi")}).preprocess(
        "%framework=tensorflow\n%worker=2"
    )
    spec = job_manifest(parameter, Shipment("tf"), "ns")["spec"]["tfReplicaSpecs"]["Worker"]
    resources = spec["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "512Mi"}
