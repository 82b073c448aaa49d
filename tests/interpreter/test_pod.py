"""The pod-settings model: how settings from several places merge, and what it tells the
backends (where a setting came from, which variables say where volumes are)."""

from __future__ import annotations

from ciao.interpreter.pod import (
    SETTING_BY_MAGIC,
    SETTINGS,
    EnvVar,
    PodSettings,
    Toleration,
    identity,
    read_volume,
    settings_from,
    volume_env_name,
)


def settings(origin: str, *magics: str) -> PodSettings:
    values = []
    for text in magics:
        name, _, value = text.partition("=")
        setting = SETTING_BY_MAGIC[name]
        values.append((setting, setting.read(value), origin))
    return settings_from(values)


def test_nothing_set_is_falsy_and_names_nothing():
    assert not PodSettings()
    assert PodSettings().set_names() == []
    assert settings("line 1", "env=A=1").set_names() == ["env"]


def test_lists_merge_by_identity_with_the_later_one_winning():
    earlier = settings("config pod", "env=A=1", "env=B=1", "volume=pvc:a:/data", "nodeSelector=k=1")
    later = settings("line 2", "env=B=2", "volume=pvc:b:/data/", "nodeSelector=k=2")
    merged = later.with_defaults(earlier)
    assert merged.env == (EnvVar("A", "1"), EnvVar("B", "2"))
    assert [(v.source, v.path) for v in merged.volumes] == [("b", "/data")]
    assert merged.node_selector == (("k", "2"),)


def test_tolerations_pull_secrets_and_env_from_add_up_once_each():
    earlier = settings("profile gpu", "toleration=a", "imagePullSecret=x", "envFrom=secret:s")
    later = settings("line 1", "toleration=a", "toleration=b", "imagePullSecret=y")
    merged = later.with_defaults(earlier)
    assert merged.tolerations == (Toleration("a"), Toleration("b"))
    assert merged.image_pull_secrets == ("x", "y")
    assert len(merged.env_from) == 1


def test_one_value_settings_are_replaced_only_when_given():
    earlier = settings("config pod", "serviceAccount=a", "shm=1Gi")
    later = settings("line 3", "shm=8Gi")
    merged = later.with_defaults(earlier)
    assert (merged.service_account, merged.shm) == ("a", "8Gi")
    assert merged.origin("serviceAccount") == "config pod"
    assert merged.origin("shm") == "line 3"
    assert PodSettings().origin("shm") == "the cell"


def test_each_value_of_a_list_is_where_it_was_given():
    """A list's values come from several places: each value says its own, the setting as
    a whole where its first value was."""
    earlier = settings("config pod", "volume=hostPath:/srv:/srv", "env=A=1")
    later = settings("line 2", "volume=pvc:a:/data", "volume=pvc:b:/ckpt", "env=B=2")
    merged = later.with_defaults(earlier)
    assert merged.origin("volume", "hostPath:/srv:/srv") == "config pod"
    assert merged.origin("volume", "pvc:b:/ckpt") == "line 2"
    assert merged.origin("env", "A=1") == "config pod"
    assert merged.origin("volume") == "line 2"
    assert merged.origin("volume", "pvc:never:/x") == "line 2"


def test_objects_merge_as_kubernetes_objects():
    earlier = PodSettings(
        security_context={"fsGroup": 1000, "runAsUser": 1000},
        affinity={"nodeAffinity": {"a": 1}},
        labels=(("team", "ml"), ("tier", "batch")),
    )
    later = PodSettings(
        security_context={"fsGroup": 2000},
        affinity={"podAntiAffinity": {"b": 2}},
        labels=(("tier", "gpu"),),
    )
    merged = later.with_defaults(earlier)
    assert merged.security_context == {"fsGroup": 2000, "runAsUser": 1000}
    assert merged.affinity == {"podAntiAffinity": {"b": 2}}  # replaced whole
    assert merged.labels == (("team", "ml"), ("tier", "gpu"))


def test_identity_names_what_clashes():
    assert identity("env", EnvVar("TOKEN", "x")) == ("the variable", "TOKEN")
    assert identity("volumes", read_volume("pvc:a:/data//x/")) == ("the mount path", "/data/x")
    assert identity("tolerations", Toleration("a")) is None


def test_every_volume_says_where_it_is():
    pod = settings("line 1", "volume=pvc:a:/data/train", "volume=emptyDir:/scratch")
    assert pod.mount_env() == {
        "CIAO_VOLUME_DATA_TRAIN": "/data/train",
        "CIAO_VOLUME_SCRATCH": "/scratch",
    }
    assert volume_env_name("/mnt/my-data.v2") == "CIAO_VOLUME_MNT_MY_DATA_V2"


def test_only_the_image_is_the_whole_jobs_and_only_env_applies_locally():
    assert [s.magic for s in SETTINGS if not s.per_role] == ["image"]
    assert [s.magic for s in SETTINGS if not s.cluster_only] == ["env"]


def test_an_env_value_is_read_without_the_blanks_around_it():
    from ciao.interpreter.pod import read_env

    assert read_env("A = 1").describe() == "A=1"
    assert read_env("TOKEN = secret:hf/token").describe() == "TOKEN=secret:hf/token"
    assert read_env("A=b=c").describe() == "A=b=c"
