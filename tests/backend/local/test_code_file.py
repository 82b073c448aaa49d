"""LocalCodeFile: the local backend's "image" is the cell's code in the job's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from shipping import ship

from ciao.backend.local.code_file import LocalCodeFile
from ciao.interpreter.types import Parameter, RoleSpec
from ciao.s2i.types import S2IClient, Shipment


def parameter(name: str, code: str = "x = 1\n") -> Parameter:
    return Parameter("pytorch", {"master": RoleSpec("master", 1)}, generate_name=name, code=code)


def test_writes_the_code_to_the_jobs_directory_and_returns_its_absolute_path(tmp_path: Path):
    client: S2IClient = LocalCodeFile(tmp_path / "runs")

    shipment = ship(client, parameter("mnist-abc12", "print('héllo')\n"))

    assert shipment == Shipment(image=shipment.image), "only the image: no command, no files"
    path = Path(shipment.image)
    assert path.is_absolute()
    assert path == (tmp_path / "runs" / "mnist-abc12" / "work" / "code.py").resolve()
    assert path.read_text(encoding="utf-8") == "print('héllo')\n"


def test_each_job_gets_its_own_directory(tmp_path: Path):
    client = LocalCodeFile(tmp_path)

    first = ship(client, parameter("job-a", "a = 1\n")).image
    second = ship(client, parameter("job-b", "b = 2\n")).image

    assert Path(first).parent != Path(second).parent
    assert Path(first).read_text() == "a = 1\n"


def test_a_relative_run_root_still_gives_an_absolute_path(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    image = ship(LocalCodeFile(Path("runs")), parameter("job")).image

    assert Path(image).is_absolute() and Path(image).is_file()


def test_the_plan_names_the_file_that_source_to_image_writes_and_writes_nothing(tmp_path: Path):
    client = LocalCodeFile(tmp_path / "runs")

    planned = client.plan(parameter("job"))

    assert not (tmp_path / "runs").exists()
    assert client.source_to_image(planned, parameter("job")) == planned
    assert Path(planned.image).read_text() == "x = 1\n"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_name_that_is_not_one_directory_is_refused(tmp_path: Path, name: str):
    with pytest.raises(ValueError):
        ship(LocalCodeFile(tmp_path), parameter(name))


def test_resources_a_local_job_cannot_apply_are_a_note(tmp_path: Path):
    from ciao.interpreter.magics import MagicInterpreter

    def lines_for(cell: str) -> list[str]:
        parameter = MagicInterpreter().preprocess(cell)
        lines: list[str] = []
        ship(LocalCodeFile(tmp_path), parameter, lines.append)
        return lines

    (note,) = lines_for("%framework=tensorflow\n%ps=1;%memory=1Gi\n%worker=2;%cpu=500m\nx")
    assert note.startswith("[ciao] note: %memory=1Gi (ps); %cpu=500m (worker) apply on Kubernetes")
    assert lines_for("%master=1;%gpu=0\n%worker=2\nx") == []
