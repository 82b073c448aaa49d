"""validate_job: the same checks as the fake API server, for manifest unit tests."""

from __future__ import annotations

import copy

from fakecluster import validate_job
from fakecluster.jobs import pytorchjob, tfjob

GOOD = pytorchjob("mnist", ["python", "train.py"], workers=2)


def test_a_good_manifest_has_no_problems() -> None:
    assert validate_job(GOOD) == []
    ps = tfjob(
        "dist", {"PS": (1, ["python"]), "Worker": (2, ["python"])}, clean_pod_policy="Running"
    )
    assert validate_job(ps) == []


def test_typos_are_unknown_fields() -> None:
    job = copy.deepcopy(GOOD)
    job["spec"]["runPolicy"]["cleanPodPolice"] = "All"
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["args "] = []
    assert validate_job(job) == [
        'unknown field "spec.runPolicy.cleanPodPolice"',
        'unknown field "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].args "',
    ]


def test_schema_types_and_quantities() -> None:
    job = copy.deepcopy(GOOD)
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"cpu": "2 cores"}}
    job["spec"]["runPolicy"]["backoffLimit"] = "3"
    problems = validate_job(job)
    assert problems[0].startswith(
        "spec.pytorchReplicaSpecs.Worker.template.spec.containers[0].resources.limits.cpu: "
        'Invalid value: "2 cores"'
    )
    assert problems[1] == (
        'spec.runPolicy.backoffLimit: Invalid value: "string": spec.runPolicy.backoffLimit in '
        'body must be of type integer: "string"'
    )


def test_webhook_rules() -> None:
    job = copy.deepcopy(GOOD)
    job["metadata"]["name"] = "x" * 64
    del job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"]
    job["spec"]["pytorchReplicaSpecs"]["Chief"] = copy.deepcopy(
        job["spec"]["pytorchReplicaSpecs"]["Worker"]
    )
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["image"] = ""
    assert validate_job(job) == [
        f'metadata.name: Invalid value: "{"x" * 64}": should match: must be no more than 63 '
        "characters",
        "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1",
        "spec.pytorchReplicaSpecs[Worker].template.spec.containers[0].image: Required value: "
        "must be required",
        'spec.pytorchReplicaSpecs[Chief]: Unsupported value: "Chief": supported values: '
        '"Master", "Worker"',
    ]


def test_tf_container_name_and_roles() -> None:
    job = tfjob("tf", {"Chief": (1, ["python"]), "Master": (1, ["python"])})
    job["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["name"] = "tf"
    assert validate_job(job) == [
        "spec.tfReplicaSpecs[Chief].template.spec.containers: Required value: must have at least "
        "one container with name tensorflow",
        "spec.tfReplicaSpecs: Forbidden: must not have more than 1 Chief or Master role",
    ]
