"""A backend's plans and jobs held together with the backend that made them.

The Manager holds whichever backend the registry chose, so it cannot name the backend's
plan and handle types; here they are kept inside (`BoundBackend[PlanT, HandleT]`), and the
Manager sees only `ManagedBackend`, `PlannedJob` and `RunningJob`. mypy checks that a plan
goes back to the backend whose `dry_run` made it, and a job to the one that runs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol

from ciao.backend.metrics import Metrics
from ciao.backend.types import (
    Backend,
    Event,
    HandleT,
    Idle,
    Job,
    JobInfo,
    LogLine,
    Plan,
    PlanT,
)
from ciao.interpreter.types import Parameter
from ciao.s2i.types import Shipment


class RunningJob(Protocol):
    """A submitted (or attached) job, with the backend that follows and stops it."""

    @property
    def job(self) -> Job[object]: ...

    def events(self) -> Iterator[Event | Idle]:
        """The backend's `get_logs`: the job's events to its end."""
        ...

    def cancel(self) -> None: ...

    def detach(self) -> None: ...


class PlannedJob(Protocol):
    """A backend's plan that only that backend submits."""

    @property
    def plan(self) -> Plan: ...

    def submit(self) -> RunningJob:
        """Submit exactly the plan (the backend's `exec_code`)."""
        ...


class ManagedBackend(Protocol):
    """A backend as the Manager uses it, whatever its plan and handle types."""

    @property
    def name(self) -> str: ...

    def plan(self, parameter: Parameter, shipment: Shipment) -> PlannedJob:
        """The backend's `dry_run`, bound to it."""
        ...

    def attach(self, name: str, viewer: str = "") -> RunningJob: ...

    def jobs(self) -> list[JobInfo]: ...

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]: ...

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterable[LogLine]: ...

    def metrics(self, name: str) -> Metrics: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class BoundJob(Generic[PlanT, HandleT]):
    backend: Backend[PlanT, HandleT]
    job: Job[HandleT]

    def events(self) -> Iterator[Event | Idle]:
        return self.backend.get_logs(self.job)

    def cancel(self) -> None:
        self.backend.cancel(self.job)

    def detach(self) -> None:
        self.backend.detach(self.job)


@dataclass(frozen=True)
class BoundPlan(Generic[PlanT, HandleT]):
    backend: Backend[PlanT, HandleT]
    plan: PlanT

    def submit(self) -> BoundJob[PlanT, HandleT]:
        return BoundJob(self.backend, self.backend.exec_code(self.plan))


@dataclass(frozen=True)
class BoundBackend(Generic[PlanT, HandleT]):
    """`backend` as a ManagedBackend: what it plans and runs comes bound to it."""

    backend: Backend[PlanT, HandleT]

    @property
    def name(self) -> str:
        return self.backend.name

    def plan(self, parameter: Parameter, shipment: Shipment) -> BoundPlan[PlanT, HandleT]:
        return BoundPlan(self.backend, self.backend.dry_run(parameter, shipment))

    def attach(self, name: str, viewer: str = "") -> BoundJob[PlanT, HandleT]:
        return BoundJob(self.backend, self.backend.attach(name, viewer))

    def jobs(self) -> list[JobInfo]:
        return self.backend.jobs()

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        return self.backend.describe(name)

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterable[LogLine]:
        return self.backend.logs(name, replica, tail)

    def metrics(self, name: str) -> Metrics:
        return self.backend.metrics(name)

    def delete(self, name: str) -> None:
        self.backend.delete(name)
