"""Phase 3 of a cell: the Backend seam and the events every backend emits.

Events know nothing of Jupyter: the kernel renders them (log lines as streams, states as the
job view, the end as the execute_reply's status).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, cast

from ciao.backend.metrics import Metrics
from ciao.interpreter.types import Framework, Parameter
from ciao.s2i.types import Shipment

StreamName = Literal["stdout", "stderr"]
#: A job's state in every view. Lost: its record has no verdict and nothing runs it any
#: more (a local job's supervisor was killed); said, never written into the record.
JobState = Literal[
    "Pending", "Suspended", "Running", "Deleting", "Succeeded", "Failed", "Cancelled", "Lost"
]


HandleT = TypeVar("HandleT")
PlanT = TypeVar("PlanT", bound="Plan")
#: A Job[LocalHandle] is a Job[object]: what holds any backend's jobs reads only their facts.
_HandleT_co = TypeVar("_HandleT_co", covariant=True)


@dataclass(frozen=True)
class Job(Generic[_HandleT_co]):
    """A submitted job (the Go `types.Job`); `handle` is the backend's own state for it."""

    framework: Framework
    name: str
    replicas: dict[str, int]
    backend: str
    handle: _HandleT_co = field(repr=False, compare=False)
    #: Where it runs, for people: "local", "kubeflow (TrainJob, namespace team)".
    location: str = ""
    #: Followed from where this notebook left off (an %attach after lines were shown).
    resumed: bool = False
    #: What travelled with its code from the notebook, as its record says (one line).
    travels: str = ""


@dataclass(frozen=True)
class LogLine:
    """One line a replica wrote, without its line ending."""

    replica: str
    text: str
    stream: StreamName = "stdout"


@dataclass(frozen=True)
class LogLines:
    """Consecutive lines of one replica's stream, read together: the local backend's unit
    of fan-in (an event per chunk read, not per line). Each is a LogLine's text."""

    replica: str
    lines: tuple[str, ...]
    stream: StreamName = "stdout"


@dataclass(frozen=True)
class Progress:
    """The latest state of a line a replica rewrites in place with `\\r` (a progress bar);
    when the line ends, its final text comes as a LogLine."""

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
    #: The condition is over (a suspended job was resumed): the view drops it.
    resolved: bool = False


@dataclass(frozen=True)
class JobDone:
    """The job finished; always the last event of `get_logs`."""

    succeeded: bool
    reason: str = ""
    message: str = ""
    failed_replica: str = ""
    exit_code: int | None = None
    #: The failed replica's last lines, as the backend saw them while it lived.
    tail: tuple[str, ...] = ()

    @property
    def state(self) -> JobState:
        """The job's final state, the one word every view of a job (the live view, %jobs,
        %status, %attach) shows for it."""
        if self.succeeded:
            return "Succeeded"
        if self.reason in ("Cancelled", "Lost"):
            return cast(JobState, self.reason)
        return "Failed"


@dataclass(frozen=True)
class TrialUpdate:
    """A study's trial as it is now (a `%tune` cell's record and view): one per change.

    `state`: Pending, Running, Succeeded, Failed, Pruned or Cancelled; `value`: the
    objective so far (its strategy over the values seen), final once the trial ended;
    `replicas`: its replicas' phases in a few words; `message`: why it failed or stopped;
    `best`: the engine names it the study's best (Katib's currentOptimalTrial), which
    every view then marks, whatever the values say.
    """

    number: int
    state: str
    params: dict[str, str | int | float] = field(default_factory=dict)
    job: str = ""
    value: float | None = None
    message: str = ""
    replicas: str = ""
    best: bool = False


@dataclass(frozen=True)
class Idle:
    """Nothing new yet: `get_logs` yields this instead of blocking, so the reader can flush
    output and notice interrupts on its own thread without a second queue."""


IDLE = Idle()

Event = LogLine | LogLines | Progress | ReplicaState | Diagnosis | JobDone | TrialUpdate


def one_per_line(events: Iterable[Event | Idle]) -> Iterator[Event | Idle]:
    """The events with each LogLines split into LogLine events, for readers that go line
    by line (verdict tails, tests); the kernel takes LogLines whole."""
    for event in events:
        if isinstance(event, LogLines):
            for text in event.lines:
                yield LogLine(event.replica, text, event.stream)
        else:
            yield event


class Plan(Protocol):
    """What a backend will submit for a cell, built once: `%dryrun` shows it, `exec_code`
    submits exactly it (torchx's AppDryRunInfo)."""

    @property
    def backend(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str:
        """What runs where (and why there), in one line for people."""
        ...

    def documents(self) -> list[Any]:
        """The plan as plain data, one document per object to create (for `%dryrun`)."""
        ...


@dataclass(frozen=True)
class JobInfo:
    """A job as `%jobs` lists it: found again after the kernel that ran it is gone."""

    name: str
    framework: str
    backend: str
    state: JobState
    created: float  # seconds since the epoch
    replicas: dict[str, int]
    owner: dict[str, str]
    location: str = ""
    message: str = ""
    #: When its replicas started, and when it ended (seconds since the epoch), where the
    #: backend knows (for %status's ages); None where it does not.
    started: float | None = None
    ended: float | None = None
    #: What travelled with its code from the notebook (one line; "" when nothing did).
    travels: str = ""


class Backend(Protocol[PlanT, HandleT]):
    """Runs a cell somewhere (the Go `backend.Backend`, plus what job management needs)."""

    name: str

    def dry_run(self, parameter: Parameter, shipment: Shipment) -> PlanT:
        """The plan `exec_code` would submit; nothing is created."""
        ...

    def exec_code(self, plan: PlanT) -> Job[HandleT]:
        """Submit exactly `plan`; returns once it is accepted (not finished)."""
        ...

    def get_logs(self, job: Job[HandleT]) -> Iterator[Event | Idle]:
        """Follow the job to its end: every replica's lines (LogLine, or LogLines for a
        run of them) and states, then one JobDone;
        IDLE whenever nothing happened for a moment (about 50 ms), never a long block.

        Closing the iterator early stops following (the job itself keeps running).
        """
        ...

    def cancel(self, job: Job[HandleT]) -> None:
        """Stop the job and everything it runs; returns when it is gone."""
        ...

    def detach(self, job: Job[HandleT]) -> None:
        """Stop following the job (it goes on); get_logs ends after what it yielded."""
        ...

    def attach(self, name: str, viewer: str = "") -> Job[HandleT]:
        """A job submitted earlier (by this or another kernel), to follow again from where
        `viewer` (a notebook: record.viewer_of) left off; never changes its record."""
        ...

    def jobs(self) -> list[JobInfo]:
        """This user's Ciao jobs, newest first."""
        ...

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        """A job and its replicas' latest states."""
        ...

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterable[LogLine]:
        """A job's log lines (all replicas, or one), the last `tail` of them."""
        ...

    def metrics(self, name: str) -> Metrics:
        """The metrics of a job's log lines (Katib's `name=value`), per replica, as far as
        it has run; from its record once its processes or pods are gone."""
        ...

    def delete(self, name: str) -> None:
        """Delete a job, running or not, and what it created."""
        ...
