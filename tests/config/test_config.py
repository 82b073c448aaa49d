"""Where the config is looked for, its keys, and the errors a bad one gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ciao.config import load_config, parse_config
from ciao.errors import ConfigError
from ciao.interpreter.types import Resources


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def env(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), **extra}


def test_no_config_file_at_all_gives_the_local_defaults(home, tmp_path):
    config = load_config(env(home), cwd=tmp_path)
    assert config.source is None
    assert config.backend == "local"
    assert config.framework == "pytorch"
    assert config.defaults == {}
    assert config.run_dir == home / ".ciao" / "runs"


def test_ciao_config_wins_then_home_then_cwd(home, tmp_path):
    write(tmp_path / "config.yaml", "ciao:\n  namespace: from-cwd\n")
    assert load_config(env(home), cwd=tmp_path).namespace == "from-cwd"
    write(home / ".ciao" / "config.yaml", "namespace: from-home\n")
    assert load_config(env(home), cwd=tmp_path).namespace == "from-home"
    explicit = write(tmp_path / "mine.yaml", "namespace: explicit\n")
    config = load_config(env(home, CIAO_CONFIG=str(explicit)), cwd=tmp_path)
    assert config.namespace == "explicit"
    assert config.source == explicit


def test_ciao_config_naming_a_missing_file_is_an_error(home, tmp_path):
    with pytest.raises(ConfigError, match="CIAO_CONFIG.*nope.yaml"):
        load_config(env(home, CIAO_CONFIG=str(tmp_path / "nope.yaml")), cwd=tmp_path)


def test_the_original_keys_and_backend_are_read():
    config = parse_config(
        {
            "backend": "kubeflow",
            "kubeconfig": "/k/config",
            "namespace": "team",
            "s2i": {"provider": "s2i", "registry": "registry.example:5000", "username": "me"},
            "worker": {"cpu": "500m", "memory": "1Gi"},
            "ps": {"cpu": "1", "memory": "2Gi"},
            "master": {"cpu": "2", "memory": "4Gi", "gpu": 1},
            "local": {"run_dir": "/tmp/runs"},
        },
        Path("c.yaml"),
    )
    assert config.backend == "kubeflow"
    assert config.kubeconfig == "/k/config" and config.namespace == "team"
    assert config.s2i.provider == "s2i" and config.s2i.registry == "registry.example:5000"
    assert config.defaults["worker"] == Resources("500m", "1Gi", 0)
    assert config.defaults["master"] == Resources("2", "4Gi", 1)
    assert config.run_dir == Path("/tmp/runs")
    assert config.as_dict()["worker"] == {"cpu": "500m", "memory": "1Gi", "gpu": 0}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"backnd": "local"}, r"unknown key backnd; did you mean backend\?"),
        ({"backend": "slurm"}, r"backend: 'slurm' is not one of local, kubeflow"),
        ({"framework": "jax"}, r"framework: 'jax' is not one of tensorflow, pytorch"),
        ({"s2i": {"provider": "kaniko"}}, r"s2i.provider: 'kaniko' is not one of"),
        ({"s2i": {"regsitry": "x"}}, r"unknown key s2i.regsitry; did you mean s2i.registry\?"),
        ({"s2i": {"password": "hunter2"}}, r"s2i.password: .*docker login"),
        ({"worker": {"cpu": "lots"}}, r"worker.cpu: 'lots' is not a Kubernetes quantity"),
        ({"ps": {"memory": "100m"}}, r"ps.memory: .*did you mean 100Mi\?"),
        ({"master": {"gpu": -1}}, r"master.gpu: expected a whole number >= 0"),
        ({"kubeflow": {"queue": "Team GPUs"}}, r"kubeflow.queue: 'Team GPUs' is not a queue name"),
        ({"kubeflow": {"pod_security": "baseline"}}, r"kubeflow.pod_security: 'baseline' is not"),
        ({"kubeflow": {"run_as_user": 0}}, r"kubeflow.run_as_user: 0 is root.*pod_security: none"),
        ({"kubeflow": {"run_as_user": "root"}}, r"kubeflow.run_as_user: expected a uid"),
        ({"kubeflow": {"run_as_user": False}}, r"kubeflow.run_as_user: expected a uid"),
        ({"kubeflow": {"run_as_user": 2**31}}, r"kubeflow.run_as_user: expected a uid"),
        ({"kubeflow": {"no_pods_after": 0}}, r"kubeflow.no_pods_after: expected a number of sec"),
        ({"kubeflow": {"no_pods_after": "1m"}}, r"kubeflow.no_pods_after: expected a number"),
        (
            {"kubeflow": {"pod_security": "none", "run_as_user": 1000}},
            r"kubeflow.run_as_user: pods get no securityContext",
        ),
        ({"worker": "big"}, r"worker: expected a mapping"),
        (["a", "list"], r"expected a mapping of keys"),
    ],
)
def test_bad_keys_and_values_name_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(data, Path("/etc/ciao/config.yaml"))
    assert "/etc/ciao/config.yaml" in str(info.value)


def test_kubeflow_queue_is_read_and_none_by_default():
    assert parse_config({"kubeflow": {"queue": "team-gpus"}}, None).kubeflow.queue == "team-gpus"
    assert parse_config({}, None).kubeflow.queue == ""


def test_a_job_may_have_no_pod_for_10_seconds_before_the_cell_says_so_unless_configured():
    assert parse_config({}, None).kubeflow.no_pods_after == 10.0
    assert parse_config({"kubeflow": {"no_pods_after": 2.5}}, None).kubeflow.no_pods_after == 2.5


def test_job_pods_are_restricted_as_uid_1000_unless_the_config_says_otherwise():
    default = parse_config({}, None)
    assert (default.kubeflow.pod_security, default.kubeflow.run_as_user) == ("restricted", 1000)
    assert default.as_dict()["kubeflow"]["pod_security"] == "restricted"
    mine = parse_config({"kubeflow": {"run_as_user": 2000}}, None).kubeflow
    assert mine.run_as_user == 2000
    image = parse_config({"kubeflow": {"run_as_user": "image"}}, None)
    assert image.kubeflow.run_as_user is None
    assert image.as_dict()["kubeflow"]["run_as_user"] == "image"
    assert parse_config({"kubeflow": {"pod_security": "none"}}, None).kubeflow.pod_security == (
        "none"
    )
    # YAML reads an unquoted `off` as false
    assert parse_config({"kubeflow": {"pod_security": False}}, None).kubeflow.pod_security == (
        "none"
    )


def test_a_password_is_never_repeated_in_the_error():
    with pytest.raises(ConfigError) as info:
        parse_config({"s2i": {"password": "hunter2"}}, Path("c.yaml"))
    assert "hunter2" not in str(info.value)


def test_yaml_that_does_not_parse_names_the_line(home, tmp_path):
    write(home / ".ciao" / "config.yaml", "backend: local\nworker: {cpu: [\n")
    with pytest.raises(ConfigError, match=r"config.yaml \(line \d+, column \d+\): not valid YAML"):
        load_config(env(home), cwd=tmp_path)


def test_an_empty_file_is_the_defaults(home, tmp_path):
    write(home / ".ciao" / "config.yaml", "")
    assert load_config(env(home), cwd=tmp_path).backend == "local"


def test_stock_images_per_framework_have_defaults_and_can_be_set():
    assert parse_config({}, None).images["pytorch"].startswith("pytorch/pytorch:")
    config = parse_config({"images": {"tensorflow": "registry.example/tf:2.16"}}, None)
    assert config.images["tensorflow"] == "registry.example/tf:2.16"
    with pytest.raises(ConfigError, match="unknown key images.jax"):
        parse_config({"images": {"jax": "x"}}, None)


def test_backends_limits_what_a_cell_may_choose_and_the_default_follows():
    from ciao.config import parse_config

    config = parse_config({"backends": ["kubeflow"]}, None)
    assert config.backends == ("kubeflow",) and config.backend == "kubeflow"
    assert parse_config({}, None).backends == ("local", "kubeflow")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"backends": ["kubeflow"], "backend": "local"}, "not one of the allowed backends"),
        ({"backends": ["slurm"]}, "slurm is not a backend"),
        ({"backends": []}, "expected a list like [kubeflow]"),
    ],
)
def test_bad_backends_are_config_errors(data, words):
    from ciao.config import parse_config
    from ciao.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(data, None)
    assert words in str(info.value)


def test_a_config_yaml_of_another_tool_in_the_notebook_directory_is_not_read(tmp_path):
    from ciao.config import load_config

    home, here = tmp_path / "home", tmp_path / "notebooks"
    home.mkdir()
    here.mkdir()
    (here / "config.yaml").write_text("model: resnet50\nepochs: 3\n")  # not Ciao's
    assert load_config(env={"HOME": str(home)}, cwd=here).source is None
    (here / "config.yaml").write_text("ciao:\n  backend: kubeflow\nmodel: resnet50\n")
    config = load_config(env={"HOME": str(home)}, cwd=here)
    assert config.backend == "kubeflow" and config.source == here / "config.yaml"


@pytest.mark.parametrize(("value", "keep"), [("7d", ("days", 7)), (100, ("jobs", 100))])
def test_local_keep_is_days_or_a_number_of_jobs(value, keep):
    from ciao.config import parse_config

    assert parse_config({"local": {"keep": value}}, None).keep == keep
    assert parse_config({}, None).keep == ("days", 30)


def test_finished_jobs_past_local_keep_are_removed_and_running_ones_kept(tmp_path):
    import os

    from ciao.backend.identity import ProcessIdentity
    from ciao.backend.record import RunDir, encode
    from ciao.backend.retention import prune
    from ciao.backend.types import JobDone

    now = 1_000_000_000.0
    for name, age_days, state in (
        ("old-done", 40, "done"),
        ("old-running", 40, "running"),
        ("old-lost", 50, "lost"),  # its supervisor died without a verdict (a reboot)
        ("new", 1, "done"),
    ):
        run = RunDir(tmp_path, name)
        run.write_spec({"name": name, "created": now - age_days * 86400})
        if state == "done":
            fd = run.open_for_append()
            os.write(fd, encode(JobDone(True, "Succeeded")))
            os.close(fd)
        elif state == "running":  # this very process plays its supervisor
            identity = ProcessIdentity.of(os.getpid())
            assert identity is not None
            run.set_supervisor(identity)
    assert prune(tmp_path, ("days", 30), now) == ["old-done", "old-lost"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "old-running"]
    assert prune(tmp_path, ("jobs", 0), now) == ["new"]


BILLION_LAUGHS = 'backend: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"l{i}: &l{i} [{','.join([f'*{prev}'] * 9)}]\n"
    for i, prev in enumerate(["a"] + [f"l{j}" for j in range(8)])
)


def test_yaml_aliases_are_refused_before_any_value_is_built(home, tmp_path):
    """Nine levels of nine aliases would be ~10^9 strings; the file is 700 bytes."""
    path = write(tmp_path / "c.yaml", BILLION_LAUGHS)
    with pytest.raises(ConfigError) as caught:
        load_config(env(home, CIAO_CONFIG=str(path)), cwd=tmp_path)
    message = str(caught.value)
    assert "aliases" in message and "line 2" in message and str(path) in message
    assert len(message) < 4096


def test_a_cloned_repositorys_config_yaml_cannot_explode_either(home, tmp_path):
    write(tmp_path / "config.yaml", "ciao:\n  " + BILLION_LAUGHS.replace("\n", "\n  "))
    with pytest.raises(ConfigError, match="aliases"):
        load_config(env(home), cwd=tmp_path)


def test_a_huge_or_deep_config_is_refused_with_a_short_error(home, tmp_path):
    big = write(tmp_path / "big.yaml", "backend: " + "x" * 5_000_000 + "\n")
    with pytest.raises(ConfigError, match="larger than") as caught:
        load_config(env(home, CIAO_CONFIG=str(big)), cwd=tmp_path)
    assert len(str(caught.value)) < 4096
    deep = write(tmp_path / "deep.yaml", "[" * 50_000)
    with pytest.raises(ConfigError) as caught:
        load_config(env(home, CIAO_CONFIG=str(deep)), cwd=tmp_path)
    assert len(str(caught.value)) < 4096


def test_a_long_value_is_quoted_by_an_excerpt(home, tmp_path):
    path = write(tmp_path / "c.yaml", "backend: " + "k" * 200_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(env(home, CIAO_CONFIG=str(path)), cwd=tmp_path)
    message = str(caught.value)
    assert "backend" in message and "200,000 characters" in message and len(message) < 4096


def test_a_typo_beside_a_secret_in_a_command_never_shows_the_secret():
    data = {
        "s2i": {
            "provider": "img",
            "registry": "r.example",
            "build_command": ["docker", "build", "--build-arg", "API_KEY=s3cr3t", 7],
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("/etc/ciao/config.yaml"))
    message = str(caught.value)
    assert "s2i.build_command" in message and "API_KEY=***" in message
    assert "s3cr3t" not in message


def test_an_exploding_config_is_an_error_in_the_cell_and_the_kernel_stays_small(tmp_path):
    """The config is read at kernel start (retention) and for every cell: neither may
    expand it."""
    import os
    import re

    from kernel_client import execute, running_kernel

    path = write(tmp_path / "c.yaml", BILLION_LAUGHS)
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(path))) as (km, kc):
        status = Path(f"/proc/{km.provisioner.process.pid}/status")
        before = int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text()).group(1))
        reply, _ = execute(kc, "%framework=pytorch\n%master=1\nprint(1)")
        after = int(re.search(r"VmHWM:\s+(\d+) kB", status.read_text()).group(1))
        again, _ = execute(kc, "%jobs")
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "ConfigError"
    assert "aliases" in content["evalue"] and len(content["evalue"]) < 4096
    assert again["content"]["status"] == "error"  # still answering
    assert (after - before) * 1024 < 64 * 1024 * 1024


def test_the_session_is_on_by_default_and_its_value_cap_is_100_mib():
    session = parse_config({}, None).session
    assert session.enabled is True and session.max_value_bytes == 100 * 1024 * 1024
    off = parse_config({"session": {"enabled": False, "max_value_bytes": 1024}}, None)
    assert (off.session.enabled, off.session.max_value_bytes) == (False, 1024)
    assert off.as_dict()["session"] == {"enabled": False, "max_value_bytes": 1024}


@pytest.mark.parametrize(
    "data, words",
    [
        ({"session": {"enabled": "maybe"}}, "session.enabled: expected true or false"),
        ({"session": {"max_value_bytes": 0}}, "session.max_value_bytes: expected a number"),
        ({"session": {"max_value_bytes": "100Mi"}}, "session.max_value_bytes"),
        ({"session": {"enable": True}}, "did you mean session.enabled?"),
        ({"session": "off"}, "session: expected a mapping"),
    ],
)
def test_bad_session_values_are_config_errors(data, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        parse_config(data, Path("c.yaml"))


def test_the_gateways_deployment_turns_the_session_off():
    """The session would run a notebook's code in the gateway's pod, which `backends:
    [kubeflow]` exists to prevent."""
    import yaml

    deployment = Path(__file__).resolve().parents[2] / "deploy" / "kernel-gateway.yaml"
    config_map = next(yaml.safe_load_all(deployment.read_text()))
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]), None)
    assert config.session.enabled is False and config.backends == ("kubeflow",)


def test_the_readmes_example_config_is_a_valid_config():
    import yaml

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("## Configuration", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example), Path("README.md"))
    assert config.backend == "local" and config.kubeflow.pod_security == "restricted"
    assert config.pod.image_pull_secrets == ("regcred",)
    assert config.profiles["a100"].shm == "16Gi"


def test_the_readmes_real_cluster_example_reads_as_one_job_with_its_profile():
    """README "Data, secrets and GPU nodes": its config and its cell, read together."""
    import yaml

    from ciao.manager import interpreter_for

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### 7. Data, secrets and GPU nodes", 1)[1]
    config_text, rest = section.split("```yaml\n", 1)[1].split("```\n", 1)
    cell = rest.split("```\n", 1)[1].split("```", 1)[0].replace("<training code", "# <")
    config = parse_config(yaml.safe_load(config_text), Path("README.md"))
    parameter = interpreter_for(config).preprocess(cell)
    pod = parameter.pod
    assert parameter.profile == "gpu" and parameter.total_replicas == 2
    assert pod.node_selector == (("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),)
    assert [t.describe() for t in pod.tolerations] == ["nvidia.com/gpu:NoSchedule"]
    assert [v.describe() for v in pod.volumes] == ["pvc:datasets:/data:ro", "pvc:checkpoints:/ckpt"]
    assert [e.describe() for e in pod.env] == [
        "HF_TOKEN=secret:hf/token",
        "WANDB_API_KEY=secret:wandb/api-key",
    ]
    assert pod.shm == "8Gi" and pod.image_pull_secrets == ("regcred",)
    assert pod.security_context == {"fsGroup": 2000}
