"""A cell's pod settings where Kubernetes takes them: every replica template of a v1
PyTorchJob or TFJob, and the pod override of each Kubeflow Trainer v2 release; what a
release cannot carry is refused while the job is planned, saying where the setting came
from and what to do instead. Every document is checked against the CRD of its API (strict:
an unknown field is a problem) and the operator's webhook rules."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fakecluster import validate_job, validate_trainjob
from pod_examples import (
    DATA_MOUNT,
    DATA_VOLUME,
    DONE_WHEN,
    GPU_NODES,
    GPU_PROFILE,
    GPU_TAINT,
    SHM_MOUNT,
    SHM_VOLUME,
    TOKEN,
    cell,
    given,
)

from ciao.backend.kubeflow.manifests import PodSecurity, job_manifest
from ciao.backend.kubeflow.plan import Target, plan_job
from ciao.backend.kubeflow.trainjob import OVERRIDE_FIELDS, Runtime, trainjob_manifest
from ciao.errors import BackendError
from ciao.interpreter.pod import PodSettings
from ciao.s2i.types import Shipment

CODE_BESIDE = Shipment(
    "pytorch/pytorch:2.5.1",
    command=("python", "-u", "/opt/ciao/code.py"),
    files={"code.py": "print(1)\n"},
    script="/opt/ciao/code.py",
)
RUNTIME = Runtime("torch-distributed")
PYTORCH = "%framework=pytorch\n%master=1\n%worker=2\nprint(1)"
TENSORFLOW = "%framework=tensorflow\n%chief=1\n%worker=2\n%ps=1\nprint(1)"
NODES = "%nodes=2\nprint(1)"


def templates(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each replica type's pod template of a v1 job."""
    key = "pytorchReplicaSpecs" if job["kind"] == "PyTorchJob" else "tfReplicaSpecs"
    return {kind: spec["template"] for kind, spec in job["spec"][key].items()}


def override_pod(job: dict[str, Any], release: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod metadata, pod spec) of a TrainJob's override (v2.0 has no metadata)."""
    (override,) = job["spec"][OVERRIDE_FIELDS[release]]
    if release == "v2.0":
        assert override["targetJobs"] == [{"name": "node"}]
        return {}, {k: v for k, v in override.items() if k != "targetJobs"}
    if release == "v2.1":
        assert override["targetJobs"] == [{"name": "node"}]
        return override["metadata"], override["spec"]
    (replicated,) = override["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == "node"
    pod = replicated["template"]["spec"]["template"]
    return pod["metadata"], pod["spec"]


def env_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in entries}


# --- the issue's example on every API ----------------------------------------------------


@pytest.mark.parametrize("text", [PYTORCH, TENSORFLOW])
def test_on_v1_every_replica_template_gets_the_volume_the_secret_the_gpu_nodes_and_shm(text):
    job = job_manifest(cell(text, DONE_WHEN), CODE_BESIDE, "team")
    assert validate_job(job) == []
    for template in templates(job).values():
        spec = template["spec"]
        (container,) = spec["containers"]
        assert DATA_VOLUME in spec["volumes"] and SHM_VOLUME in spec["volumes"]
        assert container["volumeMounts"][-2:] == [DATA_MOUNT, SHM_MOUNT]
        env = env_of(container["env"])
        assert env["TOKEN"] == TOKEN, "a reference the kubelet resolves: Ciao reads no Secret"
        assert env["CIAO_VOLUME_DATA"] == "/data", "where the volume is, for the code"
        assert spec["nodeSelector"] == GPU_NODES and spec["tolerations"] == GPU_TAINT


@pytest.mark.parametrize("release", ["v2.0", "v2.1", "v2.2", "v2.3"])
def test_on_v2_the_release_override_carries_them_and_the_trainer_env_the_secret(release):
    job = trainjob_manifest(cell(NODES, DONE_WHEN), CODE_BESIDE, "team", RUNTIME, release)
    assert validate_trainjob(job, release=release) == []
    _, pod = override_pod(job, release)
    assert DATA_VOLUME in pod["volumes"] and SHM_VOLUME in pod["volumes"]
    (container,) = pod["containers"]
    assert container["volumeMounts"][-2:] == [DATA_MOUNT, SHM_MOUNT]
    assert "env" not in container, "the webhook refuses env for `node` in an override"
    env = env_of(job["spec"]["trainer"]["env"])
    assert env["TOKEN"] == TOKEN and env["CIAO_VOLUME_DATA"] == "/data"
    assert pod["nodeSelector"] == GPU_NODES and pod["tolerations"] == GPU_TAINT


# --- each setting's Kubernetes shape ------------------------------------------------------

EVERYTHING = given(
    ("volume", "pvc:checkpoints:/ckpt", "line 2"),
    ("volume", "emptyDir:/scratch:20Gi", "line 2"),
    ("volume", "configMap:settings:/etc/app", "line 3"),
    ("volume", "secret:certs:/etc/certs", "line 3"),
    ("env", "WANDB_PROJECT=demo", "line 4"),
    ("env", "MODE=configMap:settings/mode", "line 4"),
    ("envFrom", "secret:s3-creds", "line 5"),
    ("toleration", "dedicated=ml:NoExecute", "line 6"),
    ("toleration", "spot", "line 6"),
    ("serviceAccount", "trainer", "line 7"),
    ("imagePullSecret", "regcred", "line 8"),
    ("priorityClass", "high", "line 9"),
    ("schedulerName", "my-scheduler", "line 10"),
)
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
            ]
        }
    }
}
PROFILE = dataclasses.replace(
    PodSettings(),
    affinity=AFFINITY,
    security_context={"fsGroup": 2000, "supplementalGroups": [3000]},
    labels=(("team", "vision"),),
    annotations=(("example.com/owner", "ana"),),
    origins={k: "profile a100" for k in ("affinity", "securityContext", "labels", "annotations")},
)


@pytest.mark.parametrize("text", [PYTORCH, TENSORFLOW])
def test_on_v1_every_setting_has_its_pod_field(text):
    job = job_manifest(cell(text, EVERYTHING.with_defaults(PROFILE)), CODE_BESIDE, "team")
    assert validate_job(job) == []
    for template in templates(job).values():
        spec = template["spec"]
        (container,) = spec["containers"]
        assert spec["volumes"][2:] == [
            {"name": "volume-ckpt", "persistentVolumeClaim": {"claimName": "checkpoints"}},
            {"name": "volume-scratch", "emptyDir": {"sizeLimit": "20Gi"}},
            {"name": "volume-etc-app", "configMap": {"name": "settings"}},
            {"name": "volume-etc-certs", "secret": {"secretName": "certs"}},
        ], "after Ciao's own (its code and HOME)"
        assert container["volumeMounts"][2:] == [
            {"name": "volume-ckpt", "mountPath": "/ckpt"},
            {"name": "volume-scratch", "mountPath": "/scratch"},
            {"name": "volume-etc-app", "mountPath": "/etc/app", "readOnly": True},
            {"name": "volume-etc-certs", "mountPath": "/etc/certs", "readOnly": True},
        ]
        env = env_of(container["env"])
        assert env["WANDB_PROJECT"] == "demo"
        assert env["MODE"] == {"configMapKeyRef": {"name": "settings", "key": "mode"}}
        assert env["CIAO_JOB_NAME"] == "ciao-abcde", "Ciao's own stay"
        assert {env[f"CIAO_VOLUME_{n}"] for n in ("CKPT", "SCRATCH", "ETC_APP", "ETC_CERTS")} == {
            "/ckpt",
            "/scratch",
            "/etc/app",
            "/etc/certs",
        }
        assert container["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
        assert spec["tolerations"] == [
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
            {"key": "spot", "operator": "Exists"},
        ]
        assert spec["serviceAccountName"] == "trainer"
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        assert spec["priorityClassName"] == "high" and spec["schedulerName"] == "my-scheduler"
        assert spec["affinity"] == AFFINITY
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 2000,  # the profile's, key by key over Ciao's
            "seccompProfile": {"type": "RuntimeDefault"},
            "supplementalGroups": [3000],
        }
        labels, annotations = template["metadata"]["labels"], template["metadata"]["annotations"]
        assert labels["team"] == "vision" and labels["app.kubernetes.io/managed-by"] == "ciao"
        assert annotations == {"sidecar.istio.io/inject": "false", "example.com/owner": "ana"}
    assert "schedulingPolicy" not in job["spec"]["runPolicy"], "not Volcano: no gang"


def test_a_profiles_security_context_alone_when_ciao_sets_none():
    settings = dataclasses.replace(
        PodSettings(), security_context={"fsGroup": 2000}, origins={"securityContext": "config"}
    )
    job = job_manifest(cell(PYTORCH, settings), CODE_BESIDE, "team", PodSecurity(False))
    for template in templates(job).values():
        assert template["spec"]["securityContext"] == {"fsGroup": 2000}


def test_a_roles_own_line_sets_only_its_replicas():
    worker = given(("toleration", "preemptible:NoSchedule", "line 3"))
    job = job_manifest(cell(PYTORCH, GPU_PROFILE, worker=worker), CODE_BESIDE, "team")
    assert validate_job(job) == []
    master, workers = templates(job)["Master"]["spec"], templates(job)["Worker"]["spec"]
    assert master["tolerations"] == GPU_TAINT
    assert workers["tolerations"] == [
        *GPU_TAINT,
        {"key": "preemptible", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert master["nodeSelector"] == workers["nodeSelector"] == GPU_NODES


def test_a_host_folder_is_the_nodes_and_a_home_folder_of_this_machine_is_refused():
    node = given(("volume", "hostPath:/mnt/nvme:/cache", "line 2"))
    (spec,) = {
        repr(t["spec"]["volumes"][-1]): t["spec"]
        for t in templates(job_manifest(cell(PYTORCH, node), CODE_BESIDE, "team")).values()
    }.values()
    assert spec["volumes"][-1] == {"name": "volume-cache", "hostPath": {"path": "/mnt/nvme"}}
    mine = given(("volume", "hostPath:~/data:/data", "line 2"))
    with pytest.raises(BackendError) as info:
        job_manifest(cell(PYTORCH, mine), CODE_BESIDE, "team")
    assert "%volume=hostPath:~/data:/data (line 2)" in str(info.value)
    assert "folder of the node" in str(info.value)


def test_volumes_whose_paths_read_alike_get_names_of_their_own():
    settings = given(
        ("volume", "emptyDir:/data-x", "line 2"), ("volume", "emptyDir:/data_x", "line 3")
    )
    job = job_manifest(cell(PYTORCH, settings), CODE_BESIDE, "team")
    assert validate_job(job) == []
    names = [v["name"] for v in templates(job)["Master"]["spec"]["volumes"]]
    assert len(set(names)) == len(names) and names[-2] == "volume-data-x"


@pytest.mark.parametrize(
    ("profile", "key"),
    [
        (("labels", (("app.kubernetes.io/managed-by", "me"),)), "app.kubernetes.io/managed-by"),
        (("labels", (("ciao.kubeflow.org/cell", "3"),)), "ciao.kubeflow.org/cell"),
        (("annotations", (("sidecar.istio.io/inject", "true"),)), "sidecar.istio.io/inject"),
    ],
)
def test_ciaos_own_pod_labels_cannot_be_overridden(profile, key):
    setting, value = profile
    settings = dataclasses.replace(
        PodSettings(), **{setting: value}, origins={setting: "profile mine"}
    )
    with pytest.raises(BackendError) as info:
        job_manifest(cell(PYTORCH, settings), CODE_BESIDE, "team")
    assert f"{setting} (profile mine): {key} is one of Ciao's own pod {setting}" in str(info.value)


# --- Volcano -----------------------------------------------------------------------------

VOLCANO = given(("schedulerName", "volcano", "line 2"), ("priorityClass", "high", "line 3"))


def test_with_volcano_the_queue_and_gang_are_the_jobs_scheduling_policy_not_kueues_label():
    parameter = cell(PYTORCH, VOLCANO)
    plan = plan_job(parameter, CODE_BESIDE, "team", Target("v1", queue="research"))
    job = plan.job
    assert validate_job(job) == []
    assert job["spec"]["runPolicy"]["schedulingPolicy"] == {
        "minAvailable": 3,  # every replica starts at once, or none
        "queue": "research",
        "priorityClass": "high",
    }
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
    for template in templates(job).values():
        assert template["spec"]["schedulerName"] == "volcano"
        assert template["spec"]["priorityClassName"] == "high"
    assert "queued in research (Volcano)" in plan.description
    kueue = plan_job(cell(PYTORCH, PodSettings()), CODE_BESIDE, "team", Target("v1", queue="q"))
    assert kueue.job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert "queued in q (Kueue)" in kueue.description


def test_volcano_must_schedule_every_role():
    master_only = given(("schedulerName", "volcano", "line 2"))
    with pytest.raises(BackendError, match="the Worker replicas|the worker replicas") as info:
        job_manifest(cell(PYTORCH, PodSettings(), master=master_only), CODE_BESIDE, "team")
    assert "the default scheduler" in str(info.value)


# --- Trainer v2: what each release's override carries -------------------------------------


def test_v2_0_carries_volumes_env_placement_and_service_account_but_no_metadata():
    settings = given(
        ("volume", "emptyDir:/scratch", "line 2"),
        ("env", "MODE=fast", "line 3"),
        ("toleration", "spot", "line 4"),
        ("serviceAccount", "trainer", "line 5"),
    ).with_defaults(GPU_PROFILE)
    job = trainjob_manifest(cell(NODES, settings), CODE_BESIDE, "team", RUNTIME, "v2.0")
    assert validate_trainjob(job, release="v2.0") == []
    metadata, pod = override_pod(job, "v2.0")
    assert pod["serviceAccountName"] == "trainer" and pod["nodeSelector"] == GPU_NODES
    assert {"key": "spot", "operator": "Exists"} in pod["tolerations"]
    assert env_of(job["spec"]["trainer"]["env"])["MODE"] == "fast"
    assert metadata == {}


def test_v2_0_with_no_setting_and_no_files_sends_no_override():
    built = Shipment("registry.test/ciao:0123", script="/opt/app-root/src/code.py")
    job = trainjob_manifest(
        cell(NODES, PodSettings()), built, "team", RUNTIME, "v2.0", PodSecurity(False)
    )
    assert "podSpecOverrides" not in job["spec"]
    toleration = given(("toleration", "spot", "line 2"))
    job = trainjob_manifest(
        cell(NODES, toleration), built, "team", RUNTIME, "v2.0", PodSecurity(False)
    )
    assert job["spec"]["podSpecOverrides"] == [
        {"targetJobs": [{"name": "node"}], "tolerations": [{"key": "spot", "operator": "Exists"}]}
    ]


@pytest.mark.parametrize("release", ["v2.1", "v2.3"])
def test_from_v2_1_pull_secrets_affinity_and_pod_metadata_too(release):
    settings = given(("imagePullSecret", "regcred", "line 2")).with_defaults(
        dataclasses.replace(PROFILE, security_context=None)
    )
    job = trainjob_manifest(cell(NODES, settings), CODE_BESIDE, "team", RUNTIME, release)
    assert validate_trainjob(job, release=release) == []
    metadata, pod = override_pod(job, release)
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["affinity"] == AFFINITY
    assert metadata["labels"]["team"] == "vision"
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "ciao"
    assert metadata["annotations"]["example.com/owner"] == "ana"


@pytest.mark.parametrize("release", ["v2.2", "v2.3"])
def test_from_v2_2_a_profiles_security_context_over_ciaos(release):
    job = trainjob_manifest(cell(NODES, PROFILE), CODE_BESIDE, "team", RUNTIME, release)
    assert validate_trainjob(job, release=release) == []
    _, pod = override_pod(job, release)
    assert pod["securityContext"]["fsGroup"] == 2000
    assert pod["securityContext"]["runAsNonRoot"] is True, "Ciao's own, key by key"


# --- Trainer v2: what a release cannot carry, refused while planning -----------------------


def refusal(settings: PodSettings, release: str, text: str = NODES) -> str:
    with pytest.raises(BackendError) as info:
        trainjob_manifest(cell(text, settings), CODE_BESIDE, "team", RUNTIME, release)
    return str(info.value)


@pytest.mark.parametrize("release", ["v2.0", "v2.1", "v2.3"])
@pytest.mark.parametrize(
    ("magic", "value", "field"),
    [("priorityClass", "high", "priorityClassName"), ("schedulerName", "volcano", "schedulerName")],
)
def test_priority_class_and_scheduler_only_a_runtime_sets_on_any_v2(release, magic, value, field):
    message = refusal(given((magic, value, "line 3")), release)
    assert f"%{magic}={value} (line 3)" in message
    assert f"Kubeflow Trainer {release}'s TrainJob cannot set the pod's {field}" in message
    assert OVERRIDE_FIELDS[release] in message
    assert "a TrainingRuntime" in message and "%runtime=NAME" in message


def test_a_pull_secret_on_v2_0_is_the_service_accounts():
    message = refusal(given(("imagePullSecret", "regcred", "profile private")), "v2.0")
    assert "%imagePullSecret=regcred (profile private)" in message
    assert "Kubeflow Trainer v2.0's TrainJob cannot set the pod's imagePullSecrets" in message
    assert (
        "kubectl patch serviceaccount NAME -p "
        '\'{"imagePullSecrets":[{"name":"regcred"}]}\', and run as it with '
        "%serviceAccount=NAME" in message
    )
    named = given(("imagePullSecret", "regcred", "line 2"), ("serviceAccount", "trainer", "line 3"))
    assert "kubectl patch serviceaccount trainer" in refusal(named, "v2.0")


@pytest.mark.parametrize(
    ("setting", "value", "releases"),
    [
        ("labels", (("team", "vision"),), ["v2.0"]),
        ("annotations", (("a.example.com/b", "c"),), ["v2.0"]),
        ("affinity", AFFINITY, ["v2.0"]),
        ("securityContext", {"fsGroup": 2000}, ["v2.0", "v2.1"]),
    ],
)
def test_profile_objects_a_release_has_no_field_for(setting, value, releases):
    field = {"securityContext": "security_context"}.get(setting, setting)
    settings = dataclasses.replace(
        PodSettings(), **{field: value}, origins={setting: "profile gpu"}
    )
    for release in releases:
        message = refusal(settings, release)
        assert message.startswith(f"{setting} (profile gpu): Kubeflow Trainer {release}'s")
        assert "a TrainingRuntime" in message and "%runtime=NAME" in message


@pytest.mark.parametrize("release", ["v2.0", "v2.1", "v2.3"])
def test_env_from_is_refused_on_v2_for_one_env_per_key(release):
    message = refusal(given(("envFrom", "secret:s3-creds", "line 4")), release)
    assert "%envFrom=secret:s3-creds (line 4)" in message
    assert "cannot set the container's envFrom" in message
    assert "%env=NAME=secret:SECRET/KEY" in message


def test_a_refusal_names_every_value_where_it_was_given():
    """A list setting's values may come from the config, a profile and several lines."""
    from_config = given(("imagePullSecret", "shared", "config pod"))
    from_cell = given(("imagePullSecret", "a", "line 2"), ("imagePullSecret", "b", "line 3"))
    message = refusal(from_cell.with_defaults(from_config), "v2.0")
    assert message.startswith(
        "%imagePullSecret=shared (config pod), %imagePullSecret=a (line 2), "
        "%imagePullSecret=b (line 3): Kubeflow Trainer v2.0's TrainJob cannot set"
    )
    assert '{"imagePullSecrets":[{"name":"shared"},{"name":"a"},{"name":"b"}]}' in message


def test_volcano_on_v2_is_a_runtime_whose_pod_group_policy_is_volcano():
    message = refusal(given(("schedulerName", "volcano", "line 2")), "v2.1")
    assert "%schedulerName=volcano (line 2)" in message
    assert "from v2.1, a runtime whose podGroupPolicy is volcano" in message


def test_every_refusal_of_a_cell_in_one_error():
    settings = given(("imagePullSecret", "regcred", "line 2"), ("priorityClass", "high", "line 3"))
    message = refusal(settings, "v2.0")
    assert "%imagePullSecret=regcred (line 2)" in message
    assert "%priorityClass=high (line 3)" in message


def test_on_v2_the_roles_lines_cannot_set_different_pods():
    worker = given(("toleration", "spot", "line 3"))
    parameter = cell("%master=1\n%worker=2\nprint(1)", GPU_PROFILE, worker=worker)
    with pytest.raises(BackendError) as info:
        trainjob_manifest(parameter, CODE_BESIDE, "team", RUNTIME, "v2.3")
    message = str(info.value)
    assert "every node the same pod" in message and "master and worker" in message
    assert "different %toleration (line 3)" in message


def test_on_v2_the_refusal_names_the_role_lines_not_the_jobs():
    job = given(("toleration", "gpu", "line 1"))
    master = given(("toleration", "spot", "line 2"))
    parameter = cell("%master=1\n%worker=2\nprint(1)", job, master=master)
    with pytest.raises(BackendError, match=r"different %toleration \(line 2\):"):
        trainjob_manifest(parameter, CODE_BESIDE, "team", RUNTIME, "v2.3")


def test_the_refusal_is_part_of_the_plan_so_dryrun_shows_it():
    """`KubeflowBackend.dry_run` (and so %dryrun and every run) is `plan_job`."""
    target = Target("v2", "auto", RUNTIME, "v2.0", "openapi")
    with pytest.raises(BackendError, match="imagePullSecrets"):
        plan_job(cell(NODES, given(("imagePullSecret", "r", "line 2"))), CODE_BESIDE, "t", target)
