"""LocalCodeFile: the local backend's "image" is the cell's code in the job's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciao.interpreter.types import Parameter, RoleSpec
from ciao.s2i.local import LocalCodeFile
from ciao.s2i.types import S2IClient, Shipment


def parameter(name: str) -> Parameter:
    return Parameter("pytorch", {"master": RoleSpec("master", 1)}, generate_name=name)


def test_writes_the_code_to_the_jobs_directory_and_returns_its_absolute_path(tmp_path: Path):
    client: S2IClient = LocalCodeFile(tmp_path / "runs")

    shipment = client.source_to_image("print('héllo')\n", parameter("mnist-abc12"))

    assert shipment == Shipment(image=shipment.image), "only the image: no command, no files"
    path = Path(shipment.image)
    assert path.is_absolute()
    assert path == (tmp_path / "runs" / "mnist-abc12" / "work" / "code.py").resolve()
    assert path.read_text(encoding="utf-8") == "print('héllo')\n"


def test_each_job_gets_its_own_directory(tmp_path: Path):
    client = LocalCodeFile(tmp_path)

    first = client.source_to_image("a = 1\n", parameter("job-a")).image
    second = client.source_to_image("b = 2\n", parameter("job-b")).image

    assert Path(first).parent != Path(second).parent
    assert Path(first).read_text() == "a = 1\n"


def test_a_relative_run_root_still_gives_an_absolute_path(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    image = LocalCodeFile(Path("runs")).source_to_image("x = 1\n", parameter("job")).image

    assert Path(image).is_absolute() and Path(image).is_file()


def test_the_plan_names_the_file_that_source_to_image_writes_and_writes_nothing(tmp_path: Path):
    client = LocalCodeFile(tmp_path / "runs")

    planned = client.plan("x = 1\n", parameter("job"))

    assert not (tmp_path / "runs").exists()
    assert client.source_to_image("x = 1\n", parameter("job")) == planned


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_name_that_is_not_one_directory_is_refused(tmp_path: Path, name: str):
    with pytest.raises(ValueError):
        LocalCodeFile(tmp_path).source_to_image("x = 1\n", parameter(name))


def test_resources_a_local_job_cannot_apply_are_a_note(tmp_path: Path):
    from ciao.interpreter.magics import MagicInterpreter

    def lines_for(cell: str) -> list[str]:
        parameter = MagicInterpreter().preprocess(cell)
        lines: list[str] = []
        LocalCodeFile(tmp_path).source_to_image(parameter.code, parameter, lines.append)
        return lines

    (note,) = lines_for("%framework=tensorflow\n%ps=1;%memory=1Gi\n%worker=2;%cpu=500m\nx")
    assert note.startswith("[ciao] note: %memory=1Gi (ps); %cpu=500m (worker) apply on Kubernetes")
    assert lines_for("%master=1;%gpu=0\n%worker=2\nx") == []
