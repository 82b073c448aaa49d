"""The study's driver: Optuna's ask/tell over the cell's jobs, `parallel` of them at once.

One thread decides everything (asks, tells, reports, prunes, writes the study's record);
each running trial has a thread that follows its job (the backend's `get_logs`, through
ActiveJob) and hands its events over. A trial is launched, followed and cancelled by the
Manager exactly as a cell's job is (`Manager.launch`, `ActiveJob.cancel`); only its name
and environment are the study's (trial.py).

A trial ends as Succeeded (its job succeeded and its primary replica printed the
objective), Failed (its job failed, or the objective never appeared: Katib's
MetricsUnavailable), Pruned (`%earlyStopping` stopped it: its job was cancelled) or
Cancelled (the study was). The study succeeds when at least one trial did.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ciao.backend.record import encode, viewer_of
from ciao.backend.types import (
    Diagnosis,
    Event,
    JobDone,
    LogLine,
    LogLines,
    ReplicaState,
    TrialUpdate,
)
from ciao.config import Config
from ciao.errors import CiaoError
from ciao.interpreter.tune import TuneSpec
from ciao.interpreter.types import Parameter
from ciao.manager import ActiveJob, Manager, Prepared
from ciao.tune.objective import ObjectiveReader, primary_replica
from ciao.tune.record import StudyRecord, trial_label
from ciao.tune.samplers import distributions, pruner_for, sampler_for
from ciao.tune.state import StudyState
from ciao.tune.trial import trial_name, trial_parameter

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("ciao.tune")

#: A running trial's objective so far is written at most this often (and when it ends).
VALUE_EVERY = 0.2
#: Events of running trials waiting for the deciding thread, at most (then their followers
#: wait: back-pressure reaches the trials' records, never memory).
PENDING_EVENTS = 512


@dataclass(frozen=True)
class _Failed:
    """Following the trial's job failed (the backend lost it)."""

    message: str


@dataclass(frozen=True)
class _Ended:
    """The trial's follower is done: no more events of it."""


_ENDED = _Ended()
_WAKE = object()  # a cancel: look at the flag


@dataclass
class Timing:
    """Where one trial's time went, for bench/tune.py: the engine's own work (asking,
    telling, reading the objective, recording), the launch (plan, ship, submit: what a
    cell's job costs too) and the trial's own run (submitted to its verdict)."""

    engine: float = 0.0
    launch: float = 0.0
    launched: float = 0.0
    ended: float = 0.0

    @property
    def run(self) -> float:
        return self.ended - self.launched


@dataclass
class _Trial:
    """A running trial, as the deciding thread keeps it."""

    number: int
    trial: optuna.trial.Trial
    active: ActiveJob
    reader: ObjectiveReader
    params: dict[str, str | int | float]
    phases: dict[str, str] = field(default_factory=dict)
    state: str = "Pending"
    pruned: bool = False
    #: How many values of the objective it had reported when it was pruned.
    pruned_at: int = 0
    cancelled: bool = False
    failure: str = ""
    done: JobDone | None = None
    written: tuple[str, float | None, str] = ("", None, "")
    written_at: float = 0.0

    @property
    def job(self) -> str:
        return self.active.job.name

    def replicas(self) -> str:
        """`2 Running`, `1 Succeeded, 1 Running`: its replicas' phases in a few words."""
        counts: dict[str, int] = {}
        for phase in self.phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        return ", ".join(f"{n} {phase}" for phase, n in counts.items())


class StudyDriver:
    """Runs one study to its end (or until cancelled) and records it."""

    def __init__(
        self, record: StudyRecord, manager: Manager, parameter: Parameter, config: Config
    ) -> None:
        assert parameter.tune is not None
        self.record = record
        self.manager = manager
        self.parameter = parameter
        self.config = config
        self.spec: TuneSpec = parameter.tune
        self.state = StudyState.of(record.name, self.spec.describe())
        self._events: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(PENDING_EVENTS)
        self._running: dict[int, _Trial] = {}
        self._followers: dict[int, threading.Thread] = {}
        self._cancelled = threading.Event()
        self._out = -1
        #: Where each trial's time went (bench/tune.py).
        self.timings: dict[int, Timing] = {}

    # ---- the study ------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel every running trial and the study; safe in a signal handler."""
        self._cancelled.set()
        self._events.put((-1, _WAKE))  # SimpleQueue.put: reentrant, as a handler needs

    def run(self) -> JobDone:
        """Ask, run and tell trials until the budget is spent (or a cancel); the verdict,
        also written as the record's last event."""
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        # One driver at a time (run.start_driver's lock): a journal lock left now is a
        # killed driver's, which Optuna would wait 30 s for before breaking it.
        self.record.journal.with_name(self.record.journal.name + ".lock").unlink(missing_ok=True)
        storage = JournalStorage(JournalFileBackend(str(self.record.journal)))
        study = optuna.create_study(
            study_name=self.record.name,
            storage=storage,
            sampler=sampler_for(self.spec),
            pruner=pruner_for(self.spec),
            direction=self.spec.objective.direction,
            load_if_exists=True,
        )
        self._out = self.record.run.open_for_append()
        try:
            self._replay()
            self._resume(study)
            asked = len(study.get_trials(deepcopy=False))
            while True:
                while (
                    not self._cancelled.is_set()
                    and len(self._running) < self.spec.parallel
                    and asked < self.spec.trials
                ):
                    self._start(study, asked)
                    asked += 1
                if not self._running:
                    break
                self._next(study)
            verdict = self._verdict()
        except BaseException as exc:
            log.exception("the study's driver failed")
            self._stop_all(study)
            verdict = JobDone(False, "Failed", f"the study's driver failed: {exc}")
        self._write(verdict)
        os.close(self._out)
        return verdict

    def _replay(self) -> None:
        """The trials the record already has (a resumed study), so its verdict counts them."""
        for event in self.record.run.read_states(self.record.run.size()):
            if isinstance(event, TrialUpdate):
                self.state.apply(event)

    def _resume(self, study: optuna.Study) -> None:
        """A study whose driver stopped: follow its trials that still run again (their
        jobs went on), from the values the journal has; a trial asked but never
        submitted failed."""
        import optuna
        from optuna.trial import TrialState

        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            name = frozen.user_attrs.get("job")
            params = dict(frozen.params)
            trial = optuna.trial.Trial(study, frozen._trial_id)
            if not name:
                _tell(study, trial, state=TrialState.FAIL)
                self._update(
                    frozen.number, "Failed", params, message="never ran: the study's driver stopped"
                )
                continue
            try:
                backend = self.manager.registry.backend_of(self.config, name)
                viewer = viewer_of(trial_owner(self.parameter, self.record.name, frozen.number))
                active = ActiveJob(backend.attach(name, viewer), "cancel")
            except CiaoError as exc:
                _tell(study, trial, state=TrialState.FAIL)
                self._update(frozen.number, "Failed", params, name, message=f"lost: {exc}")
                continue
            running = self._track(frozen.number, trial, active, params)
            for step in sorted(frozen.intermediate_values):
                running.reader.series.add(frozen.intermediate_values[step])

    def _start(self, study: optuna.Study, number: int) -> None:
        """Ask for the next trial and launch its job."""
        from optuna.trial import TrialState

        began = time.perf_counter()
        trial = study.ask(distributions(self.spec))
        timing = self.timings.setdefault(trial.number, Timing())
        params = {name: trial.params[name] for name in self.spec.parameter_names()}
        name = trial_name(self.record.name, trial.number)
        trial.set_user_attr("job", name)
        self._update(trial.number, "Pending", params, name)
        owner = trial_owner(self.parameter, self.record.name, trial.number)
        job = trial_parameter(self.parameter, name, params, owner)
        asked = time.perf_counter()
        try:
            active = self.manager.launch(Prepared(self.config, parameter=job), owner)
        except CiaoError as exc:
            _tell(study, trial, state=TrialState.FAIL)
            self._update(trial.number, "Failed", params, name, message=f"not started: {exc}")
            return
        finally:
            timing.launched = time.perf_counter()
            timing.engine += asked - began
            timing.launch += timing.launched - asked
        if active.job.name != name:  # a backend renamed it (a name taken on the cluster)
            trial.set_user_attr("job", active.job.name)
        began = time.perf_counter()
        self._track(trial.number, trial, active, params)
        timing.engine += time.perf_counter() - began

    def _track(
        self,
        number: int,
        trial: optuna.trial.Trial,
        active: ActiveJob,
        params: dict[str, str | int | float],
    ) -> _Trial:
        """Follow a launched (or re-attached) trial's job on a thread of its own."""
        reader = ObjectiveReader(self.spec.objective, primary_replica(active.job.replicas))
        running = _Trial(number, trial, active, reader, params)
        self._running[number] = running
        follower = threading.Thread(
            target=self._follow, args=(number, active), name=f"ciao-trial-{number}", daemon=True
        )
        self._followers[number] = follower
        follower.start()
        self._write_update(running)
        return running

    def _follow(self, number: int, active: ActiveJob) -> None:
        try:
            for event in active.events():
                self._room.acquire()
                self._events.put((number, event))
        except CiaoError as exc:
            self._events.put((number, _Failed(str(exc))))
        except Exception as exc:  # a bug of ours: the trial fails, the study goes on
            log.exception("following trial %d failed", number)
            self._events.put((number, _Failed(f"following it failed: {exc}")))
        finally:
            self._events.put((number, _ENDED))

    # ---- one event ------------------------------------------------------------------

    def _next(self, study: optuna.Study) -> None:
        number, item = self._events.get()
        if not (item is _WAKE or isinstance(item, _Failed | _Ended)):
            self._room.release()  # an event of a follower's, which took room for it
        if self._cancelled.is_set():
            for other in self._running.values():
                if not other.cancelled:
                    other.cancelled = True
                    other.active.cancel()
        running = self._running.get(number)
        if running is None:
            return
        began = time.perf_counter()
        if isinstance(item, LogLines | LogLine):
            texts = item.lines if isinstance(item, LogLines) else (item.text,)
            label = trial_label(number, item.replica)
            self._write(LogLines(label, tuple(texts), item.stream))
            self._objective(running, item.replica, texts)
        elif isinstance(item, ReplicaState):
            running.phases[item.replica] = item.phase
            if item.phase == "Running" and running.state == "Pending":
                running.state = "Running"
            self._write_update(running)
        elif isinstance(item, Diagnosis):
            self._write(
                Diagnosis(trial_label(number, item.replica), item.reason, item.hint, item.resolved)
            )
        elif isinstance(item, JobDone):
            running.done = item
        elif isinstance(item, _Failed):
            running.failure = item.message
        elif isinstance(item, _Ended):
            self._finish(study, running)
        timing = self.timings.setdefault(number, Timing())
        timing.engine += time.perf_counter() - began

    def _objective(self, running: _Trial, replica: str, texts: tuple[str, ...]) -> None:
        """Report the objective's new values (their steps numbered from 0); prune the trial
        when `%earlyStopping` says so."""
        values = running.reader.lines(replica, texts)
        if not values:
            return
        first = running.reader.steps - len(values)
        for step, value in enumerate(values, first):
            running.trial.report(value, step)
        stoppable = self.spec.early_stopping and not (running.pruned or running.cancelled)
        if stoppable and running.trial.should_prune():
            running.pruned, running.pruned_at = True, running.reader.steps
            running.active.cancel()  # the normal cancel path: the job and what it made
        if time.monotonic() - running.written_at >= VALUE_EVERY:
            self._write_update(running)

    def _finish(self, study: optuna.Study, running: _Trial) -> None:
        """Tell Optuna how the trial ended, and record it."""
        from optuna.trial import TrialState

        self.timings.setdefault(running.number, Timing()).ended = time.perf_counter()
        self._running.pop(running.number, None)
        follower = self._followers.pop(running.number, None)
        if follower is not None:
            follower.join()
        done, value = running.done, running.reader.value()
        message = ""
        if running.pruned:
            state = "Pruned"
            metric = self.spec.objective.metric
            message = (
                f"stopped early, after {running.pruned_at} values of {metric}: worse than "
                "the finished trials' median"
            )
            _tell(study, running.trial, state=TrialState.PRUNED)
        elif running.cancelled:
            state, message = "Cancelled", "the study was cancelled"
            _tell(study, running.trial, state=TrialState.FAIL)
        elif running.failure or done is None or not done.succeeded:
            state = "Failed"
            message = running.failure or _failure(done)
            _tell(study, running.trial, state=TrialState.FAIL)
        elif value is None:
            state, message = "Failed", running.reader.missing()
            _tell(study, running.trial, state=TrialState.FAIL)
        else:
            state = "Succeeded"
            _tell(study, running.trial, value)
        running.state = state
        self._write_update(running, message, final=True)

    def _stop_all(self, study: optuna.Study) -> None:
        """After a failure of the driver itself: no trial is left running."""
        for running in list(self._running.values()):
            running.active.cancel()
        for running in list(self._running.values()):
            running.active.wait_cancelled(30.0)

    # ---- the record -----------------------------------------------------------------

    def _write(self, event: Event) -> None:
        data = encode(event)
        while data:
            data = data[os.write(self._out, data) :]
        self.state.apply(event)

    def _update(
        self,
        number: int,
        state: str,
        params: dict[str, str | int | float],
        job: str = "",
        value: float | None = None,
        message: str = "",
        replicas: str = "",
    ) -> None:
        self._write(TrialUpdate(number, state, dict(params), job, value, message, replicas))

    def _write_update(self, running: _Trial, message: str = "", final: bool = False) -> None:
        """The trial's row, when something it shows changed."""
        value = running.reader.value()
        shown = (running.state, value, running.replicas())
        if shown == running.written and not final:
            return
        running.written, running.written_at = shown, time.monotonic()
        self._update(
            running.number,
            running.state,
            running.params,
            running.job,
            value,
            message,
            running.replicas(),
        )

    def _verdict(self) -> JobDone:
        summary = self.state.summary()
        if self._cancelled.is_set():
            return JobDone(False, "Cancelled", f"cancelled: {summary}")
        if self.state.counts()["Succeeded"]:
            return JobDone(True, "Completed", summary)
        failed = [row for row in self.state.rows.values() if row.state == "Failed"]
        first = f"; #{failed[0].number}: {failed[0].message}" if failed else ""
        return JobDone(False, "Failed", f"no trial succeeded: {summary}{first}")


def _tell(
    study: optuna.Study,
    trial: optuna.trial.Trial,
    value: float | None = None,
    state: optuna.trial.TrialState | None = None,
) -> None:
    """`Study.tell`, where GridSampler, its grid visited, asks the study to stop: it may
    only inside `optimize`, and raises here. The trial is told even so (Optuna stores it
    in a `finally`), and the budget of a grid study is at most its points anyway."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def trial_owner(parameter: Parameter, study: str, number: int) -> dict[str, str]:
    """Who a trial's job belongs to: the cell's owner, its study and its number."""
    return {**parameter.owner, "study": study, "trial": str(number)}


def _failure(done: JobDone | None) -> str:
    if done is None:
        return "its job ended without a verdict"
    where = f" ({done.failed_replica})" if done.failed_replica else ""
    return f"{done.message or done.reason}{where}"
