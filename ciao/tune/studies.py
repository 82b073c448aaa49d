"""Studies as the kernel uses them: plan one (`%dryrun`), start one, attach to one, read
one (`%study`, `%best`, `%jobs`), delete one.

A study is planned before anything is made: its engine, the sampler's packages, and the
plan of a trial (the cell's job, every check of a job's plan made), with the values the
study will pick shown as where they come from.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ciao.backend.types import JobInfo, LogLine
from ciao.config import Config
from ciao.errors import BackendError, CiaoError
from ciao.interpreter.types import Parameter
from ciao.manager import CellPlan, Manager, Prepared
from ciao.tune.driver import trial_owner
from ciao.tune.engines import EngineChoice, choose_engine
from ciao.tune.record import StudyRecord, studies
from ciao.tune.run import StudyRun, start_driver
from ciao.tune.samplers import missing_packages
from ciao.tune.state import StudyState, TrialRow
from ciao.tune.trial import placeholders, trial_name, trial_parameter


@dataclass(frozen=True)
class StudyPlan:
    """What running a `%tune` cell will do: the study, its engine, a trial's plan."""

    parameter: Parameter
    engine: EngineChoice
    trial: CellPlan

    @property
    def backend(self) -> str:
        return self.trial.job.plan.backend

    def study(self) -> dict[str, Any]:
        """The study as `%dryrun` shows it."""
        assert self.parameter.tune is not None
        return {
            "study": self.parameter.generate_name,
            "engine": self.engine.describe(),
            **self.parameter.tune.describe(),
            "trial": f"{trial_name(self.parameter.generate_name, 0)} ... (the cell's job, "
            "with CIAO_HP_<NAME> and KUBEFLOW_TRAINER_OPT_<NAME> of its values)",
        }


def plan_study(manager: Manager, prepared: Prepared, owner: dict[str, str]) -> StudyPlan:
    """The study's plan, every check made, nothing made."""
    assert prepared.parameter is not None and prepared.parameter.tune is not None
    parameter = dataclasses.replace(prepared.parameter, owner=dict(owner))
    assert parameter.tune is not None
    config = prepared.config
    engine = choose_engine(config, parameter.backend or config.backend)
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
    manager: Manager, prepared: Prepared, owner: dict[str, str]
) -> tuple[StudyRun, StudyPlan]:
    """Plan the study, record it, start its driver; the run to follow."""
    plan = plan_study(manager, prepared, owner)
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


def attach_study(manager: Manager, config: Config, name: str, viewer: str) -> StudyRun:
    """Follow a study again from where `viewer` left off; a study whose driver stopped
    without a verdict (a kernel killed with it, a reboot) gets a new driver, which goes on
    from Optuna's journal and the trials' own jobs."""
    record = StudyRecord.of(config.run_dir, name)
    process = None
    if record.state().done is None and not record.driver_running():
        process = start_driver(record, manager.registry.environ)
    offset = record.run.shown(viewer)
    return StudyRun(record, _trial_canceller(manager, config), process, offset, viewer)


def is_study(config: Config, name: str) -> bool:
    """Whether `name` is a study recorded on this machine."""
    try:
        StudyRecord.of(config.run_dir, name)
    except BackendError:
        return False
    return True


def study_state(config: Config, name: str) -> StudyState:
    return StudyRecord.of(config.run_dir, name).state()


def best_trial(config: Config, name: str) -> TrialRow:
    """The study's best trial; an error saying why when it has none (yet)."""
    state = study_state(config, name)
    best = state.best()
    if best is None:
        running = "" if state.done is not None else " yet (it is running: %attach " + name + ")"
        raise CiaoError(f"study {name} has no succeeded trial{running}: {state.summary()}")
    return best


def study_lines(config: Config, name: str, tail: int | None = None) -> list[LogLine]:
    return list(StudyRecord.of(config.run_dir, name).lines(tail))


def study_infos(config: Config) -> list[JobInfo]:
    """Every study of this machine, as `%jobs` lists jobs."""
    return [record.info() for record in studies(config.run_dir)]


def delete_study(manager: Manager, config: Config, name: str) -> list[str]:
    """Stop the study if it runs, delete its trials' jobs (with what they made) and its
    record; the trials deleted."""
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
