"""The pod magics, as a specification: what %volume, %env, %toleration... mean, where they
apply (every role, or one role's line), how they merge with the config's pod: and a
%profile, and every error, with its line and magic."""

from __future__ import annotations

import pytest

from ciao.errors import MagicError, MagicErrors
from ciao.interpreter.assist import complete, inspect, is_complete
from ciao.interpreter.docs import MAGICS, help_text
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.pod import (
    SETTINGS,
    EnvFrom,
    EnvVar,
    PodSettings,
    Toleration,
    Volume,
    read_env,
    read_toleration,
    read_volume,
    settings_from,
)
from ciao.interpreter.route import runs_in_session


def errors_of(code: str, interp: MagicInterpreter | None = None) -> list[MagicError]:
    with pytest.raises(MagicErrors) as caught:
        (interp or MagicInterpreter()).preprocess(code)
    return caught.value.errors


def only_error(code: str, interp: MagicInterpreter | None = None) -> MagicError:
    errors = errors_of(code, interp)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def assert_error(error: MagicError, line: int, magic: str, *words: str) -> None:
    assert (error.line, error.magic) == (line, magic), str(error)
    for word in words:
        assert word in error.message, (word, error.message)


def pod(code: str, interp: MagicInterpreter | None = None) -> PodSettings:
    """The job's pod settings (every role's) of a one-master PyTorch cell."""
    return (interp or MagicInterpreter()).preprocess(code).pod


# --- every magic: what each valid form means ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "volume"),
    [
        ("pvc:datasets:/data:ro", Volume("pvc", "datasets", "/data", read_only=True)),
        ("pvc:datasets:/data:rw", Volume("pvc", "datasets", "/data")),
        ("pvc:ckpt:/checkpoints", Volume("pvc", "ckpt", "/checkpoints")),
        ("persistentVolumeClaim:ckpt:/ckpt", Volume("pvc", "ckpt", "/ckpt")),
        ("emptyDir:/scratch", Volume("emptyDir", "", "/scratch")),
        ("emptyDir:/scratch:20Gi", Volume("emptyDir", "", "/scratch", size="20Gi")),
        ("configMap:settings:/etc/train", Volume("configMap", "settings", "/etc/train", True)),
        ("secret:gcs-key:/var/secrets", Volume("secret", "gcs-key", "/var/secrets", True)),
        ("hostPath:/mnt/fast:/data:ro", Volume("hostPath", "/mnt/fast", "/data", True)),
        ("PVC:datasets:/data//train/", Volume("pvc", "datasets", "/data/train")),
    ],
)
def test_volume_forms(text, volume) -> None:
    assert pod(f"%volume={text}").volumes == (volume,)


def test_volumes_describe_themselves_as_the_magic_writes_them() -> None:
    for text in ("pvc:datasets:/data:ro", "emptyDir:/scratch:20Gi", "hostPath:/mnt:/data"):
        assert read_volume(text).describe() == text
    assert read_volume("configMap:settings:/etc/train").describe() == (
        "configMap:settings:/etc/train:ro"  # ConfigMap volumes are read-only
    )


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("HF_HOME=/data/hf", EnvVar("HF_HOME", "/data/hf")),
        ("EMPTY=", EnvVar("EMPTY", "")),
        ("OPTS=--a=1 --b=2", EnvVar("OPTS", "--a=1 --b=2")),
        ("my.var-1=x", EnvVar("my.var-1", "x")),
        (
            "TOKEN=secret:hf/token",
            EnvVar("TOKEN", ref_kind="secret", ref_name="hf", ref_key="token"),
        ),
        (
            "MODE=configMap:settings/mode.txt",
            EnvVar("MODE", ref_kind="configMap", ref_name="settings", ref_key="mode.txt"),
        ),
        (
            "MODE=configmap:settings/mode",
            EnvVar("MODE", ref_kind="configMap", ref_name="settings", ref_key="mode"),
        ),
    ],
)
def test_env_forms(text, env) -> None:
    assert pod(f"%env={text}").env == (env,)
    assert read_env(text).describe() == text.replace("configmap:", "configMap:")


@pytest.mark.parametrize(
    ("text", "env_from"),
    [
        ("secret:s3-creds", EnvFrom("secret", "s3-creds")),
        ("configMap:settings", EnvFrom("configMap", "settings")),
        ("ConfigMap:settings", EnvFrom("configMap", "settings")),
    ],
)
def test_env_from_forms(text, env_from) -> None:
    assert pod(f"%envFrom={text}").env_from == (env_from,)


@pytest.mark.parametrize(
    ("text", "toleration"),
    [
        ("nvidia.com/gpu:NoSchedule", Toleration("nvidia.com/gpu", effect="NoSchedule")),
        ("nvidia.com/gpu", Toleration("nvidia.com/gpu")),
        ("dedicated=ml:NoExecute", Toleration("dedicated", "ml", "NoExecute", exists=False)),
        ("dedicated=ml", Toleration("dedicated", "ml", exists=False)),
        ("spot:prefernoschedule", Toleration("spot", effect="PreferNoSchedule")),
    ],
)
def test_toleration_forms(text, toleration) -> None:
    assert pod(f"%toleration={text}").tolerations == (toleration,)
    assert read_toleration(text).describe().lower() == text.lower()


@pytest.mark.parametrize(
    ("magic", "field", "value"),
    [
        ("shm=8Gi", "shm", "8Gi"),
        ("shm=512Mi", "shm", "512Mi"),
        (
            "nodeSelector=nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
            "node_selector",
            (("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),),
        ),
        ("nodeSelector=pool=", "node_selector", (("pool", ""),)),
        ("serviceAccount=trainer", "service_account", "trainer"),
        ("imagePullSecret=regcred", "image_pull_secrets", ("regcred",)),
        ("priorityClass=high", "priority_class", "high"),
        ("schedulerName=volcano", "scheduler_name", "volcano"),
        ("image=nvcr.io/nvidia/pytorch:24.10-py3", "image", "nvcr.io/nvidia/pytorch:24.10-py3"),
        ("image=registry:5000/team/img@sha256:abc", "image", "registry:5000/team/img@sha256:abc"),
    ],
)
def test_one_value_and_name_magics(magic, field, value) -> None:
    assert getattr(pod(f"%{magic}"), field) == value


def test_pod_magic_names_are_case_insensitive_and_blanks_are_tolerated() -> None:
    settings = pod("% ENV = A=1\n%ServiceAccount= trainer ")
    assert settings.env == (EnvVar("A", "1"),)
    assert settings.service_account == "trainer"


def test_a_cell_with_only_a_pod_magic_is_a_one_replica_job() -> None:
    assert not runs_in_session("%env=A=1\nprint(1)")
    parameter = MagicInterpreter().preprocess("%env=A=1\nprint(1)")
    assert parameter.replica_names() == ["master-0"]
    assert parameter.pod_of("master").env == (EnvVar("A", "1"),)


def test_ipythons_env_form_stays_the_sessions_and_is_named_in_a_job_cell() -> None:
    assert runs_in_session("%env DATA=/tmp/data\nprint(1)")
    assert runs_in_session("%env")
    error = only_error("%master=1\n%env DATA=/tmp/data")
    assert_error(error, 2, "%env", "write %env=DATA=/tmp/data", "IPython's", "session")


# --- every invalid form: its line, its magic, what is wrong ---------------------------------


@pytest.mark.parametrize(
    ("magic", "value", "words"),
    [
        ("volume", "nfs:server:/data", ["unknown volume kind 'nfs'", "pvc:NAME:/path[:ro]"]),
        ("volume", "pvc:datasets", ["expected pvc:claim name:/path[:ro]"]),
        ("volume", "pvc:d:/data:rx", ["expected pvc:claim name:/path[:ro]", "'pvc:d:/data:rx'"]),
        ("volume", "pvc:Datasets:/data", ["'Datasets' is not a claim name"]),
        ("volume", "pvc:d:data", ["absolute folder like /data", "'data'"]),
        ("volume", "pvc:d:/", ["absolute folder"]),
        ("volume", "pvc:d:/data/../etc", ["must not contain '..'"]),
        ("volume", "pvc:d:/opt/ciao", ["/opt/ciao is where Ciao mounts its own files"]),
        ("volume", "pvc:d:/opt", ["/opt/ciao is where Ciao mounts its own files"]),
        ("volume", "emptyDir:/dev/shm", ["%shm=8Gi"]),
        ("volume", "emptyDir:/x:lots", ["the emptyDir's size", "'lots' is not a Kubernetes"]),
        ("volume", "emptyDir:/x:1Gi:ro", ["expected emptyDir:/path or emptyDir:/path:SIZE"]),
        ("volume", "hostPath:data:/data", ["host folder must be an absolute path"]),
        ("volume", "secret:My_Secret:/s", ["'My_Secret' is not a Secret name"]),
        ("shm", "8", ["/dev/shm's size", "less than 1Mi", "did you mean 8Mi?"]),
        ("shm", "lots", ["/dev/shm's size", "not a Kubernetes quantity"]),
        ("shm", "100m", ["less than one byte", "did you mean 100Mi?"]),
        ("env", "NOVALUE", ["expected NAME=value or NAME=secret:SECRET/KEY", "'NOVALUE'"]),
        ("env", "1ABC=x", ["'1ABC' is not an environment variable name"]),
        ("env", "MY VAR=x", ["'MY VAR' is not an environment variable name"]),
        ("env", "RANK=3", ["RANK is set by Ciao or the operator"]),
        ("env", "MASTER_ADDR=x", ["MASTER_ADDR is set by Ciao or the operator"]),
        ("env", "CIAO_JOB=x", ["CIAO_JOB is set by Ciao or the operator"]),
        ("env", "TOKEN=secret:hf", ["TOKEN: a secret reference is secret:NAME/KEY"]),
        ("env", "TOKEN=secret:hf/", ["a secret reference is secret:NAME/KEY"]),
        ("env", "TOKEN=secret:HF/token", ["'HF' is not a secret name"]),
        ("env", "TOKEN=secret:hf/a b", ["'a b' is not a secret key"]),
        ("envFrom", "vault:creds", ["expected secret:NAME or configMap:NAME", "'vault:creds'"]),
        ("envFrom", "s3-creds", ["expected secret:NAME or configMap:NAME"]),
        ("envFrom", "secret:S3", ["'S3' is not a secret name"]),
        ("nodeSelector", "gpu", ["expected label=value", "'gpu'"]),
        ("nodeSelector", "-gpu=x", ["'-gpu' is not a label key"]),
        ("nodeSelector", "Example.com/gpu=x", ["the prefix before / must be a DNS name"]),
        ("nodeSelector", "gpu=a b", ["'a b' is not a label value"]),
        ("nodeSelector", "gpu=" + "x" * 64, ["is not a label value (at most 63"]),
        ("toleration", "nvidia.com/gpu:Sometimes", ["unknown taint effect 'Sometimes'"]),
        ("toleration", "nvidia.com/gpu:", ["unknown taint effect ''", "NoSchedule"]),
        ("toleration", ":NoSchedule", ["'' is not a label key"]),
        ("toleration", "k=v v:NoSchedule", ["'v v' is not a label value"]),
        ("serviceAccount", "Trainer", ["'Trainer' is not a service account name"]),
        ("imagePullSecret", "reg_cred", ["'reg_cred' is not a Secret name"]),
        ("priorityClass", "High", ["'High' is not a priority class name"]),
        ("schedulerName", "Volcano", ["'Volcano' is not a scheduler name"]),
        ("image", "a b", ["'a b' is not an image reference"]),
    ],
)
def test_invalid_values_name_the_line_and_the_magic(magic, value, words) -> None:
    error = only_error(f"%master=1\n%{magic}={value}\nprint(1)")
    assert_error(error, 2, f"%{magic}", *words)


@pytest.mark.parametrize("magic", [s.magic for s in SETTINGS])
def test_a_pod_magic_without_its_value(magic) -> None:
    usage = MAGICS[magic].usage
    assert_error(only_error(f"%{magic}="), 1, f"%{magic}", f"empty value: write {usage}")
    if magic != "env":  # `%env NAME=value` is IPython's form: named above
        assert_error(
            only_error(f"%master=1;%{magic}"), 1, f"%{magic}", f"missing value: write {usage}"
        )


def test_every_bad_pod_magic_is_reported_at_once_in_line_order() -> None:
    errors = errors_of(
        "%master=1;%shm=8\n"
        "%env=RANK=1;%volume=nfs:x:/y\n"
        "%worker=2;%toleration=gpu:Never\n"
        "%image=a b\n"
        "print(1)"
    )
    assert [(e.line, e.magic) for e in errors] == [
        (1, "%shm"),
        (2, "%env"),
        (2, "%volume"),
        (3, "%toleration"),
        (4, "%image"),
    ]


# --- scope: every role's on a line of its own, one role's after the role on its line ---------


def test_a_line_of_its_own_is_every_roles() -> None:
    parameter = MagicInterpreter().preprocess(
        "%master=1\n%worker=2\n%env=A=1\n%volume=pvc:datasets:/data:ro"
    )
    assert parameter.pod.env == (EnvVar("A", "1"),)
    for role in ("master", "worker"):
        assert parameter.pod_of(role) == parameter.pod
    assert parameter.pod.origin("env") == "line 3"
    assert parameter.pod.origin("volume") == "line 4"


def test_after_a_role_on_its_line_it_is_that_roles_alone() -> None:
    parameter = MagicInterpreter().preprocess(
        "%master=1\n%worker=4;%gpu=1;%toleration=nvidia.com/gpu:NoSchedule"
    )
    gpu = Toleration("nvidia.com/gpu", effect="NoSchedule")
    assert parameter.pod_of("worker").tolerations == (gpu,)
    assert parameter.pod_of("master").tolerations == ()
    assert parameter.pod.tolerations == ()
    assert parameter.resources("worker").gpu == 1
    assert parameter.pod_of("worker").origin("toleration") == "line 2"


def test_a_roles_line_goes_on_top_of_the_jobs_settings() -> None:
    parameter = MagicInterpreter().preprocess(
        "%env=A=job\n%env=B=job\n%shm=1Gi\n%toleration=spot\n"
        "%master=1\n"
        "%worker=2;%env=B=worker;%shm=8Gi;%toleration=nvidia.com/gpu"
    )
    master, worker = parameter.pod_of("master"), parameter.pod_of("worker")
    assert master.env == (EnvVar("A", "job"), EnvVar("B", "job"))
    assert worker.env == (EnvVar("A", "job"), EnvVar("B", "worker"))
    assert (master.shm, worker.shm) == ("1Gi", "8Gi")
    assert worker.tolerations == (Toleration("spot"), Toleration("nvidia.com/gpu"))
    assert worker.origin("shm") == "line 6" and master.origin("shm") == "line 3"


def test_nodes_line_settings_are_every_nodes() -> None:
    parameter = MagicInterpreter().preprocess("%nodes=3;%gpu=8;%shm=16Gi")
    assert parameter.pod_of("master").shm == parameter.pod_of("worker").shm == "16Gi"
    assert parameter.pod.shm == ""


def test_tensorflow_roles_each_take_their_lines_settings() -> None:
    parameter = MagicInterpreter().preprocess(
        "%framework=tensorflow\n%ps=1;%priorityClass=high\n%worker=2;%env=A=1\n%chief=1"
    )
    assert parameter.pod_of("ps").priority_class == "high"
    assert parameter.pod_of("worker").priority_class == ""
    assert parameter.pod_of("worker").env == (EnvVar("A", "1"),)
    assert parameter.pod_of("chief") == PodSettings()


def test_before_the_role_on_its_line_it_is_an_error_saying_where_it_goes() -> None:
    error = only_error("%env=A=1;%master=1")
    assert_error(error, 1, "%env", "after the role", "%master=1;%env=...", "line of its own")


@pytest.mark.parametrize(
    ("cell", "magic"),
    [
        ("%master=1;%image=pytorch/pytorch:2.5.1", "%image"),
        ("%image=pytorch/pytorch:2.5.1;%master=1", "%image"),
        ("%master=1;%profile=gpu", "%profile"),
    ],
)
def test_the_image_and_the_profile_are_the_whole_jobs(cell, magic) -> None:
    interp = MagicInterpreter(profiles={"gpu": PodSettings()})
    error = only_error(cell, interp)
    assert_error(error, 1, magic, "the whole job's", "a line of its own", "%master=1")


# --- repeats ----------------------------------------------------------------------------------


def test_list_settings_add_up_when_repeated() -> None:
    settings = pod(
        "%volume=pvc:datasets:/data:ro\n%volume=emptyDir:/scratch\n"
        "%toleration=a:NoSchedule;%toleration=b\n"
        "%imagePullSecret=one\n%imagePullSecret=two\n"
        "%envFrom=secret:a;%envFrom=configMap:b\n"
        "%nodeSelector=a=1\n%nodeSelector=b=2\n%env=A=1\n%env=B=2"
    )
    assert [v.path for v in settings.volumes] == ["/data", "/scratch"]
    assert [t.key for t in settings.tolerations] == ["a", "b"]
    assert settings.image_pull_secrets == ("one", "two")
    assert [e.name for e in settings.env_from] == ["a", "b"]
    assert settings.node_selector == (("a", "1"), ("b", "2"))
    assert [e.name for e in settings.env] == ["A", "B"]


@pytest.mark.parametrize(
    ("cell", "line", "magic", "words"),
    [
        ("%env=A=1\n%env=A=2", 2, "%env", "the variable A is given on lines 1 and 2"),
        ("%env=A=1;%env=A=1", 1, "%env", "the variable A is given twice on line 1"),
        (
            "%volume=pvc:a:/data\n%volume=emptyDir:/data/",
            2,
            "%volume",
            "the mount path /data is given on lines 1 and 2",
        ),
        (
            "%nodeSelector=zone=a\n%nodeSelector=zone=b",
            2,
            "%nodeSelector",
            "the node label zone is given on lines 1 and 2",
        ),
        (
            "%master=1;%env=A=1;%env=A=2",
            1,
            "%env",
            "the variable A is given twice on line 1",
        ),
        ("%shm=1Gi\n%shm=2Gi", 2, "%shm", "given on lines 1 and 2; give it once"),
        ("%master=1;%shm=1Gi;%shm=2Gi", 1, "%shm", "given twice on line 1; give it once"),
        ("%image=a\n%image=b", 2, "%image", "given on lines 1 and 2; give it once"),
        ("%serviceAccount=a\n%serviceAccount=b", 2, "%serviceAccount", "lines 1 and 2"),
    ],
)
def test_the_same_thing_twice_in_a_scope_names_both_lines(cell, line, magic, words) -> None:
    assert_error(only_error(cell), line, magic, words, "give it once")


def test_the_same_variable_in_the_job_and_on_role_lines_is_an_override_not_a_repeat() -> None:
    parameter = MagicInterpreter().preprocess(
        "%env=A=job\n%framework=tensorflow\n%chief=1;%env=A=chief\n%worker=2;%env=A=worker"
    )
    assert parameter.pod_of("chief").env == (EnvVar("A", "chief"),)
    assert parameter.pod_of("worker").env == (EnvVar("A", "worker"),)
    assert parameter.pod.env == (EnvVar("A", "job"),)


# --- %profile and the config's pod: ---------------------------------------------------------


def _settings(origin: str, *magics: str) -> PodSettings:
    """Pod settings as the config would give them: read by the magics' readers."""
    from ciao.interpreter.pod import SETTING_BY_MAGIC

    values = []
    for text in magics:
        name, _, value = text.partition("=")
        setting = SETTING_BY_MAGIC[name]
        values.append((setting, setting.read(value), origin))
    return settings_from(values)


CONFIG_POD = _settings(
    "config pod", "env=A=config", "env=B=config", "serviceAccount=default-sa", "toleration=spot"
)
PROFILES = {
    "gpu": _settings(
        "profile gpu",
        "env=B=profile",
        "env=C=profile",
        "serviceAccount=gpu-sa",
        "toleration=nvidia.com/gpu:NoSchedule",
        "volume=pvc:datasets:/data:ro",
        "shm=8Gi",
    ),
    "cpu": _settings("profile cpu", "nodeSelector=pool=cpu"),
}


@pytest.fixture
def configured() -> MagicInterpreter:
    return MagicInterpreter(pod=CONFIG_POD, profiles=PROFILES)


def test_the_configs_pod_settings_are_every_jobs(configured) -> None:
    parameter = configured.preprocess("%master=1\n%worker=1\nprint(1)")
    assert parameter.profile == ""
    assert parameter.pod_of("worker").env == (EnvVar("A", "config"), EnvVar("B", "config"))
    assert parameter.pod_of("master").service_account == "default-sa"
    assert parameter.pod.origin("serviceAccount") == "config pod"


def test_merge_order_config_then_profile_then_cell_then_role_line(configured) -> None:
    parameter = configured.preprocess(
        "%profile=gpu\n%env=C=cell\n%env=D=cell\n%master=1\n%worker=2;%env=D=worker;%shm=16Gi"
    )
    assert parameter.profile == "gpu"
    job, worker = parameter.pod, parameter.pod_of("worker")
    assert {e.name: e.value for e in job.env} == {
        "A": "config",
        "B": "profile",
        "C": "cell",
        "D": "cell",
    }
    assert {e.name: e.value for e in worker.env}["D"] == "worker"
    assert job.service_account == "gpu-sa"  # the profile's over the config's
    assert job.tolerations == (
        Toleration("spot"),
        Toleration("nvidia.com/gpu", effect="NoSchedule"),
    )
    assert (job.shm, worker.shm) == ("8Gi", "16Gi")
    assert job.origin("volume") == "profile gpu"
    assert job.origin("serviceAccount") == "profile gpu"
    assert job.origin("env") == "line 2"
    assert worker.origin("shm") == "line 5"


def test_a_cell_overrides_a_profiles_one_value_setting(configured) -> None:
    parameter = configured.preprocess("%profile=gpu\n%serviceAccount=mine\n%shm=1Gi")
    assert parameter.pod.service_account == "mine"
    assert parameter.pod.shm == "1Gi"
    assert parameter.pod.origin("serviceAccount") == "line 2"


def test_a_profile_of_another_name_leaves_the_others_out(configured) -> None:
    parameter = configured.preprocess("%profile=cpu")
    assert parameter.pod.node_selector == (("pool", "cpu"),)
    assert parameter.pod.volumes == ()


def test_an_unknown_profile_suggests_the_closest_and_lists_them(configured) -> None:
    error = only_error("%profile=gpus\nprint(1)", configured)
    assert_error(error, 1, "%profile", "unknown profile 'gpus'", "did you mean gpu?", "cpu, gpu")
    error = only_error("%profile=tpu-pod", configured)
    assert (
        "did you mean" not in error.message
        and "the config's profiles are cpu, gpu" in error.message
    )


def test_a_profile_without_profiles_in_the_config_says_where_they_go() -> None:
    error = only_error("%profile=gpu")
    assert_error(error, 1, "%profile", "unknown profile 'gpu'", "the config has no profiles:")


def test_a_profile_is_given_once(configured) -> None:
    error = only_error("%profile=gpu\n%profile=cpu", configured)
    assert_error(error, 2, "%profile", "given on lines 1 and 2; give it once")


def test_a_profile_error_comes_with_the_others(configured) -> None:
    errors = errors_of("%profile=nope\n%env=RANK=1", configured)
    assert [(e.line, e.magic) for e in errors] == [(1, "%profile"), (2, "%env")]


# --- %help, Shift-Tab, completion -------------------------------------------------------------


POD_MAGICS = [s.magic for s in SETTINGS]


def test_every_pod_magic_has_a_summary_usage_and_an_example() -> None:
    assert [name for name, doc in MAGICS.items() if doc.kind == "pod"] == POD_MAGICS
    for name in POD_MAGICS:
        doc = MAGICS[name]
        assert doc.summary and doc.usage.startswith(f"%{name}=") and "Example:\n" in doc.doc
        assert f"%{name}=" in doc.doc.partition("Example:\n")[2]


def test_help_lists_the_pod_settings_in_a_group_of_their_own() -> None:
    text = help_text()
    group = text.partition("\nPod settings")[2].partition("\n\n")[0]
    for name in POD_MAGICS:
        assert MAGICS[name].usage in group
    assert "%profile=<name>" in text.partition("Job flags")[0]
    assert "%env is Ciao's written %env=NAME=value" in " ".join(text.split())


def test_help_of_a_pod_magic_says_where_it_applies() -> None:
    page = help_text("toleration")
    assert page.startswith("%toleration=<key>[=<value>][:<effect>]    (pod magic)")
    assert "NoSchedule, PreferNoSchedule, NoExecute" in page
    assert "%worker=4;%gpu=1;%toleration=..." in page
    assert "a line of its own" in help_text("image") and "%worker" not in help_text("image")
    assert "profiles:" in help_text("profile")


def test_inspect_shows_a_pod_magics_doc_on_a_role_line() -> None:
    code = "%worker=2;%toleration=nvidia.com/gpu:NoSchedule\n%volume=pvc:d:/data"
    assert inspect(code, 14).startswith("%toleration=")
    assert inspect(code, code.index("%volume") + 3).startswith("%volume=<kind>:<name>:<path>[:ro]")
    assert inspect("%help shm", 8).startswith("%shm=<quantity>")


def complete_at_bar(cell: str, interpreter: MagicInterpreter | None = None):
    cursor = cell.index("|")
    code = cell.replace("|", "", 1)
    matches, start, end = complete(code, cursor, interpreter)
    return matches, code[start:end]


@pytest.mark.parametrize(
    ("cell", "matches", "replaced"),
    [
        (
            "%volume=|",
            ["pvc:", "emptyDir:", "configMap:", "secret:", "hostPath:"],
            "",
        ),
        ("%volume=em|", ["emptyDir:"], "em"),
        ("%volume=C|", ["configMap:"], "C"),
        ("%envFrom=|", ["secret:", "configMap:"], ""),
        ("%env=TOKEN=|", ["TOKEN=secret:", "TOKEN=configMap:"], "TOKEN="),
        ("%env=TOKEN=s|", ["TOKEN=secret:"], "TOKEN=s"),
        ("%env=TO|", [], "TO"),
        (
            "%toleration=nvidia.com/gpu:|",
            [
                "nvidia.com/gpu:NoSchedule",
                "nvidia.com/gpu:PreferNoSchedule",
                "nvidia.com/gpu:NoExecute",
            ],
            "nvidia.com/gpu:",
        ),
        ("%toleration=k=v:no|", ["k=v:NoSchedule", "k=v:NoExecute"], "k=v:no"),
        ("%nodeSelector=nv|", ["nvidia.com/gpu.product="], "nv"),
        ("%shm=|", [], ""),
        ("%schedulerName=v|", ["volcano"], "v"),
        ("%master=1;%toleration=gpu:NoE|xecute", ["gpu:NoExecute"], "gpu:NoExecute"),
    ],
)
def test_pod_magic_values_complete(cell, matches, replaced) -> None:
    assert complete_at_bar(cell) == (matches, replaced)


def test_profile_completes_the_configs_profile_names(configured) -> None:
    assert complete_at_bar("%profile=|", configured) == (["cpu", "gpu"], "")
    assert complete_at_bar("%profile=g|", configured) == (["gpu"], "g")
    assert complete_at_bar("%profile=|") == ([], "")


def test_pod_magics_complete_where_they_may_be_written(configured) -> None:
    own_line = complete_at_bar("%master=1\n%|")[0]
    role_line = complete_at_bar("%master=1;%|")[0]
    assert {"%profile=", "%image=", "%volume=", "%env="} <= set(own_line)
    assert "%volume=" in role_line and "%env=" in role_line
    assert "%image=" not in role_line and "%profile=" not in role_line
    # before a role on its line: neither the role's nor every role's
    assert not {"%volume=", "%env=", "%profile="} & set(complete_at_bar("%|;%master=1")[0])


def test_a_one_value_pod_magic_is_offered_once_a_scope() -> None:
    assert "%shm=" not in complete_at_bar("%shm=1Gi\n%|")[0]
    assert "%shm=" in complete_at_bar("%shm=1Gi\n%worker=2;%|")[0]  # the role's own
    assert "%shm=" not in complete_at_bar("%worker=2;%shm=1Gi;%|")[0]
    assert "%env=" in complete_at_bar("%env=A=1\n%|")[0]  # list settings repeat
    assert "%profile=" not in complete_at_bar("%profile=gpu\n%|")[0]


def test_is_complete_reads_profiles_with_the_interpreter_given(configured) -> None:
    assert is_complete("%profile=gpu\nprint(1)", configured) == ("complete", "")
    assert is_complete("%profile=gpu\nprint(1)") == ("invalid", "")
    assert is_complete("%env=RANK=1\nprint(1)") == ("invalid", "")
