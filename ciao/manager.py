"""The Manager: Interpreter -> S2IClient -> Backend, as the Go Manager wired them.

It knows nothing of Jupyter: the kernel asks it to prepare a cell and to run a job, and
reads the job's events with a timeout so that it can flush output and notice interrupts.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ciao.backend.types import Backend, Event, Job, JobDone, JobInfo
from ciao.config import Config
from ciao.errors import BackendError, CiaoError, ConfigError, JobCancelled
from ciao.interpreter.types import Command, Parameter
from ciao.s2i.types import Progress, S2IClient

log = logging.getLogger("ciao.manager")


def interpreter_for(config: Config):
    """The interpreter with the config's per-role defaults (import kept off start-up)."""
    from ciao.interpreter.magics import MagicInterpreter

    return MagicInterpreter(defaults=config.defaults, default_framework=config.framework)


def components_for(config: Config, backend: str = "") -> tuple[S2IClient, Backend]:
    """The S2IClient and Backend for a cell: its `%backend`, else the config's."""
    backend = backend or config.backend
    if backend == "local":
        from ciao.backend.local import LocalBackend
        from ciao.s2i.local import LocalCodeFile

        return LocalCodeFile(config.run_dir), LocalBackend(config.run_dir)
    from ciao.backend.kube_client import connect
    from ciao.backend.kubeflow import KubeflowBackend

    cluster = connect(config)
    if config.s2i.provider in ("s2i", "img"):  # build and push an image of the cell
        from ciao.s2i.s2i import DockerfileBuild, S2IBuild

        build = S2IBuild if config.s2i.provider == "s2i" else DockerfileBuild
        s2i: S2IClient = build(config.s2i, config.images, source=config.source)
        return s2i, KubeflowBackend(cluster, config.run_dir)
    if config.s2i.provider != "configmap":
        raise ConfigError(
            f"s2i.provider {config.s2i.provider!r} (from {config.source or 'config'}) is not "
            "one of configmap, s2i, img"
        )
    from ciao.s2i.configmap import ConfigMapCode

    return ConfigMapCode(cluster, config.images), KubeflowBackend(cluster, config.run_dir)


def backends_for(config: Config) -> list[Backend]:
    """The backends whose jobs the job commands (%jobs, %status...) look at: the local
    one always, the cluster's when the config names a cluster."""
    from ciao.backend.local import LocalBackend

    found: list[Backend] = [LocalBackend(config.run_dir)]
    if config.backend == "kubeflow" or config.kubeconfig:
        from ciao.backend.kube_client import connect
        from ciao.backend.kubeflow import KubeflowBackend

        found.append(KubeflowBackend(connect(config), config.run_dir))
    return found


def backend_of(config: Config, name: str) -> Backend:
    """The backend that ran job `name`: its run directory says; else the cluster's."""
    from ciao.backend.run_dir import RunDir

    try:
        recorded = RunDir(config.run_dir, name).spec().get("backend")
    except ValueError:
        raise BackendError(f"{name!r} is not a job name") from None
    for backend in backends_for(config) if recorded != "local" else []:
        if backend.name == "kubeflow":
            return backend
    from ciao.backend.local import LocalBackend

    return LocalBackend(config.run_dir)


@dataclass
class Prepared:
    """A cell read by the interpreter: a job to run, or a kernel command."""

    config: Config
    job: Parameter | None = None
    command: Command | None = None


_END = object()


class ActiveJob:
    """A submitted job whose events are read on the caller's thread with a timeout.

    A pump thread iterates the backend's `get_logs` into a small bounded queue, so the
    reader can wait with a timeout (to flush output, to notice an interrupt) and the
    back-pressure still reaches the replicas: nothing is dropped, nothing piles up.
    With `follow=False` (a `%detach` cell) the job is not followed at all: nothing reads
    events nobody will show, nor marks them shown.
    """

    def __init__(
        self,
        backend: Backend,
        job: Job,
        on_interrupt: str = "cancel",
        queue_size: int = 256,
        follow: bool = True,
    ) -> None:
        self.backend = backend
        self.job = job
        self.on_interrupt = on_interrupt
        self.cancel_requested = False
        self.stopped_after_failure = False
        self.detached = not follow
        self._queue: queue.Queue[object] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._cancel_thread: threading.Thread | None = None
        self._pump = threading.Thread(target=self._run_pump, name="ciao-events", daemon=True)
        if follow:
            self._pump.start()
        else:
            self._queue.put(_END)

    def _run_pump(self) -> None:
        try:
            for event in self.backend.get_logs(self.job):
                self._queue.put(event)
        except Exception as exc:  # the backend lost the job: stop it, then say so
            log.warning("following %s failed: %s", self.job.name, exc)
            if self.on_interrupt == "cancel":  # a job we only watch (attach) is left alone
                self.stopped_after_failure = True
                self._cancel()
            self._queue.put(exc)
        finally:
            self._queue.put(_END)

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, None if none came within `timeout`; raises StopIteration at the end
        and BackendError if following the job failed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            raise StopIteration
        if isinstance(item, BackendError):
            stopped = ", so it was stopped" if self.stopped_after_failure else ""
            raise BackendError(f"following job {self.job.name} failed{stopped}: {item}")
        if isinstance(item, Exception):
            raise BackendError(f"lost track of job {self.job.name}: {item}") from item
        return item  # type: ignore[return-value]

    def events(self) -> Iterator[Event]:
        """Every event to the end (for callers that need no timeout)."""
        while True:
            try:
                event = self.next_event(None)
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
        self.backend.detach(self.job)

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
            self.backend.cancel(self.job)
        except Exception:
            log.exception("cancelling %s failed", self.job.name)

    def wait_cancelled(self, timeout: float) -> None:
        thread = self._cancel_thread
        if thread is not None:
            thread.join(timeout)


class Manager:
    """Runs cells: prepare (phase 1), then submit (phases 2 and 3)."""

    def __init__(self, load_config=None) -> None:
        if load_config is None:
            from ciao.config import load_config
        self._load_config = load_config
        self._lock = threading.Lock()
        self.active: ActiveJob | None = None
        self._building: S2IClient | None = None
        self._cancel_pending = False

    def begin(self) -> None:
        """A new cell starts: an interrupt from now on cancels it, even before it submits."""
        with self._lock:
            self._cancel_pending = False

    def prepare(self, code: str) -> Prepared:
        """Phase 1: read the config and the cell's magics; raises ConfigError / MagicErrors."""
        config = self._load_config()
        cell = interpreter_for(config).parse(code)
        if isinstance(cell, Command):
            return Prepared(config, command=cell)
        return Prepared(config, job=cell)

    def submit(
        self,
        prepared: Prepared,
        owner: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ActiveJob:
        """Phases 2 and 3: build what runs, start the job, and follow it.

        `owner` (kernel id, session, cell) labels the job so it can be found again;
        `progress` receives phase 2's output lines (`[build] ...`).
        """
        assert prepared.job is not None
        parameter = prepared.job
        parameter.owner = dict(owner or {})
        s2i, backend = components_for(prepared.config, parameter.backend)
        with self._lock:
            if self._cancel_pending:
                raise JobCancelled("the cell was interrupted before its job was submitted")
            self._building = s2i
        try:
            parameter.image = s2i.source_to_image(parameter.code, parameter, progress)
        finally:
            with self._lock:
                self._building = None
        job = backend.exec_code(parameter)
        active = ActiveJob(backend, job, parameter.on_interrupt, follow=not parameter.detach)
        with self._lock:
            self.active = active
            cancel_now = self._cancel_pending
        if cancel_now:  # interrupted while submitting: the job goes at once, with all it made
            active.interrupt()
        return active

    def attach(self, config: Config, name: str) -> ActiveJob:
        """Follow a job submitted earlier (by any kernel); interrupt then detaches again."""
        backend = backend_of(config, name)
        active = ActiveJob(backend, backend.attach(name), on_interrupt="detach")
        with self._lock:
            self.active = active
        return active

    def dry_run(self, prepared: Prepared) -> dict[str, Any]:
        """What submitting the cell would send, built the same way; nothing is submitted."""
        assert prepared.job is not None
        parameter, config = prepared.job, prepared.config
        s2i, backend = components_for(config, parameter.backend)
        plan = getattr(s2i, "plan", None)
        if plan is not None:
            parameter.image, shipped = plan(parameter.code, parameter)
        else:
            parameter.image, shipped = "<the image s2i builds at submission>", []
        job = backend.dry_run(parameter)
        if isinstance(job, list):  # local: one launch (a dataclass) per replica, as plain data
            job = [{**dataclasses.asdict(launch), "argv": list(launch.argv)} for launch in job]
        return {"backend": backend.name, "objects": shipped, "job": job}

    def known_job_names(self) -> list[str]:
        """Names of the jobs this machine has a run directory for, newest first; for
        completing %attach and friends (no cluster call: completion must be quick)."""
        from ciao.backend.run_dir import list_run_dirs

        try:
            config = self._load_config()
        except CiaoError:
            return []
        return [run.name for run in list_run_dirs(config.run_dir)]

    def jobs(self, config: Config) -> tuple[list[JobInfo], list[str]]:
        """Every backend's jobs, newest first, and what could not be listed (and why)."""
        found: list[JobInfo] = []
        problems = []
        for backend in backends_for(config):
            try:
                found += backend.list()
            except CiaoError as exc:
                problems.append(f"{backend.name}: {exc}")
        return sorted(found, key=lambda j: j.created, reverse=True), problems

    def finished(self, active: ActiveJob) -> None:
        with self._lock:
            if self.active is active:
                self.active = None

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
