"""The local backend, as the kernel sees it: jobs run by a supervisor process each.

`dry_run` plans every replica's process (plan.py); `exec_code` writes that plan into the
job's run record and starts the supervisor (supervisor.py), which runs exactly it and
records the replicas' events. This side tails the record, signals the supervisor to cancel,
and reads run records to list, describe, re-attach to and delete jobs, including those of
kernels that are gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ciao.backend.identity import ProcessIdentity
from ciao.backend.local.engine import ReplicaEngine
from ciao.backend.local.plan import LocalPlan
from ciao.backend.local.pod_settings import check_folders
from ciao.backend.local.watch import RecordWatch
from ciao.backend.metrics import Metrics
from ciao.backend.record import LOST, RunDir, list_run_dirs, modified, viewer_of
from ciao.backend.types import (
    IDLE,
    Event,
    Idle,
    Job,
    JobDone,
    JobInfo,
    LogLine,
    LogLines,
    Progress,
)
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.launch import module_argv, start_detached
from ciao.s2i.types import Shipment

#: With nothing new in the record for this long, the reader gets IDLE (to flush, to notice).
IDLE_AFTER = 0.05
#: How often the "shown" mark is saved while following.
SAVE_SHOWN_EVERY = 0.5


@dataclass
class _Handle:
    run: RunDir
    process: subprocess.Popen | None = None
    offset: int = 0
    #: Whose "shown" mark this follow advances (see record.viewer_of).
    viewer: str = ""
    detached: bool = False
    cancelling: bool = False
    supervisor: ProcessIdentity | None = field(default=None)


class LocalBackend:
    """Local jobs: each a supervisor process; their record is the run directory."""

    name = "local"

    def __init__(
        self,
        run_root: Path,
        python: str = sys.executable,
        stop_grace: float = 3.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`environ`: what a job's supervisor and replicas inherit; None: this process's
        environment as it is when the job starts."""
        self.run_root = Path(run_root)
        self.python = python
        self.stop_grace = stop_grace
        self.environ = environ

    # ---- submit --------------------------------------------------------------------

    def dry_run(self, parameter: Parameter, shipment: Shipment) -> LocalPlan:
        """Every replica's command line, directory and environment; `shipment.image` is
        the code file (see ciao.backend.local.code_file)."""
        check_folders(parameter)
        engine = ReplicaEngine(python=self.python, stop_grace=self.stop_grace)
        return replace(engine.plan(parameter, shipment.image), travels=shipment.travels_line)

    def exec_code(self, plan: LocalPlan) -> Job[_Handle]:
        """Record the plan, and start the supervisor that runs it."""
        if not Path(plan.code_file).is_file():
            raise BackendError(f"the job's code file {plan.code_file!r} does not exist")
        run = RunDir(self.run_root, plan.name)
        run.start(self.name, python=self.python, plan=plan.as_dict(), travels=plan.travels)
        env = dict(os.environ if self.environ is None else self.environ)
        process = start_detached(
            module_argv(self.python, "ciao.backend.local.supervisor", str(run.path)),
            run.path / "supervisor.log",
            env,
            "the job's supervisor",
        )
        identity = ProcessIdentity.of(process.pid) or ProcessIdentity(process.pid, 0)
        run.set_supervisor(identity)
        threading.Thread(target=_reap, args=(process,), name="ciao-reap", daemon=True).start()
        viewer = viewer_of(plan.parameter.owner)
        return self._job(run, _Handle(run, process, supervisor=identity, viewer=viewer))

    def _job(self, run: RunDir, handle: _Handle, resumed: bool = False) -> Job[_Handle]:
        parameter = _recorded_parameter(run)
        replicas = {role: r["count"] for role, r in parameter["roles"].items() if r["count"]}
        return Job(
            parameter["framework"],
            run.name,
            replicas,
            self.name,
            handle,
            "local",
            resumed,
            run.travels(),
        )

    # ---- follow --------------------------------------------------------------------

    def get_logs(self, job: Job[_Handle]) -> Iterator[Event | Idle]:
        """The job's recorded events from where this notebook left off, to its verdict;
        the states before that first, so the view starts as the job is. Only the
        notebook's "shown" mark is written."""
        with RecordWatch(job.handle.run.path) as watch:
            yield from self._follow(job.handle, watch)

    def _follow(self, handle: _Handle, watch: RecordWatch) -> Iterator[Event | Idle]:
        run = handle.run
        verdict = None
        if handle.offset:
            states, verdict = _states_before(run, handle.offset)
            yield from states
        saved = time.monotonic()
        gone_since: float | None = None
        while verdict is None:
            progressed = False
            for event, offset in run.read_batches(handle.offset):
                handle.offset = offset
                progressed = True
                if isinstance(event, JobDone):
                    verdict = event
                    break
                yield event
                if time.monotonic() - saved > SAVE_SHOWN_EVERY:
                    run.set_shown(handle.viewer, offset)
                    saved = time.monotonic()
                if handle.detached:  # a chatty job must not hold a detach up
                    break
            if verdict is not None:
                break
            if handle.detached:
                run.set_shown(handle.viewer, handle.offset)
                return
            if not progressed and not self._alive(handle):
                if any(True for _ in run.read_events(handle.offset)):
                    continue  # written just before it exited
                gone_since = gone_since or time.monotonic()
                waited = time.monotonic() - gone_since
                if handle.cancelling and waited < self.stop_grace + 15:
                    yield IDLE
                    watch.wait(IDLE_AFTER)  # cancel() writes the verdict
                    continue
                verdict = LOST
                break
            if not progressed:
                yield IDLE
                watch.wait(IDLE_AFTER)
        run.set_shown(handle.viewer, handle.offset)
        yield verdict

    def detach(self, job: Job[_Handle]) -> None:
        """Stop following (the job goes on); get_logs returns after what it has yielded."""
        job.handle.detached = True

    def cancel(self, job: Job[_Handle]) -> None:
        """SIGTERM the supervisor, which stops every replica; return when it is over."""
        handle = job.handle
        handle.cancelling = True
        self._stop(handle.run, handle)

    def _stop(self, run: RunDir, handle: _Handle | None = None) -> None:
        """SIGTERM the supervisor (SIGKILL after the grace), then its replicas' groups if it
        left any; only processes that are still the very ones recorded are signalled."""
        supervisor = handle.supervisor if handle else run.supervisor()
        if supervisor is not None and self._alive(handle, supervisor):
            supervisor.send(signal.SIGTERM)
            deadline = time.monotonic() + self.stop_grace + 10
            while self._alive(handle, supervisor) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive(handle, supervisor):
                supervisor.send(signal.SIGKILL)
        for replica in run.replicas().values():  # a supervisor that was killed left them
            replica.send_to_group(signal.SIGKILL)
        if run.final() is None:
            _append(run, JobDone(False, "Cancelled", f"{run.name}: cancelled by the user"))

    def _alive(self, handle: _Handle | None, supervisor: ProcessIdentity | None = None) -> bool:
        if handle is not None and handle.process is not None:
            return handle.process.poll() is None
        identity = supervisor or (handle.supervisor if handle else None)
        return identity is not None and identity.is_running()

    # ---- jobs of any kernel ------------------------------------------------------------

    def attach(self, name: str, viewer: str = "") -> Job[_Handle]:
        """The job, to follow from where `viewer` left off (from its start for a notebook
        that never showed it)."""
        run = self._existing(name)
        offset = run.shown(viewer)
        handle = _Handle(run, None, offset, viewer, supervisor=run.supervisor())
        return self._job(run, handle, resumed=offset > 0)

    def jobs(self) -> list[JobInfo]:
        """Local jobs only: run directories of Kubeflow jobs are listed by their backend."""
        runs = list_run_dirs(self.run_root)
        mine = [run for run in runs if run.spec().get("backend", self.name) == self.name]
        return [self._info(run) for run in mine]

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        """The job, its replicas' states and each one's last line, for %status; and when
        its replicas started and it ended: the record's events carry no times, but the
        supervisor wrote replicas.json as it started them and the verdict last."""
        run = self._existing(name)
        states: list[Event] = []
        last_lines: dict[str, Event] = {}
        for event, _ in run.read_events():
            if isinstance(event, LogLine | LogLines | Progress):
                last_lines[event.replica] = event
            else:
                states.append(event)
        info = self._info(run)
        if info.state == "Lost":
            states.append(LOST)
        ended = modified(run.events_path) if run.final() is not None else None
        info = replace(info, started=modified(run.path / "replicas.json"), ended=ended)
        return info, [*last_lines.values(), *states]

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterator[LogLine]:
        """Streamed from the record; with `tail`, only the last N lines are held."""
        run = self._existing(name)
        lines = (
            event
            for event, _ in run.read_events()
            if isinstance(event, LogLine) and replica in (None, event.replica)
        )
        if tail is None:
            yield from lines
        else:
            yield from deque(lines, maxlen=tail)

    def metrics(self, name: str) -> Metrics:
        """From the record: what its supervisor saved and the lines after that."""
        return self._existing(name).metrics()

    def delete(self, name: str) -> None:
        """Stop the job if it runs, then remove its run directory."""
        run = self._existing(name)
        if run.final() is None:
            self._stop(run)
        shutil.rmtree(run.path, ignore_errors=True)

    def _existing(self, name: str) -> RunDir:
        try:
            run = RunDir(self.run_root, name)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        if not run.exists():
            raise BackendError(f"no local job {name!r} (looked in {self.run_root})")
        return run

    def _info(self, run: RunDir) -> JobInfo:
        parameter = _recorded_parameter(run)
        verdict = run.verdict()
        state, message = (verdict.state, verdict.message) if verdict else ("Running", "")
        return JobInfo(
            name=run.name,
            framework=parameter.get("framework", ""),
            backend=self.name,
            state=state,
            created=run.created(),
            replicas={r: v["count"] for r, v in (parameter.get("roles") or {}).items()},
            owner=dict(parameter.get("owner") or {}),
            location="local",
            message=message,
            travels=run.travels(),
        )


def _states_before(run: RunDir, offset: int) -> tuple[list[Event], JobDone | None]:
    """The replicas' states and diagnoses recorded before `offset` (what the view needs
    to start as the job is), and the verdict if it is among them."""
    states: list[Event] = []
    verdict = None
    for event in run.read_states(offset):
        if isinstance(event, JobDone):
            verdict = event
        elif not isinstance(event, LogLine | Progress):  # a line kept as JSON (it held \n)
            states.append(event)
    return states, verdict


def _recorded_parameter(run: RunDir) -> dict:
    """The job's parameter as its record keeps it, in its plan."""
    parameter = (run.spec().get("plan") or {}).get("parameter")
    return parameter if isinstance(parameter, dict) else {}


def _append(run: RunDir, event: Event) -> None:
    """Write `event` into the job's record, if the record is still there (a %delete may
    have taken it): never a record made anew for it."""
    from ciao.backend.record import encode

    if not run.events_path.parent.is_dir():
        return
    fd = run.open_for_append()
    try:
        os.write(fd, encode(event))
    finally:
        os.close(fd)


def _reap(process: subprocess.Popen) -> None:
    """Collect the supervisor's exit status once it ends, whether or not the job is still
    followed (detached, or its JobDone already read), so no zombie is left in the kernel.
    Polls rather than waits: `poll()` elsewhere must still see it alive while it runs."""
    while process.poll() is None:
        time.sleep(0.2)
