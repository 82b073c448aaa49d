"""A study as a cell follows it: its driver started (or found), its record tailed.

`StudyRun` is a RunningJob, so the kernel holds a study as it holds a job (`Manager.adopt`):
an interrupt cancels it (or detaches, with `%onInterrupt=detach`), a kernel shutting down
cancels it, `%attach` follows it again. Cancelling signals the driver, which cancels every
running trial through the normal cancel path; should the driver not end, its trials are
cancelled from here, so no process is left behind.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from ciao.backend.bound import RunningJob
from ciao.backend.identity import ProcessIdentity
from ciao.backend.local.watch import RecordWatch
from ciao.backend.record import STUDY
from ciao.backend.types import IDLE, Event, Idle, Job, JobDone, TrialUpdate
from ciao.errors import BackendError
from ciao.launch import module_argv, start_detached
from ciao.tune.record import StudyRecord

#: With nothing new in the record for this long, the reader gets IDLE (to flush, to notice).
IDLE_AFTER = 0.05
#: How often the "shown" mark is saved while following.
SAVE_SHOWN_EVERY = 0.5
#: How long a cancelled driver may take to cancel its trials before it is killed (and its
#: trials cancelled from here).
CANCEL_WAIT = 30.0


class RunningStudy(RunningJob, Protocol):
    """A study as a cell follows it, whatever engine runs it: its events are TrialUpdate
    (a trial's row), the trials' lines as LogLines of `#<number> <replica>`, Diagnosis of
    those, and one JobDone; `study` is the study as its magics say it
    (`TuneSpec.describe()`), `roles` a trial's replicas."""

    @property
    def study(self) -> dict[str, Any]: ...

    @property
    def roles(self) -> dict[str, int]: ...


def study_job(record: StudyRecord, resumed: bool = False) -> Job[object]:
    """The study as a Job (its name, its trials as its replicas, where they run)."""
    spec = record.spec()
    trials = int((spec.get("study") or {}).get("trials") or 0)
    engine, where = spec.get("engine") or "ciao", spec.get("trials_backend") or "local"
    return Job(
        spec.get("framework") or "pytorch",
        record.name,
        {"trials": trials},
        STUDY,
        None,
        f"{engine} engine, trials on {where}",
        resumed,
        record.run.travels(),
    )


def start_driver(
    record: StudyRecord, environ: Mapping[str, str] | None = None, python: str = sys.executable
) -> subprocess.Popen[bytes]:
    """Start the study's driver (ciao.tune.supervisor) in a session of its own, and record
    it; one at a time (a lock): two kernels attaching to a stopped study start one."""
    lock = os.open(record.path / ".driver.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.driver_running():
            raise BackendError(f"study {record.name}'s driver is running already")
        env = dict(os.environ if environ is None else environ)
        process = start_detached(
            module_argv(python, "ciao.tune.supervisor", str(record.path)),
            record.path / "supervisor.log",
            env,
            "the study's driver",
        )
        identity = ProcessIdentity.of(process.pid) or ProcessIdentity(process.pid, 0)
        record.run.set_supervisor(identity)
    finally:
        os.close(lock)
    threading.Thread(target=_reap, args=(process,), name="ciao-reap", daemon=True).start()
    return process


class StudyRun:
    """A RunningJob over a study's record."""

    def __init__(
        self,
        record: StudyRecord,
        cancel_trials: Callable[[list[str]], None],
        process: subprocess.Popen[bytes] | None = None,
        offset: int = 0,
        viewer: str = "",
    ) -> None:
        """`cancel_trials` cancels trial jobs by name (through their backends), for a
        driver that does not end when told."""
        self.record = record
        self.process = process
        self.offset = offset
        self.viewer = viewer
        self.cancelling = False
        self.detached = False
        self._cancel_trials = cancel_trials
        spec = record.spec()
        self._study: dict[str, Any] = dict(spec.get("study") or {})
        self._roles: dict[str, int] = dict(spec.get("roles") or {})
        self._job = study_job(record, resumed=offset > 0)

    @property
    def job(self) -> Job[object]:
        return self._job

    @property
    def study(self) -> dict[str, Any]:
        return self._study

    @property
    def roles(self) -> dict[str, int]:
        return self._roles

    def _alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.record.driver_running()

    def events(self) -> Iterator[Event | Idle]:
        """The study's events from `offset` to its verdict; the trials' rows before that
        first, so the view starts as the study is."""
        run = self.record.run
        verdict: JobDone | None = None
        if self.offset:
            for event in run.read_states(self.offset):
                if isinstance(event, JobDone):
                    verdict = event
                elif isinstance(event, TrialUpdate):
                    yield event
        with RecordWatch(run.path) as watch:
            saved = time.monotonic()
            gone_since: float | None = None
            while verdict is None:
                progressed = False
                for event, offset in run.read_batches(self.offset):
                    self.offset, progressed = offset, True
                    if isinstance(event, JobDone):
                        verdict = event
                        break
                    yield event
                    if time.monotonic() - saved > SAVE_SHOWN_EVERY:
                        run.set_shown(self.viewer, offset)
                        saved = time.monotonic()
                    if self.detached:
                        break
                if verdict is not None:
                    break
                if self.detached:
                    run.set_shown(self.viewer, self.offset)
                    return
                if not progressed and not self._alive():
                    if any(True for _ in run.read_events(self.offset)):
                        continue  # written just before it exited
                    gone_since = gone_since or time.monotonic()
                    if self.cancelling and time.monotonic() - gone_since < CANCEL_WAIT:
                        yield IDLE  # cancel() writes the verdict
                        watch.wait(IDLE_AFTER)
                        continue
                    verdict = JobDone(
                        False,
                        "Lost",
                        f"the study's driver ended without a verdict; %attach {run.name} "
                        "goes on with it",
                    )
                    break
                if not progressed:
                    yield IDLE
                    watch.wait(IDLE_AFTER)
        run.set_shown(self.viewer, self.offset)
        yield verdict

    def detach(self) -> None:
        self.detached = True

    def cancel(self) -> None:
        """SIGTERM the driver (it cancels the running trials, then writes the verdict);
        if it does not end in time, kill it and cancel its trials from here."""
        self.cancelling = True
        supervisor = self.record.run.supervisor()
        if supervisor is not None and self._alive():
            supervisor.send(signal.SIGTERM)
            deadline = time.monotonic() + CANCEL_WAIT
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive():
                supervisor.send(signal.SIGKILL)
        state = self.record.state()
        if state.done is None:
            left = [row.job for row in state.rows.values() if row.job and not row.finished]
            self._cancel_trials(left)
            _append(self.record, JobDone(False, "Cancelled", f"cancelled: {state.summary()}"))


def _append(record: StudyRecord, event: Event) -> None:
    from ciao.backend.record import encode

    if not record.path.is_dir():
        return
    fd = record.run.open_for_append()
    try:
        os.write(fd, encode(event))
    finally:
        os.close(fd)


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Collect the driver's exit status once it ends, so no zombie is left in the kernel
    (polls: `poll()` elsewhere must still see it alive while it runs)."""
    while process.poll() is None:
        time.sleep(0.2)
