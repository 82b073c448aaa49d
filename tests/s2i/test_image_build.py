"""The `s2i` and `img` providers: build the cell's image, push it, skip both when unchanged.

The tools are the stand-ins of tests/standin_tools.py (the real `s2i` cannot be installed
here): they record what they were run with and can be told to fail or hang.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import pytest
from shipping import ship
from standin_tools import StandinTools, alive

from ciao.config import parse_config
from ciao.errors import ConfigError, JobCancelled
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.s2i import DockerfileBuild, PushedImages, S2IBuild
from ciao.s2i.tools import BuildError
from ciao.s2i.types import S2IClient

pytestmark = pytest.mark.timeout(60)

REGISTRY = "registry.test:5000/team"
SECRET = "hunter2-not-for-argv"
CELL = "%framework=pytorch\n%master=1\n%requirements=pandas==2.2,scikit-learn\nprint('hi')\n"


@pytest.fixture
def tools(tmp_path: Path) -> StandinTools:
    return StandinTools(tmp_path / "tools")


def provider(tools: StandinTools, tmp_path: Path, cls=S2IBuild, path: str | None = None, **s2i):
    config = parse_config({"s2i": {"provider": cls.provider, "registry": REGISTRY, **s2i}}, None)
    env = tools.env(REGISTRY_PASSWORD=SECRET)
    if path is not None:
        env["PATH"] = path
    return cls(
        config.s2i, config.images, PushedImages(tmp_path / "pushed"), env=env, kill_grace=0.5
    )


def cell(code: str = CELL):
    parameter = MagicInterpreter(name_factory=lambda: "ciao-test").preprocess(code)
    return parameter.code, parameter


def build(client, code: str = CELL) -> tuple[str, list[str]]:
    """The image that source_to_image shipped, and its progress lines."""
    lines: list[str] = []
    source, parameter = cell(code)
    shipment = ship(client, parameter, lines.append)
    return shipment.image, lines


# --- what is run -------------------------------------------------------------------------------


def test_s2i_build_then_push_with_the_exact_command_lines(tools, tmp_path):
    client: S2IClient = provider(tools, tmp_path)
    image, _ = build(client)

    assert re.fullmatch(re.escape(REGISTRY) + r"/ciao:[0-9a-f]{16}", image)
    s2i_run, push_run = tools.runs()
    source_dir = s2i_run["argv"][2]
    builder = "registry.access.redhat.com/ubi9/python-311"
    assert s2i_run["argv"] == ["s2i", "build", source_dir, builder, image]
    assert s2i_run["cwd"] == source_dir
    assert push_run["argv"] == ["docker", "push", image]
    assert not Path(source_dir).exists(), "the source directory is removed after the build"


def test_the_source_directory_holds_the_code_and_the_requirements(tools, tmp_path):
    build(provider(tools, tmp_path))

    (s2i_run, _) = tools.runs()
    assert s2i_run["files"] == {
        "code.py": "\n\n\nprint('hi')\n",  # magic lines blanked: tracebacks keep line numbers
        "requirements.txt": "pandas==2.2\nscikit-learn\n",
        ".s2i/environment": "APP_FILE=code.py\n",
    }


@pytest.mark.parametrize("cls", [S2IBuild, DockerfileBuild])
def test_the_job_runs_the_image_as_built_so_it_gets_no_command_and_no_files(tools, tmp_path, cls):
    source, parameter = cell()
    before = dataclasses.replace(parameter)
    client = provider(tools, tmp_path, cls=cls)

    shipment = ship(client, parameter)

    image = client.image_for(parameter)
    assert (shipment.image, shipment.script) == (image, client.script)
    assert (shipment.command, shipment.files) == ((), {})
    assert shipment.run_with(["torchrun"]) == ("torchrun", client.script)
    assert parameter == before, "nothing about the cell is changed"


def test_an_image_pushed_before_is_shipped_the_same_way(tools, tmp_path):
    source, parameter = cell()
    first = ship(provider(tools, tmp_path), parameter)
    again = ship(provider(tools, tmp_path), parameter)
    assert again.image == first.image and again.build["alreadyPushed"]
    assert len(tools.runs()) == 2, "built and pushed once"


def test_builders_and_push_command_come_from_the_config(tools, tmp_path):
    client = provider(
        tools,
        tmp_path,
        builders={"pytorch": "quay.io/me/torch-s2i:2.5"},
        push_command=["podman", "push", "--tls-verify=false"],
        repository="ml/cells",
    )
    image, _ = build(client)
    assert image.startswith(f"{REGISTRY}/ml/cells:")
    s2i_run, push_run = tools.runs()
    assert s2i_run["argv"][3] == "quay.io/me/torch-s2i:2.5"
    assert push_run["argv"] == ["podman", "push", "--tls-verify=false", image]


def test_build_and_push_output_streams_into_the_cell_line_by_line(tools, tmp_path):
    image, lines = build(provider(tools, tmp_path))
    assert lines[0].startswith("[build] s2i build /") and lines[0].endswith(image)
    assert lines[1:4] == [
        "[build] ---> Installing application source ...",
        "[build] ---> Installing dependencies ...",  # stderr too
        "[build] Build completed successfully",
    ]
    assert lines[4] == f"[push] docker push {image}"
    assert f"[push] The push refers to repository [{REGISTRY}/ciao]" in lines
    assert "[push] 5f70bf18a086: Pushed" in lines
    assert lines[-1] == f"[push] pushed {image}"


# --- the content tag and the skipped rebuild ------------------------------------------------------


def test_the_tag_is_a_hash_of_code_requirements_and_builder(tools, tmp_path):
    client = provider(tools, tmp_path)
    source, parameter = cell()
    image = client.image_for(parameter)
    assert client.image_for(cell()[1]) == image  # same cell, same image

    other_code = cell(CELL.replace("hi", "ho"))
    assert client.image_for(other_code[1]) != image
    other_requirements = cell(CELL.replace("pandas==2.2", "pandas==2.1"))
    assert client.image_for(other_requirements[1]) != image
    other_builder = provider(tools, tmp_path, builders={"pytorch": "me/other-builder"})
    assert other_builder.image_for(parameter) != image
    img = provider(tools, tmp_path, cls=DockerfileBuild)
    assert img.image_for(parameter) != image


def test_an_unchanged_cell_skips_the_build_and_the_push(tools, tmp_path):
    first, _ = build(provider(tools, tmp_path))
    assert len(tools.runs()) == 2

    again, lines = build(provider(tools, tmp_path))  # a new client: as in the next cell

    assert again == first
    assert len(tools.runs()) == 2, "nothing was run again"
    assert lines == [
        f"[build] {first} is already built and pushed (same code, requirements and base)"
    ]
    assert (tmp_path / "pushed").read_text() == f"{first}\n"


def test_a_changed_cell_is_built_and_pushed_again(tools, tmp_path):
    first, _ = build(provider(tools, tmp_path))
    second, _ = build(provider(tools, tmp_path), CELL.replace("hi", "changed"))
    assert second != first
    assert [run["argv"][:2] for run in tools.runs()] == [["s2i", "build"], ["docker", "push"]] * 2


def test_a_failed_push_is_not_remembered_so_the_next_run_builds_again(tools, tmp_path):
    tools.control(docker_push={"exit": 1, "lines": ["unauthorized: authentication required"]})
    with pytest.raises(BuildError):
        build(provider(tools, tmp_path))
    tools.control()
    build(provider(tools, tmp_path))
    assert [run["argv"][:2] for run in tools.runs()] == [["s2i", "build"], ["docker", "push"]] * 2


def test_the_push_cache_is_per_registry(tools, tmp_path):
    build(provider(tools, tmp_path))
    other = parse_config({"s2i": {"provider": "s2i", "registry": "other.test/team"}}, None)
    client = S2IBuild(other.s2i, other.images, PushedImages(tmp_path / "pushed"), tools.env())
    image, _ = build(client)
    assert image.startswith("other.test/team/ciao:")
    assert len(tools.runs()) == 4


# --- credentials ------------------------------------------------------------------------------


def test_no_secret_reaches_a_command_line_the_output_or_an_error(tools, tmp_path):
    client = provider(tools, tmp_path, username="me")
    _, lines = build(client)
    tools.control(docker_push={"exit": 1, "lines": ["denied: requested access is denied"]})
    with pytest.raises(BuildError) as failed:
        build(client, CELL + "# changed\n")

    runs = tools.runs()
    assert len(runs) == 4
    for run in runs:
        assert not any(SECRET in arg for arg in run["argv"])
        assert not any("pass" in arg.lower() or "cred" in arg.lower() for arg in run["argv"])
    assert SECRET not in "\n".join(lines) and SECRET not in str(failed.value)
    assert "docker login -u me registry.test:5000" in str(failed.value)


@pytest.mark.parametrize(
    "push_command",
    [
        ["podman", "push", f"--creds=me:{SECRET}"],
        ["skopeo", "copy", "--dest-password", SECRET],
        ["crane", "push", f"--token={SECRET}"],
    ],
)
def test_the_config_refuses_credentials_in_a_command_without_echoing_them(push_command):
    with pytest.raises(ConfigError, match="credential") as refused:
        parse_config({"s2i": {"provider": "s2i", "push_command": push_command}}, None)
    assert SECRET not in str(refused.value)
    assert "login" in str(refused.value)


# --- failures -----------------------------------------------------------------------------------


def test_a_missing_s2i_names_it_and_how_to_install_it_and_runs_nothing(tools, tmp_path):
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    (bare / "docker").symlink_to(tools.bin / "docker")
    client = provider(tools, tmp_path, path=str(bare))
    with pytest.raises(BuildError) as failed:
        build(client)
    message = str(failed.value)
    assert message.startswith("s2i is not on the kernel's PATH")
    assert "https://github.com/openshift/source-to-image/releases" in message
    assert "nothing was submitted" in message
    assert tools.runs() == []


def test_a_missing_push_tool_is_found_before_anything_is_built(tools, tmp_path):
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    (bare / "s2i").symlink_to(tools.bin / "s2i")
    client = provider(tools, tmp_path, path=str(bare))
    with pytest.raises(BuildError) as failed:
        build(client)
    message = str(failed.value)
    assert message.startswith("docker is not on the kernel's PATH (it runs push_command)")
    assert "install Docker" in message and "[podman, push]" in message
    assert tools.runs() == []


def test_a_build_failure_carries_the_last_lines_of_the_build_output(tools, tmp_path):
    output = [f"step {i}" for i in range(30)] + ["ERROR: No matching distribution for pandas==2.2"]
    tools.control(s2i_build={"exit": 1, "lines": output})
    with pytest.raises(BuildError) as failed:
        build(provider(tools, tmp_path))
    message = str(failed.value)
    assert message.startswith("the image build failed (s2i exited with code 1)")
    assert "nothing was submitted" in message
    assert message.endswith("    ERROR: No matching distribution for pandas==2.2")
    assert "    step 29" in message and "    step 11" in message
    assert "step 10\n" not in message, "only the last lines"
    assert [run["tool"] for run in tools.runs()] == ["s2i"], "nothing pushed"
    assert failed.value.ename == "BuildError"


@pytest.mark.parametrize(
    ("output", "diagnosis"),
    [
        ("unauthorized: authentication required", "looks like an authentication problem"),
        ("denied: requested access to the resource is denied", "authentication problem"),
        ("no basic auth credentials", "authentication problem"),
        (
            "name unknown: The repository with name 'team/ciao' does not exist in the "
            "registry with id '123456789012'",
            f"looks like the repository {REGISTRY}/ciao does not exist",
        ),
        ("unknown: project team not found: project team not found", "does not exist"),
        ("dial tcp: lookup registry.test: no such host", "could not be reached"),
        ("something else went wrong", "neither an authentication problem nor a missing"),
    ],
)
def test_a_push_failure_says_whether_it_looks_like_authentication_or_a_missing_repository(
    tools, tmp_path, output, diagnosis
):
    tools.control(docker_push={"exit": 1, "lines": ["The push refers to repository", output]})
    with pytest.raises(BuildError) as failed:
        build(provider(tools, tmp_path))
    message = str(failed.value)
    assert message.startswith("pushing registry.test:5000/team/ciao:")
    assert "(docker exited with code 1)" in message and diagnosis in message
    assert message.endswith(f"    {output}")


def test_a_build_that_takes_too_long_is_stopped_with_its_whole_process_group(tools, tmp_path):
    tools.control(s2i_build={"sleep": 60})
    with pytest.raises(BuildError) as failed:
        build(provider(tools, tmp_path, timeout=1))
    assert "did not finish within 1 s (s2i.timeout)" in str(failed.value)
    assert "    sleeping" in str(failed.value)
    (run,) = tools.runs()
    assert not any(alive(pid) for pid in run["pids"])


def test_a_push_that_prints_without_end_is_stopped_at_its_timeout_too(tools, tmp_path):
    tools.control(docker_push={"chatter": True})
    with pytest.raises(BuildError) as failed:
        build(provider(tools, tmp_path, timeout=1))
    assert "did not finish within 1 s (s2i.timeout)" in str(failed.value)
    assert str(failed.value).endswith("    still working")


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_from_another_thread_stops_the_build_and_nothing_is_pushed(tools, tmp_path):
    tools.control(s2i_build={"sleep": 60})
    client = provider(tools, tmp_path)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            build(client)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    (started,) = tools.wait_for_runs(1)
    client.cancel()  # returns at once, as an interrupt handler needs
    thread.join(30)

    assert not thread.is_alive()
    assert isinstance(outcome[0], JobCancelled)
    assert "nothing was submitted" in str(outcome[0])
    assert not any(alive(pid) for pid in started["pids"])
    assert len(tools.runs()) == 1, "no push after a cancelled build"
    assert not (tmp_path / "pushed").exists()


def test_a_cancel_before_the_build_starts_runs_nothing(tools, tmp_path):
    client = provider(tools, tmp_path)
    client.cancel()
    with pytest.raises(JobCancelled):
        build(client)
    assert tools.runs() == []


# --- config -------------------------------------------------------------------------------------


def test_an_image_provider_needs_a_registry(tools):
    config = parse_config({"s2i": {"provider": "s2i"}}, Path("/etc/ciao/config.yaml"))
    with pytest.raises(ConfigError, match=r"/etc/ciao/config.yaml: s2i.registry is empty"):
        S2IBuild(config.s2i, config.images, env=tools.env(), source=config.source)


# --- img: a Dockerfile on the framework's image -------------------------------------------------


def test_img_builds_a_dockerfile_on_the_framework_image_and_pushes_it(tools, tmp_path):
    client = provider(tools, tmp_path, cls=DockerfileBuild)
    image, lines = build(client)

    build_run, push_run = tools.runs()
    source_dir = build_run["argv"][-1]
    assert build_run["argv"] == ["docker", "build", "-t", image, source_dir]
    assert push_run["argv"] == ["docker", "push", image]
    assert build_run["files"]["Dockerfile"] == (
        "# Written by Ciao for one notebook cell.\n"
        "FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime\n"
        "COPY requirements.txt /opt/ciao/requirements.txt\n"
        "RUN python -m pip install --no-cache-dir --disable-pip-version-check "
        "-r /opt/ciao/requirements.txt\n"
        "COPY code.py /opt/ciao/code.py\n"
        "ENV PYTHONUNBUFFERED=1\n"
        'ENTRYPOINT ["python", "-u", "/opt/ciao/code.py"]\n'
    )
    assert build_run["files"]["requirements.txt"] == "pandas==2.2\nscikit-learn\n"
    assert "[build] Successfully tagged " + image in lines


def test_img_with_podman_and_no_requirements(tools, tmp_path):
    client = provider(
        tools,
        tmp_path,
        cls=DockerfileBuild,
        build_command=["podman", "build", "--layers"],
        push_command=["podman", "push"],
    )
    image, _ = build(client, "%framework=tensorflow\nprint(1)\n")
    build_run, push_run = tools.runs()
    assert build_run["argv"][:5] == ["podman", "build", "--layers", "-t", image]
    assert push_run["argv"] == ["podman", "push", image]
    dockerfile = build_run["files"]["Dockerfile"]
    assert "FROM tensorflow/tensorflow:2.18.0\n" in dockerfile and "pip" not in dockerfile


# --- %dryrun --------------------------------------------------------------------------------------


def test_the_plan_shows_the_image_commands_and_files_and_runs_nothing(tools, tmp_path):
    client = provider(tools, tmp_path)
    source, parameter = cell()

    shipment = client.plan(parameter)
    image, build_plan = shipment.image, shipment.build

    assert tools.runs() == []
    assert (shipment.command, shipment.files) == ((), {}), "the image runs the code itself"
    assert build_plan == {
        "build": "s2i",
        "image": image,
        "alreadyPushed": False,
        "buildCommand": [
            "s2i",
            "build",
            "<source dir>",
            "registry.access.redhat.com/ubi9/python-311",
            image,
        ],
        "pushCommand": ["docker", "push", image],
        "files": {
            "code.py": source,
            "requirements.txt": "pandas==2.2\nscikit-learn\n",
            ".s2i/environment": "APP_FILE=code.py\n",
        },
    }
    built, _ = build(client)
    assert built == image, "the plan names the image that submission builds"
    (s2i_run, _) = tools.runs()
    assert s2i_run["files"] == build_plan["files"]
    assert client.plan(parameter).build["alreadyPushed"] is True


def test_a_file_changed_between_plan_and_build_is_refused_with_nothing_built(tools, tmp_path):
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    (notebook / "data.csv").write_text("a\n1\n")
    _, parsed = cell("%master=1\n%files=data.csv\nprint(1)\n")
    parameter = dataclasses.replace(parsed, directory=str(notebook))
    client = provider(tools, tmp_path, cls=DockerfileBuild)
    shipment = client.plan(parameter)

    (notebook / "data.csv").write_text("a\n2\n")  # a detached job, an editor, ...

    with pytest.raises(BuildError, match="changed since it was planned.*run the cell again"):
        client.source_to_image(shipment, parameter)
    assert tools.runs() == []
