"""The Manager below the kernel: how a submitted job is (or is not) followed."""

from __future__ import annotations

import pytest

from ciao import manager as manager_module
from ciao.backend.types import Job, JobDone, LogLine
from ciao.config import parse_config
from ciao.interpreter.magics import MagicInterpreter
from ciao.manager import Manager, Prepared

pytestmark = pytest.mark.timeout(30)


class RecordingBackend:
    name = "stub"

    def __init__(self) -> None:
        self.followed = False

    def exec_code(self, parameter):
        return Job(parameter.framework, "ciao-stub1", {"master": 1}, self.name, None)

    def get_logs(self, job):
        self.followed = True
        yield LogLine("master-0", "hello")
        yield JobDone(True, "Succeeded", "")

    def detach(self, job):
        pass

    def cancel(self, job):
        pass


class CodeAsImage:
    def source_to_image(self, code, parameter, progress=None):
        return "image"


@pytest.fixture
def backend(monkeypatch):
    stub = RecordingBackend()
    monkeypatch.setattr(
        manager_module, "components_for", lambda config, name="": (CodeAsImage(), stub)
    )
    return stub


def prepared(cell: str) -> Prepared:
    return Prepared(parse_config({}, None), job=MagicInterpreter().preprocess(cell))


def test_a_detach_cell_submits_the_job_and_never_follows_it(backend):
    active = Manager().submit(prepared("%detach\n%framework=pytorch\n%master=1\nprint(1)"))
    assert active.detached and list(active.events()) == []
    assert not backend.followed


def test_a_followed_job_yields_every_event_to_its_end(backend):
    active = Manager().submit(prepared("%framework=pytorch\n%master=1\nprint(1)"))
    assert list(active.events()) == [
        LogLine("master-0", "hello"),
        JobDone(True, "Succeeded", ""),
    ]
    assert backend.followed
