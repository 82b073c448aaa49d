"""LocalCodeFile: the local backend's "image" is the cell's code in the job's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciao.interpreter.types import Parameter, RoleSpec
from ciao.s2i.local import LocalCodeFile
from ciao.s2i.types import S2IClient


def parameter(name: str) -> Parameter:
    return Parameter("pytorch", {"master": RoleSpec("master", 1)}, generate_name=name)


def test_writes_the_code_to_the_jobs_directory_and_returns_its_absolute_path(tmp_path: Path):
    client: S2IClient = LocalCodeFile(tmp_path / "runs")

    image = client.source_to_image("print('héllo')\n", parameter("mnist-abc12"))

    path = Path(image)
    assert path.is_absolute()
    assert path == (tmp_path / "runs" / "mnist-abc12" / "code.py").resolve()
    assert path.read_text(encoding="utf-8") == "print('héllo')\n"


def test_each_job_gets_its_own_directory(tmp_path: Path):
    client = LocalCodeFile(tmp_path)

    first = client.source_to_image("a = 1\n", parameter("job-a"))
    second = client.source_to_image("b = 2\n", parameter("job-b"))

    assert Path(first).parent != Path(second).parent
    assert Path(first).read_text() == "a = 1\n"


def test_a_relative_run_root_still_gives_an_absolute_path(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    image = LocalCodeFile(Path("runs")).source_to_image("x = 1\n", parameter("job"))

    assert Path(image).is_absolute() and Path(image).is_file()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_name_that_is_not_one_directory_is_refused(tmp_path: Path, name: str):
    with pytest.raises(ValueError):
        LocalCodeFile(tmp_path).source_to_image("x = 1\n", parameter(name))
