"""The `configmap` provider with `%requirements`, against the test cluster (tests/fakecluster):
the ConfigMap holds the code and requirements.txt and belongs to the job; the container
pip-installs the file, then runs the code."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from fakecluster import FakeCluster
from shipping import ship

from ciao.backend.types import Idle, JobDone, LogLine
from ciao.config import parse_config
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.registry import Registry
from ciao.s2i.configmap import INSTALL_AND_RUN, ConfigMapCode

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster() as fake:
        yield fake


@pytest.fixture
def parts(cluster, tmp_path, monkeypatch):
    # The fake kubelet runs containers as local processes with this process's PATH: the
    # container's `python` is then the test environment's, which has pip (as the framework
    # images have); pip needs no network for a requirement that is already satisfied.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{Path('/usr/bin')}:/bin")
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = parse_config(
        {"backend": "kubeflow", "kubeconfig": str(kubeconfig), "local": {"run_dir": str(tmp_path)}},
        None,
    )
    s2i, managed = Registry().components(config)
    assert isinstance(s2i, ConfigMapCode)
    yield s2i, managed.backend
    for resource in ("pytorchjobs", "configmaps"):
        for obj in cluster.list(resource, "default"):
            cluster.delete(resource, "default", obj["metadata"]["name"], propagation="Foreground")


def parameter(cell: str, name: str):
    return MagicInterpreter(name_factory=lambda: name).preprocess(cell)


def submit(parts, p):
    s2i, backend = parts
    return backend.exec_code(backend.dry_run(p, ship(s2i, p)))


def events_of(parts, job) -> list:
    """The job's events to its end, as the kernel renders them (without the IDLE ticks)."""
    _, backend = parts
    return [e for e in backend.get_logs(job) if not isinstance(e, Idle)]


CELL = "%master=1\n%requirements=pip,pyzmq>=1\nimport pip\nprint('pip', pip.__version__)\n"


def test_the_configmap_holds_code_and_requirements_and_belongs_to_the_job(parts, cluster):
    job = submit(parts, parameter(CELL, "ciao-reqs"))

    config_map = cluster.get("configmaps", "default", "ciao-reqs-code")
    assert config_map["data"] == {
        "code.py": "\n\nimport pip\nprint('pip', pip.__version__)\n",
        "requirements.txt": "pip\npyzmq>=1\n",
    }
    (owner,) = config_map["metadata"]["ownerReferences"]
    uid = cluster.get("pytorchjobs", "default", job.name)["metadata"]["uid"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("PyTorchJob", job.name, uid)


def test_the_container_installs_the_file_then_runs_the_code_with_a_fixed_script(parts, cluster):
    job = submit(parts, parameter(CELL, "ciao-script"))

    spec = cluster.get("pytorchjobs", "default", job.name)["spec"]
    (container,) = spec["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]
    assert container["command"] == [
        "sh",
        "-c",
        "python -m pip install --no-cache-dir --disable-pip-version-check "
        "-r /opt/ciao/requirements.txt && exec python -u /opt/ciao/code.py",
    ]
    assert container["command"][2] == INSTALL_AND_RUN
    assert "pyzmq" not in " ".join(container["command"]), "requirements only through the file"
    assert container["volumeMounts"] == [
        {"name": "ciao-code", "mountPath": "/opt/ciao"},
        {"name": "ciao-home", "mountPath": "/home/ciao"},  # HOME and pip's user site
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PYTHONUSERBASE"] == "/home/ciao/.local"


def test_pip_runs_in_the_replica_before_the_code(parts):
    import pip

    job = submit(parts, parameter(CELL, "ciao-pip"))
    events = events_of(parts, job)

    lines = [e.text for e in events if isinstance(e, LogLine) and e.replica == "master-0"]
    satisfied = [i for i, line in enumerate(lines) if "Requirement already satisfied: pip" in line]
    assert satisfied, lines
    assert any("Requirement already satisfied: pyzmq" in line for line in lines)
    assert lines.index(f"pip {pip.__version__}") > satisfied[0]
    assert isinstance(events[-1], JobDone) and events[-1].succeeded


def test_a_failed_install_fails_the_job_before_the_code_runs(parts):
    # a wheel that is not there: pip fails at once, without asking any index
    missing = "ciao-missing @ file:///nonexistent/ciao_missing-1.0-py3-none-any.whl"
    cell = f"%master=1\n%requirements={missing}\nprint('code ran')\n"
    job = submit(parts, parameter(cell, "ciao-noinstall"))
    events = events_of(parts, job)
    lines = [e.text for e in events if isinstance(e, LogLine)]
    assert "code ran" not in lines
    assert any("/nonexistent/ciao_missing-1.0-py3-none-any.whl" in line for line in lines)
    assert isinstance(events[-1], JobDone) and not events[-1].succeeded


def test_without_requirements_the_configmap_has_only_the_code(parts, cluster):
    job = submit(parts, parameter("%master=1\nprint(1)", "ciao-plain"))
    assert cluster.get("configmaps", "default", "ciao-plain-code")["data"] == {
        "code.py": "\nprint(1)"
    }
    spec = cluster.get("pytorchjobs", "default", job.name)["spec"]
    (container,) = spec["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-u", "/opt/ciao/code.py"]


def test_requirements_count_towards_the_configmap_size_limit(parts, cluster):
    p = parameter("%master=1\n%requirements=pip\nx = 1", "ciao-big")
    code = "x = '" + "a" * (1024 * 1024 - 16 * 1024 - 8) + "'"  # fits without "pip\n"
    p = dataclasses.replace(p, code=code)
    with pytest.raises(BackendError, match="code and requirements are .* more than a ConfigMap"):
        submit(parts, p)
    assert cluster.list("configmaps", "default") == []
