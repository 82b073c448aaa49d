"""The Manager: Interpreter -> S2IClient -> Backend, as the Go Manager wired them.

It knows nothing of Jupyter: the kernel asks it to prepare a cell and to run a job, and
reads the job's events between pauses (IDLE), to flush output and notice interrupts.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ciao.backend.bound import PlannedJob, RunningJob
from ciao.backend.metrics import Metrics
from ciao.backend.types import Event, Idle, Job, JobDone, JobInfo, LogLine, Plan
from ciao.config import Config
from ciao.errors import BackendError, CiaoError, JobCancelled
from ciao.interpreter.types import Command, Interpreter, Parameter
from ciao.registry import Registry, allowed, check_replicas
from ciao.s2i.types import LineCallback, S2IClient, Shipment

log = logging.getLogger("ciao.manager")


def interpreter_for(config: Config) -> Interpreter:
    """The interpreter with the config's per-role defaults, files, pod settings and
    profiles (import kept off start-up)."""
    from ciao.interpreter.magics import MagicInterpreter

    return MagicInterpreter(
        defaults=config.defaults,
        default_framework=config.framework,
        default_files=config.files,
        pod=config.pod,
        profiles=config.profiles,
    )


class Stoppable(Protocol):
    """A step before a job exists (a build, %pip) that an interrupt stops."""

    def cancel(self) -> None: ...


@dataclass(frozen=True)
class CellPlan:
    """A cell's run, decided and checked before anything is built or created: the
    shipment its S2I provider will make, and the backend's plan (`job.plan`), which only
    that backend submits (`job.submit()`)."""

    parameter: Parameter
    shipment: Shipment
    job: PlannedJob


@dataclass
class Prepared:
    """A cell read by the interpreter: the Parameter of a job to run, a kernel command, or
    (`session`) Python for the session, when the config turns it on and the cell names no
    Ciao magic."""

    config: Config
    parameter: Parameter | None = None
    command: Command | None = None
    session: bool = False


class ActiveJob:
    """A submitted job whose events are read on the caller's thread.

    The backend's `get_logs` yields IDLE when nothing happens for a moment, so the reader
    flushes output and notices interrupts between events without a thread or queue of its
    own; back-pressure reaches the replicas through the backend's bounded queue. With
    `follow=False` (a `%detach` cell) the job is not followed at all: nothing reads events
    nobody will show, nor marks them shown.
    """

    def __init__(
        self, running: RunningJob, on_interrupt: str = "cancel", follow: bool = True
    ) -> None:
        self.running = running
        self.job: Job[object] = running.job
        self.on_interrupt = on_interrupt
        self.cancel_requested = False
        self.stopped_after_failure = False
        self.detached = not follow
        self._events: Iterator[Event | Idle] = iter(running.events() if follow else ())
        self._lock = threading.Lock()
        self._cancel_thread: threading.Thread | None = None

    def next_event(self) -> Event | None:
        """The next event, None when there is none yet; raises StopIteration at the end
        and BackendError if following the job failed (the job is then stopped, unless it
        is only watched, as after %attach)."""
        try:
            item = next(self._events)
        except StopIteration:
            raise
        except Exception as exc:  # the backend lost the job: stop it, then say so
            log.warning("following %s failed: %s", self.job.name, exc)
            if self.on_interrupt == "cancel":
                self.stopped_after_failure = True
                self._cancel()
            if isinstance(exc, BackendError):
                stopped = ", so it was stopped" if self.stopped_after_failure else ""
                raise BackendError(f"following job {self.job.name} failed{stopped}: {exc}") from exc
            raise BackendError(f"lost track of job {self.job.name}: {exc}") from exc
        return None if isinstance(item, Idle) else item

    def events(self) -> Iterator[Event]:
        """Every event to the end (for callers that need no pauses)."""
        while True:
            try:
                event = self.next_event()
            except StopIteration:
                return
            if event is not None:
                yield event
            if isinstance(event, JobDone):
                return

    def interrupt(self) -> None:
        """What an interrupt does: cancel the job, or (with %onInterrupt=detach) detach."""
        if self.on_interrupt == "detach":
            self.detach()
        else:
            self.cancel()

    def detach(self) -> None:
        """Stop following; the job runs on. The events already read still come out."""
        self.detached = True
        self.running.detach()

    def cancel(self) -> None:
        """Stop the job without blocking the caller (a signal handler, the control thread)."""
        with self._lock:
            if self._cancel_thread is not None:
                return
            self.cancel_requested = True
            self._cancel_thread = threading.Thread(
                target=self._cancel, name="ciao-cancel", daemon=True
            )
            self._cancel_thread.start()

    def _cancel(self) -> None:
        try:
            self.running.cancel()
        except Exception:
            log.exception("cancelling %s failed", self.job.name)

    def wait_cancelled(self, timeout: float) -> None:
        thread = self._cancel_thread
        if thread is not None:
            thread.join(timeout)


def _ship_and_submit(cell: CellPlan, s2i: S2IClient, progress: LineCallback | None) -> RunningJob:
    """Phases 2 and 3 of a planned cell: ship exactly the planned shipment, submit exactly
    the planned job."""
    shipped = s2i.source_to_image(cell.shipment, cell.parameter, progress)
    if shipped != cell.shipment:  # a provider that made other than it planned: a bug
        raise BackendError(f"shipped {shipped.image}, planned {cell.shipment.image}")
    return cell.job.submit()


class Manager:
    """Runs cells: prepare (phase 1), then submit (phases 2 and 3)."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        registry: Registry,
        interpreter: Callable[[Config], Interpreter] = interpreter_for,
    ) -> None:
        """`load_config` is called for every cell (edits apply at once), and `interpreter`
        with what it read; `registry` hands out the S2I providers and backends. They come
        from the composition root, ciao.app."""
        self._load_config = load_config
        self._interpreter = interpreter
        self.registry = registry
        self._lock = threading.Lock()
        self.active: ActiveJob | None = None
        #: What phase 2 (or %pip) is running, to stop on an interrupt.
        self._building: Stoppable | None = None
        self._cancel_pending = False

    def begin(self) -> None:
        """A new cell starts: an interrupt from now on cancels it, even before it submits."""
        with self._lock:
            self._cancel_pending = False

    def prepare(self, code: str) -> Prepared:
        """Phase 1: read the config and the cell's magics; raises ConfigError / MagicErrors.
        A cell for the session is only recognised here: the kernel runs it."""
        config = self._load_config()
        interpreter = self._interpreter(config)
        if config.session.enabled and interpreter.runs_in_session(code):
            return Prepared(config, session=True)
        cell = interpreter.parse(code)
        if isinstance(cell, Command):
            return Prepared(config, command=cell)
        return Prepared(config, parameter=cell)

    def cell_interpreter(self) -> Interpreter | None:
        """The interpreter a cell would be read with now (the config's framework, pod
        settings and profiles), for the editor's help; None when the config cannot be
        read (running the cell says why)."""
        try:
            return self._interpreter(self._load_config())
        except CiaoError:
            return None

    def plan(self, prepared: Prepared, owner: dict[str, str] | None = None) -> CellPlan:
        """What running the cell will do, every check made (limits, the allowlist, the
        shipment's size, the backend's: API, runtime, node resources), with nothing built,
        written or submitted: `%dryrun` shows it, a run carries out exactly it."""
        return self._plan(prepared, owner)[0]

    def _plan(self, prepared: Prepared, owner: dict[str, str] | None) -> tuple[CellPlan, S2IClient]:
        assert prepared.parameter is not None
        parameter = dataclasses.replace(prepared.parameter, owner=dict(owner or {}))
        s2i, backend = self.registry.components(prepared.config, parameter.backend)
        check_replicas(prepared.config, backend.name, parameter.total_replicas)
        shipment = s2i.plan(parameter)
        return CellPlan(parameter, shipment, backend.plan(parameter, shipment)), s2i

    def submit(
        self,
        prepared: Prepared,
        owner: dict[str, str] | None = None,
        progress: LineCallback | None = None,
    ) -> ActiveJob:
        """Plan the cell (phases 1-3 checked), ship exactly the planned shipment (phase 2),
        submit exactly the planned job (phase 3), follow it. A check that fails costs no
        build.

        `owner` (kernel id, session, cell, notebook) labels the job so it can be found
        again; `progress` receives phase 2's output lines (`[build] ...`).
        """
        cell, s2i = self._plan(prepared, owner)
        with self._lock:
            if self._cancel_pending:
                raise JobCancelled("the cell was interrupted before its job was submitted")
            self._building = s2i
        try:
            running = _ship_and_submit(cell, s2i, progress)
        finally:
            with self._lock:
                self._building = None
        parameter = cell.parameter
        return self.adopt(running, parameter.on_interrupt, follow=not parameter.detach)

    def launch(
        self,
        prepared: Prepared,
        owner: dict[str, str] | None = None,
        progress: LineCallback | None = None,
    ) -> ActiveJob:
        """As `submit`, for a job the cell does not follow itself: a study's trial, which
        the study's driver plans, ships, submits, follows and cancels (ActiveJob.cancel)
        through exactly the path of a cell's job, several at once."""
        cell, s2i = self._plan(prepared, owner)
        return ActiveJob(_ship_and_submit(cell, s2i, progress), "cancel")

    def ship(self, prepared: Prepared, cell: CellPlan, progress: LineCallback | None) -> None:
        """Phase 2 alone, for a planned cell whose job another submits (a Katib study's
        trials: Katib makes them from the Experiment): ship exactly the planned shipment
        (an image built and pushed, or nothing to do for the configmap provider)."""
        s2i, _ = self.registry.components(prepared.config, cell.parameter.backend)
        with self._lock:
            if self._cancel_pending:
                raise JobCancelled("the cell was interrupted before its study was made")
            self._building = s2i
        try:
            shipped = s2i.source_to_image(cell.shipment, cell.parameter, progress)
        finally:
            with self._lock:
                self._building = None
        if shipped != cell.shipment:  # a provider that made other than it planned: a bug
            raise BackendError(f"shipped {shipped.image}, planned {cell.shipment.image}")

    def adopt(self, running: RunningJob, on_interrupt: str, follow: bool = True) -> ActiveJob:
        """The cell's job from now on (an interrupt cancels or detaches it): a job just
        submitted, or what a cell runs that is not one job (a study's driver)."""
        active = ActiveJob(running, on_interrupt, follow=follow)
        with self._lock:
            self.active = active
            cancel_now = self._cancel_pending
        if cancel_now:  # interrupted while submitting: the job goes at once, with all it made
            active.interrupt()
        return active

    def attach(self, config: Config, name: str, viewer: str = "") -> ActiveJob:
        """Follow a job submitted earlier (by any kernel) from where `viewer` left off;
        interrupt then detaches again."""
        backend = self.registry.backend_of(config, name)
        active = ActiveJob(backend.attach(name, viewer), on_interrupt="detach")
        with self._lock:
            self.active = active
        return active

    def dry_run(self, prepared: Prepared, owner: dict[str, str] | None = None) -> Plan:
        """The job plan submitting the cell would submit (%dryrun); see `plan`."""
        return self.plan(prepared, owner).job.plan

    def pip(self, config: Config, args: tuple[str, ...], progress: LineCallback | None) -> str:
        """`%pip`: pip in the local replicas' Python, which the session runs too; returns
        which Python that was. On a cluster, packages go with the job (%requirements) or
        in its image instead: without a session, %pip has nothing to install for there."""
        if not config.session.enabled:
            if config.backend != "local":
                raise CiaoError(
                    f"cells run on {config.backend} here, in their image, not in this "
                    "kernel's Python: list the packages in %requirements=... (installed in "
                    "every replica), or use an image that has them (images: in the config)"
                )
            allowed(config, "local")
        from ciao.backend.local.packages import Pip

        pip = Pip(args)
        with self._lock:
            if self._cancel_pending:
                raise JobCancelled("the cell was interrupted before pip started")
            self._building = pip
        try:
            pip.run(progress)
        finally:
            with self._lock:
                self._building = None
        return pip.argv[0]

    def status(self, config: Config, name: str) -> tuple[JobInfo, list[Event]]:
        """%status: the job and its replicas' latest states, from whichever backend ran it."""
        return self.registry.backend_of(config, name).describe(name)

    def logs(
        self, config: Config, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterable[LogLine]:
        """%logs: the job's lines (one replica's, the last `tail`), streamed."""
        return self.registry.backend_of(config, name).logs(name, replica, tail)

    def metrics(self, config: Config, name: str) -> Metrics:
        """%metrics: the metrics of the job's lines, from whichever backend ran it."""
        return self.registry.backend_of(config, name).metrics(name)

    def delete(self, config: Config, name: str) -> None:
        """%delete: stop the job if it runs, and delete what it created and its record."""
        self.registry.backend_of(config, name).delete(name)

    def session_enabled(self) -> bool:
        """Whether the config turns the session on (False when it cannot be read: a cell
        would say why)."""
        try:
            return self._load_config().session.enabled
        except CiaoError:
            return False

    def known_job_names(self, studies_only: bool = False) -> list[str]:
        """Names of the jobs (and studies) this machine has a run directory for, newest
        first; for completing %attach and friends (no cluster call: completion must be
        quick); with `studies_only`, the studies' (%study, %best)."""
        from ciao.backend.record import list_run_dirs

        try:
            config = self._load_config()
        except CiaoError:
            return []
        runs = list_run_dirs(config.run_dir)
        return [run.name for run in runs if not studies_only or run.is_study()]

    def jobs(self, config: Config) -> tuple[list[JobInfo], list[str]]:
        """Every backend's jobs, newest first, and what could not be listed (and why)."""
        found: list[JobInfo] = []
        problems = []
        for backend in self.registry.backends(config):
            try:
                found += backend.jobs()
            except CiaoError as exc:
                problems.append(f"{backend.name}: {exc}")
        return sorted(found, key=lambda j: j.created, reverse=True), problems

    def prune_records(self) -> list[str]:
        """Apply `local.keep` to the run records (at kernel start, off the main thread)."""
        from ciao.backend.retention import prune

        try:
            config = self._load_config()
        except CiaoError as exc:
            log.info("no retention: %s", exc)
            return []
        return prune(config.run_dir, config.keep)

    def api_summary(self, config: Config) -> dict[str, str]:
        """For %config: which Kubeflow API cells would run on, and why (when the config
        names a cluster); asks the cluster, so errors are part of the answer."""
        return self.registry.kubeflow_apis(config)

    def finished(self, active: ActiveJob) -> None:
        with self._lock:
            if self.active is active:
                self.active = None

    def interrupted(self) -> bool:
        """Whether the running cell was interrupted (for cells without a job, like %logs)."""
        with self._lock:
            return self._cancel_pending

    def cancel(self) -> bool:
        """Interrupt the cell's job (cancel or detach, as the cell says) or its build; any
        thread, never blocks. False if nothing was running."""
        with self._lock:
            self._cancel_pending = True
            active, building = self.active, self._building
        if building is not None:
            building.cancel()
        if active is not None:
            active.interrupt()
        return active is not None or building is not None
