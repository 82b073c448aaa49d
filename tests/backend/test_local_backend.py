"""The local backend as the kernel sees it: a supervisor process per job, run directories."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ciao.backend.local import LocalBackend
from ciao.backend.run_dir import RunDir
from ciao.backend.types import JobDone
from ciao.interpreter.magics import MagicInterpreter

pytestmark = pytest.mark.timeout(60)


def submit(backend: LocalBackend, tmp_path: Path, cell: str):
    parameter = MagicInterpreter().preprocess(cell)
    code = tmp_path / "code.py"
    code.write_text(parameter.code)
    parameter.image = str(code)
    return backend.exec_code(parameter)


def is_zombie_or_gone(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    return "zombie" if "\nState:\tZ" in status else "running"


def test_a_finished_jobs_supervisor_is_reaped_not_left_a_zombie(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, tmp_path, "%framework=pytorch\n%master=1\nprint('hi')")
    events = list(backend.get_logs(job))
    assert isinstance(events[-1], JobDone) and events[-1].succeeded
    deadline = time.monotonic() + 20
    while is_zombie_or_gone(job.handle.pid) != "gone" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert is_zombie_or_gone(job.handle.pid) == "gone"


def test_a_detached_jobs_supervisor_is_reaped_when_it_ends(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, tmp_path, "%framework=pytorch\n%master=1\nprint('hi')")
    backend.detach(job)  # never followed: nobody reads its JobDone
    deadline = time.monotonic() + 20
    while is_zombie_or_gone(job.handle.pid) != "gone" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert is_zombie_or_gone(job.handle.pid) == "gone"
    assert job.handle.run.final().succeeded


def test_jobs_of_other_backends_in_the_run_directory_are_not_listed_as_local(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    RunDir(tmp_path / "runs", "ciao-kfjob").write_spec(
        {"name": "ciao-kfjob", "backend": "kubeflow", "created": time.time(), "owner": {}}
    )
    job = submit(backend, tmp_path, "%framework=pytorch\n%master=1\nprint('hi')")
    list(backend.get_logs(job))
    assert [info.name for info in backend.list()] == [job.name]
