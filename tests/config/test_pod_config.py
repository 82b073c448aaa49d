"""The config's `pod:` and `profiles:`: what each key takes (the magic's text, or what a
Kubernetes user writes), what %config shows, and every error, naming the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from ciao.config import load_config, parse_config
from ciao.errors import ConfigError
from ciao.interpreter.pod import (
    OBJECT_KEYS,
    SETTINGS,
    EnvFrom,
    EnvVar,
    PodSettings,
    Toleration,
    Volume,
)
from ciao.manager import interpreter_for

FILE = Path("/home/me/.ciao/config.yaml")


def config_of(text: str):
    return parse_config(yaml.safe_load(textwrap.dedent(text)), FILE)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config_of(text)
    message = str(info.value)
    assert message.startswith(f"{FILE}: "), message
    return message.removeprefix(f"{FILE}: ")


def test_no_pod_and_no_profiles_by_default():
    config = parse_config({}, None)
    assert config.pod == PodSettings() and config.profiles == {}
    assert config.as_dict()["pod"] == {} and config.as_dict()["profiles"] == {}


def test_every_setting_in_the_magics_text():
    config = config_of(
        """
        pod:
          volumes: ["pvc:datasets:/data:ro", "emptyDir:/scratch:20Gi"]
          shm: 8Gi
          env: ["HF_HOME=/data/hf", "TOKEN=secret:hf/token"]
          envFrom: ["secret:s3-creds"]
          nodeSelector: ["nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB"]
          tolerations: ["nvidia.com/gpu:NoSchedule", "dedicated=ml"]
          serviceAccount: trainer
          imagePullSecrets: [regcred]
          priorityClass: high
          schedulerName: volcano
          image: nvcr.io/nvidia/pytorch:24.10-py3
        """
    )
    pod = config.pod
    assert pod.volumes == (
        Volume("pvc", "datasets", "/data", read_only=True),
        Volume("emptyDir", "", "/scratch", size="20Gi"),
    )
    assert pod.shm == "8Gi"
    assert pod.env == (
        EnvVar("HF_HOME", "/data/hf"),
        EnvVar("TOKEN", ref_kind="secret", ref_name="hf", ref_key="token"),
    )
    assert pod.env_from == (EnvFrom("secret", "s3-creds"),)
    assert pod.node_selector == (("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB"),)
    assert pod.tolerations == (
        Toleration("nvidia.com/gpu", effect="NoSchedule"),
        Toleration("dedicated", "ml", exists=False),
    )
    assert (pod.service_account, pod.priority_class, pod.scheduler_name) == (
        "trainer",
        "high",
        "volcano",
    )
    assert pod.image_pull_secrets == ("regcred",)
    assert pod.image == "nvcr.io/nvidia/pytorch:24.10-py3"
    assert set(pod.origins.values()) == {"config pod"}
    assert set(pod.set_names()) == {s.magic for s in SETTINGS}


def test_what_a_kubernetes_user_writes_reads_the_same():
    kubernetes_style = config_of(
        """
        pod:
          env:
            HF_HOME: /data/hf
            TOKEN: secret:hf/token
            RETRIES: 3
          nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
          tolerations:
            - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
            - {key: dedicated, value: ml}
            - {key: dedicated, operator: Equal, value: ml, effect: NoExecute}
          envFrom: [{secretRef: {name: s3-creds}}, {configMapRef: {name: settings}}]
          imagePullSecrets: [{name: regcred}]
        """
    ).pod
    magic_style = config_of(
        """
        pod:
          env: ["HF_HOME=/data/hf", "TOKEN=secret:hf/token", "RETRIES=3"]
          nodeSelector: ["nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB"]
          tolerations: ["nvidia.com/gpu:NoSchedule", "dedicated=ml", "dedicated=ml:NoExecute"]
          envFrom: ["secret:s3-creds", "configMap:settings"]
          imagePullSecrets: [regcred]
        """
    ).pod
    assert kubernetes_style == magic_style


def test_env_as_kubernetes_list_items_with_value_from():
    pod = config_of(
        """
        pod:
          env:
            - {name: HF_HOME, value: /data/hf}
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: hf, key: token}}
            - name: MODE
              valueFrom: {configMapKeyRef: {name: settings, key: mode}}
        """
    ).pod
    assert pod.env == (
        EnvVar("HF_HOME", "/data/hf"),
        EnvVar("TOKEN", ref_kind="secret", ref_name="hf", ref_key="token"),
        EnvVar("MODE", ref_kind="configMap", ref_name="settings", ref_key="mode"),
    )
    mapped = config_of("pod: {env: {TOKEN: {secretKeyRef: {name: hf, key: token}}}}").pod
    assert mapped.env == pod.env[1:2]


def test_objects_only_the_config_sets():
    pod = config_of(
        """
        pod:
          affinity:
            nodeAffinity:
              requiredDuringSchedulingIgnoredDuringExecution:
                nodeSelectorTerms:
                  - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
          securityContext: {fsGroup: 1000, fsGroupChangePolicy: OnRootMismatch}
          labels: {team: ml, example.com/cost-center: "42"}
          annotations: {example.com/owner: "Ada Lovelace <ada@example.com>"}
        """
    ).pod
    assert pod.affinity is not None and "nodeAffinity" in pod.affinity
    assert pod.security_context == {"fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"}
    assert pod.labels == (("team", "ml"), ("example.com/cost-center", "42"))
    assert pod.annotations == (("example.com/owner", "Ada Lovelace <ada@example.com>"),)
    assert {pod.origin(key) for key in OBJECT_KEYS} == {"config pod"}


def test_profiles_by_name_with_their_origins():
    config = config_of(
        """
        pod:
          env: {WANDB_PROJECT: demo}
        profiles:
          a100:
            nodeSelector: {nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}
            tolerations: ["nvidia.com/gpu:NoSchedule"]
          cpu-only:
          spot:
            tolerations: [{key: spot, operator: Exists}]
            priorityClass: low
        """
    )
    assert sorted(config.profiles) == ["a100", "cpu-only", "spot"]
    assert config.profiles["cpu-only"] == PodSettings()
    assert config.profiles["a100"].origin("nodeSelector") == "profile a100"
    assert config.profiles["spot"].tolerations == (Toleration("spot"),)
    assert config.pod.origin("env") == "config pod"


def test_config_shows_the_settings_as_the_magics_write_them():
    config = config_of(
        """
        pod:
          env: {HF_HOME: /data/hf, TOKEN: "secret:hf/token"}
          tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
          nodeSelector: {pool: gpu}
          shm: 8Gi
          labels: {team: ml}
        profiles:
          a100:
            volumes: ["pvc:datasets:/data:ro"]
            securityContext: {fsGroup: 1000}
        """
    )
    shown = config.as_dict()
    assert shown["pod"] == {
        "shm": "8Gi",
        "env": ["HF_HOME=/data/hf", "TOKEN=secret:hf/token"],
        "nodeSelector": ["pool=gpu"],
        "tolerations": ["nvidia.com/gpu:NoSchedule"],
        "labels": {"team": "ml"},
    }
    assert shown["profiles"] == {
        "a100": {"volumes": ["pvc:datasets:/data:ro"], "securityContext": {"fsGroup": 1000}}
    }
    # what %config shows reads back as the same settings
    again = parse_config({"pod": shown["pod"], "profiles": shown["profiles"]}, FILE)
    assert again.pod == config.pod and again.profiles == config.profiles


def test_an_empty_key_is_not_set():
    config = config_of("pod:\n  env:\n  volumes:\nprofiles:\n")
    assert config.pod == PodSettings() and config.profiles == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pod: [a]", "pod: expected a mapping of pod settings"),
        (
            "pod: {envs: {A: b}}",
            "unknown key pod.envs; did you mean pod.env? (known keys: pod.volumes,",
        ),
        (
            "pod: {serviceAccountName: trainer}",
            "unknown key pod.serviceAccountName; did you mean pod.serviceAccount?",
        ),
        ("pod: {volumes: 'pvc:x:/d'}", "pod.volumes: expected a list of %volume values"),
        ("pod: {tolerations: {a: b}}", "pod.tolerations: expected a list of %toleration values"),
        ("pod: {volumes: ['nfs:x:/d']}", "pod.volumes[0]: unknown volume kind 'nfs'"),
        ("pod: {volumes: ['pvc:a:/d', 'pvc:b:/d/']}", "pod.volumes[1]: the mount path /d is"),
        ("pod: {shm: lots}", "pod.shm: /dev/shm's size: 'lots' is not a Kubernetes quantity"),
        ("pod: {shm: 8}", "pod.shm: /dev/shm's size: '8' is less than 1Mi; did you mean 8Mi?"),
        ("pod: {env: {RANK: '1'}}", "pod.env.RANK: RANK is set by Ciao or the operator"),
        ("pod: {env: {DEBUG: true}}", "pod.env.DEBUG: expected a string, got a boolean"),
        ("pod: {env: {DEBUG: }}", "pod.env.DEBUG: missing its value"),
        ("pod: {env: {A: {b: 1}}}", "unknown key pod.env.A.b (known keys: pod.env.A.secretKeyRef"),
        ("pod: {env: {A: [1]}}", "pod.env.A: expected a string, got ['1']"),
        ("pod: {env: ['A=1', 'B=2', 'A=3']}", "pod.env[2]: the variable A is given at pod.env[0]"),
        ("pod: {env: {T: 'secret:hf'}}", "pod.env.T: T: a secret reference is secret:NAME/KEY"),
        ("pod: {env: [{name: A, value: b, valueFrom: {}}]}", "pod.env[0]: give value or valueF"),
        ("pod: {env: [{nam: A}]}", "unknown key pod.env[0].nam; did you mean pod.env[0].name?"),
        (
            "pod: {env: [{name: T, valueFrom: {secretKeyRf: {name: a, key: b}}}]}",
            "unknown key pod.env[0].valueFrom.secretKeyRf; did you mean "
            "pod.env[0].valueFrom.secretKeyRef?",
        ),
        (
            "pod: {env: [{name: T, valueFrom: {secretKeyRef: {name: a}}}]}",
            "pod.env[0].valueFrom.secretKeyRef.key: missing its value",
        ),
        ("pod: {envFrom: [{secretRef: {name: S3}}]}", "pod.envFrom[0]: 'S3' is not a secret name"),
        (
            "pod: {envFrom: [{secretRef: {name: a}, prefix: X_}]}",
            "pod.envFrom[0]: expected one of secretRef, configMapRef",
        ),
        ("pod: {nodeSelector: {zone: yes}}", "pod.nodeSelector.zone: expected a string, got a bo"),
        ("pod: {nodeSelector: {-zone: a}}", "pod.nodeSelector.-zone: '-zone' is not a label key"),
        (
            "pod: {tolerations: [{key: a, operator: Exists, value: b}]}",
            "pod.tolerations[0].value: operator Exists tolerates every value",
        ),
        (
            "pod: {tolerations: [{key: a, operator: exists}]}",
            "pod.tolerations[0].operator: 'exists' is not Exists or Equal",
        ),
        (
            "pod: {tolerations: [{key: a, effect: NoSchedul}]}",
            "pod.tolerations[0].effect: 'NoSchedul' is not one of NoSchedule,",
        ),
        (
            "pod: {tolerations: [{key: a, tolerationSeconds: 60}]}",
            "unknown key pod.tolerations[0].tolerationSeconds",
        ),
        ("pod: {imagePullSecrets: [{name: Reg}]}", "pod.imagePullSecrets[0]: 'Reg' is not a Sec"),
        ("pod: {serviceAccount: {name: x}}", "pod.serviceAccount: expected a string"),
        ("pod: {image: 'a b'}", "pod.image: 'a b' is not an image reference"),
        ("pod: {affinity: [a]}", "pod.affinity: expected a mapping, as Kubernetes writes it"),
        (
            "pod: {affinity: {nodeAfinity: {}}}",
            "unknown key pod.affinity.nodeAfinity; did you mean pod.affinity.nodeAffinity?",
        ),
        ("pod: {securityContext: fsGroup}", "pod.securityContext: expected a mapping"),
        ("pod: {labels: {team: 'm l'}}", "pod.labels.team: 'm l' is not a label value"),
        (
            "pod: {labels: {Example.com/a: b}}",
            "pod.labels.Example.com/a: 'Example.com/a': the prefix",
        ),
        ("pod: {annotations: {'a b': x}}", "pod.annotations.a b: 'a b' is not a label key"),
        ("profiles: [a100]", "profiles: expected a mapping of names to pod settings"),
        ("profiles: {A100: {}}", "profiles: 'A100' is not a profile name"),
        ("profiles: {a_100: {}}", "profiles: 'a_100' is not a profile name"),
        ("profiles: {a100: [x]}", "profiles.a100: expected a mapping of pod settings"),
        (
            "profiles: {a100: {tolerations: [a, 'b:NoSchedul']}}",
            "profiles.a100.tolerations[1]: unknown taint effect 'NoSchedul'",
        ),
        ("profiles: {a100: {volumez: []}}", "unknown key profiles.a100.volumez; did you mean"),
    ],
)
def test_every_error_names_the_file_and_the_keys_path(text, message):
    assert error_of(text).startswith(message)


def test_annotation_values_are_free_text_but_label_values_are_checked():
    pod = config_of("pod: {annotations: {note: 'any text: even this!'}}").pod
    assert pod.annotations == (("note", "any text: even this!"),)
    assert "is not a label value" in error_of("pod: {labels: {note: 'any text'}}")


def test_the_config_reaches_the_cells_through_the_manager(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """
            pod:
              env: {A: config}
            profiles:
              gpu:
                env: {B: profile}
                tolerations: ["nvidia.com/gpu:NoSchedule"]
            """
        )
    )
    config = load_config({"HOME": str(tmp_path), "CIAO_CONFIG": str(path)}, cwd=tmp_path)
    parameter = interpreter_for(config).preprocess("%profile=gpu\n%master=1;%env=C=cell")
    assert {e.name: e.value for e in parameter.pod_of("master").env} == {
        "A": "config",
        "B": "profile",
        "C": "cell",
    }
    assert parameter.pod.origin("toleration") == "profile gpu"
