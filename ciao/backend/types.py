"""Phase 3 of a cell: the Backend seam and the events every backend emits.

Events know nothing of Jupyter: the kernel renders them (log lines as streams, states as the
job view, the end as the execute_reply's status).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ciao.interpreter.types import Framework, Parameter

StreamName = Literal["stdout", "stderr"]


@dataclass
class Job:
    """A submitted job (the Go `types.Job`); `handle` is the backend's own state for it."""

    framework: Framework
    name: str
    replicas: dict[str, int]
    backend: str
    handle: object = field(default=None, repr=False, compare=False)
    #: Where it runs, for people: "local", "kubeflow (namespace team)".
    location: str = ""

    @property
    def ps(self) -> int:
        return self.replicas.get("ps", 0)

    @property
    def master(self) -> int:
        return self.replicas.get("master", 0)

    @property
    def worker(self) -> int:
        return self.replicas.get("worker", 0)


@dataclass(frozen=True)
class LogLine:
    """One line a replica wrote, without its line ending."""

    replica: str
    text: str
    stream: StreamName = "stdout"


@dataclass(frozen=True)
class ReplicaState:
    """A replica changed phase (Pending, Running, Succeeded, Failed, Stopped)."""

    replica: str
    phase: str
    reason: str = ""
    message: str = ""
    restarts: int = 0
    exit_code: int | None = None
    where: str = ""  # node name or pid


@dataclass(frozen=True)
class Diagnosis:
    """Why a replica is stuck or died, with a one-line hint for the user."""

    replica: str
    reason: str
    hint: str


@dataclass(frozen=True)
class JobDone:
    """The job finished; always the last event of `get_logs`."""

    succeeded: bool
    reason: str = ""
    message: str = ""
    failed_replica: str = ""
    exit_code: int | None = None


Event = LogLine | ReplicaState | Diagnosis | JobDone


class Backend(Protocol):
    """Runs a Parameter somewhere (the Go `backend.Backend`, plus cancel)."""

    name: str

    def exec_code(self, parameter: Parameter) -> Job:
        """Submit the job; returns once it is accepted (not finished)."""
        ...

    def get_logs(self, job: Job) -> Iterator[Event]:
        """Follow the job to its end: every replica's lines and states, then one JobDone.

        Closing the iterator early stops following (the job itself keeps running).
        """
        ...

    def cancel(self, job: Job) -> None:
        """Stop the job and everything it runs; returns when it is gone."""
        ...
