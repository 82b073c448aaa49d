"""Pod settings on the local backend: what has a local meaning is applied to the replicas'
processes, and everything else is named once as not applying, never dropped silently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ciao.backend.local.engine import ReplicaEngine
from ciao.backend.local.plan import LocalPlan
from ciao.backend.local.pod_settings import (
    check_folders,
    cluster_only,
    local_environment,
    settings_note,
)
from ciao.errors import BackendError
from ciao.interpreter.pod import SETTING_BY_MAGIC, PodSettings, settings_from
from ciao.interpreter.types import Parameter, RoleSpec


def settings(*magics: str, origin: str = "line 1") -> PodSettings:
    """The settings of magic texts such as `env=A=1` (read by the magics' own readers)."""
    values = []
    for text in magics:
        magic, _, value = text.partition("=")
        setting = SETTING_BY_MAGIC[magic]
        values.append((setting, setting.read(value), origin))
    return settings_from(values)


def parameter(job: PodSettings, worker: PodSettings | None = None) -> Parameter:
    roles = {"master": RoleSpec("master", 1, pod=job)}
    if worker is not None:
        roles["worker"] = RoleSpec("worker", 2, pod=worker.with_defaults(job))
    return Parameter("pytorch", roles, generate_name="ciao-local", pod=job)


def test_env_values_reach_the_replicas_and_secret_references_do_not() -> None:
    env = local_environment(settings("env=MODE=fast", "env=TOKEN=secret:hf/token"))
    assert env == {"MODE": "fast"}


def test_a_host_folder_is_named_where_the_replica_finds_it(tmp_path: Path) -> None:
    env = local_environment(settings(f"volume=hostPath:{tmp_path}:/data:ro"))
    assert env == {"CIAO_VOLUME_DATA": str(tmp_path)}


def test_a_host_folder_that_does_not_exist_is_refused_before_anything_runs(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(BackendError) as caught:
        check_folders(parameter(settings(f"volume=hostPath:{missing}:/data", origin="line 3")))
    assert str(caught.value) == (
        f"%volume=hostPath:{missing}:/data (line 3): {missing} is not a folder on this machine"
    )


def test_the_missing_host_folder_is_named_with_its_own_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    two = settings("volume=pvc:datasets:/data", origin="line 2").with_defaults(
        settings(f"volume=hostPath:{missing}:/scratch", origin="config pod")
    )
    with pytest.raises(BackendError, match=r"/scratch \(config pod\): "):
        check_folders(parameter(two))


def test_cluster_only_settings_are_listed_once_with_the_role_they_belong_to() -> None:
    job = settings(
        "volume=pvc:datasets:/data:ro",
        "shm=8Gi",
        "env=MODE=fast",
        "env=TOKEN=secret:hf/token",
        "image=pytorch/pytorch:2.5.1",
    )
    worker = settings("toleration=nvidia.com/gpu:NoSchedule")
    assert cluster_only(parameter(job, worker)) == [
        "%volume=pvc:datasets:/data:ro",
        "%shm=8Gi",
        "%env=TOKEN=secret:hf/token",
        "%image=pytorch/pytorch:2.5.1",
        "%toleration=nvidia.com/gpu:NoSchedule (worker)",
    ]
    note = settings_note(parameter(job, worker))
    assert note.startswith("[ciao] note: %volume=pvc:datasets:/data:ro, %shm=8Gi, ")
    assert note.endswith("apply on Kubernetes, not to local processes")


def test_a_profiles_kubernetes_objects_are_listed_by_their_keys() -> None:
    profile = dataclasses.replace(
        settings("shm=8Gi", origin="profile gpu"),
        security_context={"fsGroup": 2000},
        affinity={"nodeAffinity": {}},
        labels=(("team", "vision"),),
        origins={
            **settings("shm=8Gi", origin="profile gpu").origins,
            **dict.fromkeys(("securityContext", "affinity", "labels"), "profile gpu"),
        },
    )
    assert cluster_only(parameter(profile)) == [
        "%shm=8Gi",
        "affinity (profile gpu)",
        "securityContext (profile gpu)",
        "labels (profile gpu)",
    ]


def test_nothing_is_noted_when_every_setting_applies_locally(tmp_path: Path) -> None:
    job = settings("env=MODE=fast", f"volume=hostPath:{tmp_path}:/data")
    assert settings_note(parameter(job)) == ""


def test_the_plan_gives_each_role_its_own_environment_under_the_operators(tmp_path: Path) -> None:
    job = settings("env=MODE=fast")
    worker = settings("env=MODE=slow", "env=EXTRA=1")
    plan: LocalPlan = ReplicaEngine().plan(parameter(job, worker), str(tmp_path / "code.py"))
    envs = {launch.replica: launch.env for launch in plan.launches}
    assert envs["master-0"]["MODE"] == "fast" and "EXTRA" not in envs["master-0"]
    assert envs["worker-1"]["MODE"] == "slow" and envs["worker-1"]["EXTRA"] == "1"
    assert envs["worker-1"]["RANK"] == "2"  # the operator's variables are untouched
