"""Studies as the kernel uses them: plan one (`%dryrun`), start one, attach to one, read
one (`%study`, `%best`, `%jobs`), delete one, whichever engine runs it.

A study is planned before anything is made: its engine, and the plan of a trial (the
cell's job, every check of a job's plan made), with the values the study will pick shown
as where they come from; with Ciao's engine the sampler's packages, with Katib's the
Experiment, checked against Katib's webhook rules (katib_engine.py).

Which engine a named study is: a study recorded on this machine is Ciao's engine's; a name
with no record here is asked of the cluster (an Experiment of Ciao's is a Katib study).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ciao.backend.record import RunDir
from ciao.backend.types import Job, JobInfo, LogLine
from ciao.config import Config
from ciao.errors import BackendError, CiaoError
from ciao.interpreter.types import Parameter
from ciao.manager import CellPlan, Manager, Prepared
from ciao.s2i.types import LineCallback
from ciao.tune.driver import trial_owner
from ciao.tune.engines import EngineChoice, engine_for
from ciao.tune.record import StudyRecord, studies
from ciao.tune.run import RunningStudy, StudyRun, start_driver, study_job
from ciao.tune.samplers import missing_packages
from ciao.tune.state import StudyState, TrialRow
from ciao.tune.trial import placeholders, trial_name, trial_parameter

if TYPE_CHECKING:
    from ciao.backend.kubeflow.katib import KatibPlan


@dataclass(frozen=True)
class StudyPlan:
    """What running a `%tune` cell will do: the study, its engine, a trial's plan."""

    parameter: Parameter
    engine: EngineChoice
    trial: CellPlan
    #: Katib's engine: the Experiment (and the code's ConfigMap) it makes.
    katib: KatibPlan | None = None

    @property
    def backend(self) -> str:
        return self.trial.job.plan.backend

    def study(self) -> dict[str, Any]:
        """The study as `%dryrun` shows it."""
        assert self.parameter.tune is not None
        name = self.parameter.generate_name
        trial = (
            f"{trial_name(name, 0)} ... (the cell's job, with CIAO_HP_<NAME> and "
            "KUBEFLOW_TRAINER_OPT_<NAME> of its values)"
        )
        if self.katib is not None:
            trial = (
                f"{name}-<Katib's suffix> ... (the trialSpec: the cell's job, with "
                "${trialParameters.<name>} in CIAO_HP_<NAME> and KUBEFLOW_TRAINER_OPT_<NAME>)"
            )
        return {
            "study": name,
            "engine": self.engine.describe(),
            **self.parameter.tune.describe(),
            "trial": trial,
        }


def plan_study(manager: Manager, prepared: Prepared, owner: dict[str, str]) -> StudyPlan:
    """The study's plan, every check made, nothing made."""
    assert prepared.parameter is not None and prepared.parameter.tune is not None
    parameter = dataclasses.replace(prepared.parameter, owner=dict(owner))
    assert parameter.tune is not None
    config = prepared.config
    engine = engine_for(manager.registry, config, parameter.backend or config.backend)
    if engine.name == "katib":
        from ciao.tune import katib_engine

        cell, made = katib_engine.plan(manager, prepared, parameter)
        return StudyPlan(parameter, engine, cell, made)
    _check_packages(parameter.tune.algorithm)
    study = parameter.generate_name
    first = trial_owner(parameter, study, 0)
    trial = trial_parameter(parameter, trial_name(study, 0), placeholders(parameter.tune), first)
    cell = manager.plan(dataclasses.replace(prepared, parameter=trial), first)
    return StudyPlan(parameter, engine, cell)


def _check_packages(algorithm: str) -> None:
    """Optuna, and what the algorithm's sampler imports, in the kernel's Python."""
    if importlib.util.find_spec("optuna") is None:
        raise CiaoError(
            "tuning needs Optuna in the kernel's Python: %pip install optuna (Ciao's "
            "dependencies have it: reinstall Ciao)"
        )
    missing = missing_packages(algorithm)
    if missing:
        raise CiaoError(
            f"%algorithm={algorithm} needs {' and '.join(missing)} in the kernel's Python "
            f"(Optuna's sampler imports it): %pip install {' '.join(missing)}, or choose "
            "another algorithm"
        )


def start_study(
    manager: Manager,
    prepared: Prepared,
    owner: dict[str, str],
    progress: LineCallback | None = None,
) -> tuple[RunningStudy, StudyPlan]:
    """Plan the study, then make it: Ciao's engine records it and starts its driver,
    Katib's makes its Experiment; the run to follow."""
    plan = plan_study(manager, prepared, owner)
    if plan.katib is not None:
        from ciao.tune import katib_engine

        return katib_engine.start(manager, prepared, plan.trial, plan.katib, progress), plan
    config = prepared.config
    record = StudyRecord.create(
        config,
        plan.parameter,
        plan.engine.name,
        plan.backend,
        plan.trial.shipment.travels_line,
    )
    process = start_driver(record, manager.registry.environ)
    viewer = _viewer(owner)
    run = StudyRun(record, _trial_canceller(manager, config), process, viewer=viewer)
    return run, plan


def attach_study(manager: Manager, config: Config, name: str, viewer: str) -> RunningStudy:
    """Follow a study again from where `viewer` left off; a study whose driver stopped
    without a verdict (a kernel killed with it, a reboot) gets a new driver, which goes on
    from Optuna's journal and the trials' own jobs. A Katib study is followed from the
    cluster (its trials that have not ended)."""
    if not _recorded(config, name):
        from ciao.tune import katib_engine

        return katib_engine.attach(manager, config, name)
    record = StudyRecord.of(config.run_dir, name)
    process = None
    if record.state().done is None and not record.driver_running():
        process = start_driver(record, manager.registry.environ)
    offset = record.run.shown(viewer)
    return StudyRun(record, _trial_canceller(manager, config), process, offset, viewer)


def _recorded(config: Config, name: str) -> bool:
    """Whether `name` is a study recorded on this machine (Ciao's engine's)."""
    try:
        StudyRecord.of(config.run_dir, name)
    except BackendError:
        return False
    return True


def is_study(manager: Manager, config: Config, name: str) -> bool:
    """Whether `name` is a study: one recorded on this machine, or (a name with no
    record here at all) an Experiment of Ciao's on the config's cluster."""
    if _recorded(config, name):
        return True
    try:
        if RunDir(config.run_dir, name).exists():
            return False  # a job's record
    except ValueError:
        return False
    from ciao.tune import katib_engine

    return katib_engine.is_study(manager, config, name)


def study_view(
    manager: Manager, config: Config, name: str
) -> tuple[Job[object], StudyState, dict[str, Any]]:
    """The study as a Job, its state, and the study as its magics said it: from its
    record (Ciao's engine) or its Experiment (Katib's)."""
    if _recorded(config, name):
        record = StudyRecord.of(config.run_dir, name)
        return study_job(record), record.state(), dict(record.spec().get("study") or {})
    from ciao.tune import katib_engine

    return katib_engine.view(manager, config, name)


def study_state(manager: Manager, config: Config, name: str) -> StudyState:
    return study_view(manager, config, name)[1]


def best_trial(manager: Manager, config: Config, name: str) -> TrialRow:
    """The study's best trial; an error saying why when it has none (yet)."""
    state = study_state(manager, config, name)
    best = state.best()
    if best is None:
        running = "" if state.done is not None else " yet (it is running: %attach " + name + ")"
        raise CiaoError(f"study {name} has no succeeded trial{running}: {state.summary()}")
    return best


def study_lines(
    manager: Manager,
    config: Config,
    name: str,
    replica: str | None = None,
    tail: int | None = None,
) -> Iterator[LogLine]:
    """Every trial's lines (`#3 master-0`), one replica's of each, the last `tail`."""
    if not _recorded(config, name):
        from ciao.tune import katib_engine

        return katib_engine.lines(manager, config, name, replica, tail)
    lines: Iterable[LogLine] = StudyRecord.of(config.run_dir, name).lines()
    if replica is not None:
        lines = (line for line in lines if line.replica.endswith(f" {replica}"))
    return iter(deque(lines, maxlen=tail)) if tail else iter(lines)


def study_infos(manager: Manager, config: Config) -> list[JobInfo]:
    """Every study of this machine, and Ciao's Katib studies on the config's cluster, as
    `%jobs` lists jobs."""
    from ciao.tune import katib_engine

    found = [record.info() for record in studies(config.run_dir)]
    known = {info.name for info in found}
    return found + [i for i in katib_engine.infos(manager, config) if i.name not in known]


def delete_study(manager: Manager, config: Config, name: str) -> list[str]:
    """Stop the study if it runs, delete its trials' jobs (with what they made) and its
    record; the trials deleted. A Katib study: its Experiment, and with it everything."""
    if not _recorded(config, name):
        from ciao.tune import katib_engine

        return katib_engine.delete(manager, config, name)
    record = StudyRecord.of(config.run_dir, name)
    state = record.state()
    if state.done is None and record.driver_running():
        StudyRun(record, _trial_canceller(manager, config)).cancel()
    deleted = []
    for row in record.state().rows.values():
        if row.job:
            try:
                manager.delete(config, row.job)
                deleted.append(row.job)
            except CiaoError:
                continue  # never started, or deleted already
    shutil.rmtree(record.path, ignore_errors=True)
    return deleted


def _trial_canceller(manager: Manager, config: Config) -> Callable[[list[str]], None]:
    """Cancel trial jobs by name through their backends (for a driver that would not)."""

    def cancel(names: list[str]) -> None:
        for name in names:
            try:
                manager.registry.backend_of(config, name).attach(name).cancel()
            except CiaoError:
                continue

    return cancel


def _viewer(owner: dict[str, str]) -> str:
    from ciao.backend.record import viewer_of

    return viewer_of(owner)
