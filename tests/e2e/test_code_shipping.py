"""Phase 2 end to end, through the installed kernel: code shipped by the `s2i` and `img`
providers (stand-in tools, see tests/standin_tools.py) and by the `configmap` provider with
`%requirements` on the test cluster, and `%requirements` on the local backend.

The config is read for every cell, so one kernel serves every test: each writes the config
it needs. The fake kubelet ignores images: a container without a command exits 0 at once,
which is what a pod of a built image (its entrypoint runs the code) does here. What the
tests check for those jobs is what was built, pushed and submitted.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from fakecluster import FakeCluster
from kernel_client import iopub_until_idle, run, running_kernel, stream_text
from standin_tools import StandinTools, alive

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-registry-password"
REGISTRY = "registry.test/team"


@pytest.fixture(scope="module")
def cluster():
    # The kubelet runs containers with this process's PATH: `python` there must be the test
    # environment's (it has pip, as the framework images do).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
        with FakeCluster(namespaces=("default",)) as fake:
            yield fake


@pytest.fixture(scope="module")
def setup(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("shipping")
    tools = StandinTools(home / "tools")
    kubeconfig = cluster.write_kubeconfig(home / "kubeconfig")
    config = home / "config.yaml"
    env = {
        **os.environ,
        "PATH": tools.path_with_tools(f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"),
        "CIAO_CONFIG": str(config),
        "REGISTRY_PASSWORD": SECRET,  # in the kernel's environment, as a user's might be
        "CIAO_LOG_LEVEL": "DEBUG",  # everything the kernel logs, checked for the secret
    }
    kernel_log = home / "kernel.log"
    with open(kernel_log, "wb") as log, running_kernel(env=env, stderr=log) as (km, kc):
        yield {
            "km": km,
            "kc": kc,
            "tools": tools,
            "config": config,
            "kubeconfig": kubeconfig,
            "kernel_log": kernel_log,
        }


@pytest.fixture
def kc(setup, cluster):
    for resource in ("pytorchjobs", "configmaps"):
        for obj in cluster.list(resource, "default"):
            cluster.delete(resource, "default", obj["metadata"]["name"], propagation="Foreground")
    cluster.wait_for(lambda: not cluster.list("pods", "default"), timeout=30)
    setup["tools"].control()
    return setup["kc"]


def configure(setup, s2i: str) -> None:
    setup["config"].write_text(
        f"backend: kubeflow\nkubeconfig: {setup['kubeconfig']}\nnamespace: default\ns2i: {s2i}\n"
    )


def container_of(job: dict) -> dict:
    (container,) = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"]
    return container


def all_text(messages: list[dict]) -> str:
    return "\n".join(str(m["content"]) for m in messages)


S2I = f"{{provider: s2i, registry: {REGISTRY}, username: me}}"
CELL = "%master=1\n%requirements=pip\nprint('trained')\n"


def test_an_s2i_cell_is_built_pushed_and_submitted_with_the_pushed_image(setup, kc, cluster):
    configure(setup, S2I)
    tools = setup["tools"]
    before = len(tools.runs())

    content, messages = run(kc, CELL)

    assert content["status"] == "ok", content
    s2i_run, push_run = tools.runs()[before:]
    image = push_run["argv"][-1]
    assert re.fullmatch(rf"{re.escape(REGISTRY)}/ciao:[0-9a-f]{{16}}", image)
    assert s2i_run["argv"][:2] == ["s2i", "build"] and s2i_run["argv"][-1] == image
    assert s2i_run["files"]["code.py"] == "\n\nprint('trained')\n"
    assert s2i_run["files"]["requirements.txt"] == "pip\n"
    text = stream_text(messages)
    assert "[build] ---> Installing application source ...\n" in text
    assert f"[push] docker push {image}\n" in text and f"[push] pushed {image}\n" in text
    (job,) = cluster.list("pytorchjobs", "default")
    container = container_of(job)
    assert container["image"] == image
    assert "command" not in container  # the image runs the code: nothing mounted but HOME
    assert [m["name"] for m in container["volumeMounts"]] == ["ciao-home"]
    assert cluster.list("configmaps", "default") == []


def test_running_an_unchanged_s2i_cell_again_skips_the_build_and_the_push(setup, kc, cluster):
    configure(setup, S2I)
    tools = setup["tools"]
    run(kc, CELL + "# once\n")
    runs = len(tools.runs())

    content, messages = run(kc, CELL + "# once\n")

    assert content["status"] == "ok", content
    assert len(tools.runs()) == runs, "neither s2i nor docker ran"
    assert "is already built and pushed" in stream_text(messages)
    images = {container_of(job)["image"] for job in cluster.list("pytorchjobs", "default")}
    assert len(images) == 1 and len(cluster.list("pytorchjobs", "default")) == 2


def test_a_failed_build_fails_the_cell_with_its_last_lines_and_submits_nothing(setup, kc, cluster):
    configure(setup, S2I)
    setup["tools"].control(s2i_build={"exit": 2, "lines": ["Collecting torch", "ERROR: disk full"]})

    content, _ = run(kc, CELL + "# build fails\n")

    assert content["status"] == "error"
    assert content["ename"] == "BuildError"
    assert "the image build failed (s2i exited with code 2)" in content["evalue"]
    assert content["evalue"].endswith("    Collecting torch\n    ERROR: disk full")
    assert cluster.list("pytorchjobs", "default") == []
    assert cluster.list("configmaps", "default") == []


def test_a_refused_push_says_it_looks_like_authentication_and_submits_nothing(setup, kc, cluster):
    configure(setup, S2I)
    setup["tools"].control(docker_push={"exit": 1, "lines": ["unauthorized: incorrect login"]})

    content, messages = run(kc, CELL + "# push fails\n")

    assert content["status"] == "error" and content["ename"] == "BuildError"
    assert "looks like an authentication problem" in content["evalue"]
    assert "docker login -u me registry.test" in content["evalue"]
    assert cluster.list("pytorchjobs", "default") == []


def test_no_secret_of_the_environment_reaches_argv_the_cell_or_the_kernel_log(setup, kc):
    configure(setup, S2I)
    tools = setup["tools"]
    setup["tools"].control(docker_push={"exit": 1, "lines": ["denied: access forbidden"]})
    _, failed = run(kc, CELL + "# secret check\n")
    tools.control()
    _, passed = run(kc, CELL + "# secret check 2\n")

    assert tools.runs(), "the tools ran"
    for recorded in tools.runs():
        assert not any(SECRET in arg for arg in recorded["argv"])
    assert SECRET not in all_text(failed) + all_text(passed)
    kernel_log = setup["kernel_log"].read_text(errors="replace")
    assert "running s2i build" in kernel_log and "running docker push" in kernel_log
    assert SECRET not in kernel_log


def test_an_interrupt_during_the_build_stops_it_and_submits_nothing(setup, kc, cluster):
    configure(setup, S2I)
    tools = setup["tools"]
    tools.control(s2i_build={"sleep": 60})
    before = len(tools.runs())
    msg_id = kc.execute(CELL + "# interrupted\n")
    (started,) = tools.wait_for_runs(before + 1)[before:]

    setup["km"].interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)["content"]
    iopub_until_idle(kc, msg_id)

    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in started["pids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in started["pids"]), "the build's process group is gone"
    assert len(tools.runs()) == before + 1, "nothing pushed"
    assert cluster.list("pytorchjobs", "default") == []


def test_an_img_cell_builds_a_dockerfile_with_podman(setup, kc, cluster):
    configure(
        setup,
        f"{{provider: img, registry: {REGISTRY}, build_command: [podman, build], "
        "push_command: [podman, push]}",
    )
    tools = setup["tools"]
    before = len(tools.runs())

    content, _ = run(kc, CELL + "# img\n")

    assert content["status"] == "ok", content
    build_run, push_run = tools.runs()[before:]
    image = push_run["argv"][-1]
    assert build_run["argv"][:4] == ["podman", "build", "-t", image]
    assert push_run["argv"] == ["podman", "push", image]
    assert "FROM pytorch/pytorch:" in build_run["files"]["Dockerfile"]
    (job,) = cluster.list("pytorchjobs", "default")
    assert container_of(job)["image"] == image and "command" not in container_of(job)


def test_a_configmap_cell_with_requirements_installs_them_in_the_replica(setup, kc, cluster):
    configure(setup, "{provider: configmap}")

    content, messages = run(kc, "%master=1\n%worker=1\n%requirements=pip\nprint('trained')\n")

    assert content["status"] == "ok", content
    text = stream_text(messages)
    for replica in ("master-0", "worker-0"):
        assert f"[{replica}] Requirement already satisfied: pip" in text
        assert f"[{replica}] trained" in text
    (config_map,) = cluster.list("configmaps", "default")
    assert config_map["data"]["requirements.txt"] == "pip\n"
    assert container_of(cluster.list("pytorchjobs", "default")[0])["command"][:2] == ["sh", "-c"]


def test_requirements_on_the_local_backend_are_checked_and_the_job_still_runs(setup, kc):
    configure(setup, "{provider: configmap}")
    cell = "%backend=local\n%master=1\n%requirements=pip,ciao-surely-missing==1.0\nprint('ran')"

    content, messages = run(kc, cell)

    assert content["status"] == "ok", content
    text = stream_text(messages)
    assert (
        "[ciao] warning: ciao-surely-missing==1.0 is not installed in the kernel's environment; "
        "the local replicas will not have it\n"
    ) in text
    assert "warning: pip" not in text
    assert "[master-0] ran\n" in text
    assert text.index("warning") < text.index("[master-0] ran")


def test_dryrun_shows_the_build_and_the_job_with_its_image_and_runs_no_tool(setup, kc, cluster):
    configure(setup, S2I)
    tools = setup["tools"]
    before = len(tools.runs())

    content, messages = run(kc, "%dryrun\n" + CELL + "# dry\n")

    assert content["status"] == "ok", content
    (result,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    build_plan, job = (
        result["application/vnd.ciao.plan+json"]["objects"][0],
        result["application/vnd.ciao.plan+json"]["job"],
    )
    assert build_plan["buildCommand"][:2] == ["s2i", "build"]
    assert build_plan["files"]["requirements.txt"] == "pip\n"
    assert container_of(job)["image"] == build_plan["image"]
    assert build_plan["image"].startswith(f"{REGISTRY}/ciao:")
    assert len(tools.runs()) == before
    assert cluster.list("pytorchjobs", "default") == []


def test_a_build_arg_value_is_never_in_an_argv_nor_shown_and_buildkit_secrets_pass(
    setup, kc, cluster
):
    build = "[docker, build, --build-arg, API_KEY=sekrit-build-value, --secret, 'id=npm,src=/n']"
    configure(setup, f"{{provider: img, registry: {REGISTRY}, build_command: {build}}}")
    tools = setup["tools"]
    before = len(tools.runs())

    content, messages = run(kc, CELL + "# build-arg\n")

    assert content["status"] == "ok", content
    build_run = tools.runs()[before]
    assert build_run["argv"][:4] == ["docker", "build", "--build-arg", "API_KEY"]
    assert build_run["env"]["API_KEY"] == "sekrit-build-value"  # from the environment
    assert "--secret" in build_run["argv"] and "id=npm,src=/n" in build_run["argv"]
    text = stream_text(messages)
    assert "API_KEY=***" in text and "sekrit-build-value" not in text
    content, messages = run(kc, "%config")
    shown = json.dumps([m["content"] for m in messages])
    assert "API_KEY=***" in shown and "sekrit-build-value" not in shown
    assert "sekrit-build-value" not in setup["kernel_log"].read_text()
