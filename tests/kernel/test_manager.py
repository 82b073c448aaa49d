"""The Manager below the kernel: phases 2 and 3 in order, interrupts at any point of them,
and a %detach cell that submits its job and reads none of it.

The components come from a Registry; these tests give it fakes that record what they were
asked, so each interrupt lands at a known point."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ciao.backend.bound import BoundBackend
from ciao.backend.metrics import Metrics
from ciao.backend.record import RunDir
from ciao.backend.types import IDLE, Event, Idle, Job, JobDone, JobInfo, LogLine, one_per_line
from ciao.config import Config, parse_config
from ciao.errors import JobCancelled
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter
from ciao.manager import Manager, Prepared
from ciao.registry import Registry
from ciao.s2i.types import LineCallback, Shipment

pytestmark = pytest.mark.timeout(60)

CELL = "%framework=pytorch\n%master=1\nprint('hi')"


@dataclass(frozen=True)
class FakePlan:
    parameter: Parameter
    shipment: Shipment
    backend: str = "fake"

    @property
    def name(self) -> str:
        return self.parameter.generate_name

    def documents(self) -> list[Any]:
        return [{"name": self.name, "image": self.shipment.image}]


class FakeS2I:
    """Builds for as long as the test says (`release`), and can be cancelled meanwhile."""

    def __init__(self, block: bool = False) -> None:
        self.block = block
        self.building = threading.Event()
        self.release = threading.Event()
        self.cancelled = False
        self.built: list[str] = []

    def plan(self, parameter: Parameter) -> Shipment:
        return Shipment(image=f"image-of-{parameter.generate_name}")

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: LineCallback | None = None
    ) -> Shipment:
        self.building.set()
        if self.block:
            self.release.wait(10)
        if self.cancelled:
            raise JobCancelled("the build was interrupted")
        self.built.append(parameter.code)
        return shipment

    def cancel(self) -> None:
        self.cancelled = True
        self.release.set()


@dataclass
class FakeBackend:
    name: str = "fake"
    submitted: list[FakePlan] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def dry_run(self, parameter: Parameter, shipment: Shipment) -> FakePlan:
        return FakePlan(parameter, shipment)

    def exec_code(self, plan: FakePlan) -> Job[FakePlan]:
        self.submitted.append(plan)
        return Job(plan.parameter.framework, plan.name, {"master": 1}, self.name, plan)

    def get_logs(self, job: Job[FakePlan]) -> Iterator[Event | Idle]:
        yield IDLE
        yield LogLine("master-0", "hi")
        yield JobDone(True, "Succeeded")

    def cancel(self, job: Job[FakePlan]) -> None:
        self.cancelled.append(job.name)

    def detach(self, job: Job[FakePlan]) -> None:
        pass

    def attach(self, name: str) -> Job[FakePlan]:
        raise NotImplementedError

    def jobs(self) -> list[JobInfo]:
        return []

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        raise NotImplementedError

    def logs(self, name: str, replica: str | None = None, tail: int | None = None):
        return iter(())

    def metrics(self, name: str) -> Metrics:
        return Metrics()

    def delete(self, name: str) -> None:
        pass


class FakeRegistry(Registry):
    def __init__(self, s2i: FakeS2I, backend: FakeBackend) -> None:
        super().__init__()
        self.s2i, self.backend = s2i, backend

    def components(self, config: Config, backend: str = "") -> tuple[Any, Any]:
        return self.s2i, BoundBackend(self.backend)


def manager_with(s2i: FakeS2I, backend: FakeBackend, tmp_path) -> tuple[Manager, Prepared]:
    config = parse_config({"local": {"run_dir": str(tmp_path)}}, None)
    manager = Manager(load_config=lambda: config, registry=FakeRegistry(s2i, backend))
    manager.begin()
    return manager, manager.prepare(CELL)


def test_submit_ships_the_code_then_submits_the_plan_of_that_shipment(tmp_path):
    s2i, backend = FakeS2I(), FakeBackend()
    manager, prepared = manager_with(s2i, backend, tmp_path)
    active = manager.submit(prepared, owner={"cell": "3"})
    (plan,) = backend.submitted
    assert plan.shipment.image == f"image-of-{prepared.parameter.generate_name}"
    assert plan.parameter.owner == {"cell": "3"}
    assert prepared.parameter.owner == {}, "the cell's Parameter itself is never changed"
    events = list(active.events())
    assert [type(e).__name__ for e in events] == ["LogLine", "JobDone"], "IDLE is not an event"


def test_the_dry_run_is_the_plan_submit_would_send(tmp_path):
    s2i, backend = FakeS2I(), FakeBackend()
    manager, prepared = manager_with(s2i, backend, tmp_path)
    shown = manager.dry_run(prepared)
    manager.submit(prepared)
    assert backend.submitted == [shown]
    assert s2i.built == [prepared.parameter.code], "the dry run built nothing"


def test_an_interrupt_before_submission_submits_nothing(tmp_path):
    s2i, backend = FakeS2I(), FakeBackend()
    manager, prepared = manager_with(s2i, backend, tmp_path)
    assert manager.cancel() is False  # nothing runs yet: the interrupt is kept for the cell
    with pytest.raises(JobCancelled):
        manager.submit(prepared)
    assert backend.submitted == [] and s2i.built == []


def test_an_interrupt_during_the_build_stops_it_and_submits_nothing(tmp_path):
    s2i, backend = FakeS2I(block=True), FakeBackend()
    manager, prepared = manager_with(s2i, backend, tmp_path)
    failure: list[BaseException] = []

    def submit() -> None:
        try:
            manager.submit(prepared)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    assert s2i.building.wait(10)
    assert manager.cancel() is True  # the build is what runs: it is told to stop
    thread.join(10)
    assert s2i.cancelled and isinstance(failure[0], JobCancelled)
    assert backend.submitted == []


def test_a_detach_cell_submits_the_job_and_marks_nothing_as_shown(tmp_path):
    config = parse_config({"local": {"run_dir": str(tmp_path)}}, None)
    cell = "%detach\n%framework=pytorch\n%master=1\nprint('for later')"
    manager = Manager(lambda: config, Registry())
    active = manager.submit(Prepared(config, parameter=MagicInterpreter().preprocess(cell)))
    assert active.detached and list(active.events()) == []
    attached = manager.registry.backend_of(config, active.job.name).attach(active.job.name)
    events = one_per_line(attached.events())
    lines = [e for e in events if getattr(e, "text", None) == "for later"]
    assert len(lines) == 1  # %attach shows the job's whole output: the cell consumed none
    assert RunDir(tmp_path, active.job.name).shown("") > 0


def test_a_cell_with_more_replicas_than_its_backend_runs_is_refused_before_anything(tmp_path):
    from ciao.errors import ConfigError

    config = parse_config({"local": {"run_dir": str(tmp_path)}}, None)
    manager = Manager(lambda: config, Registry())
    cell = "%framework=pytorch\n%master=1\n%worker=100\nprint(1)"
    prepared = Prepared(config, parameter=MagicInterpreter().preprocess(cell))
    for attempt in (manager.dry_run, manager.submit):
        with pytest.raises(
            ConfigError, match="asks for 101 replicas; the local backend runs at most 64"
        ):
            attempt(prepared)
    assert not any(tmp_path.iterdir()), "nothing written"
    raised = parse_config(
        {"local": {"run_dir": str(tmp_path)}, "limits": {"max_replicas": 200}}, None
    )
    assert (
        Manager(lambda: raised, Registry())
        .dry_run(Prepared(raised, parameter=prepared.parameter))
        .name
    )
