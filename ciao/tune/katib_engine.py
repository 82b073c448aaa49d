"""Katib's engine: a `%tune` cell's study as a Katib Experiment on the cluster.

The trials' job is planned as the cell's job is (`Manager.plan`: the same roles,
resources, pod settings, carried definitions and checks), named like the study, with
`${trialParameters.<name>}` for its parameters' values and main.py feeding Katib's File
collector (`Parameter.metrics_file`); ciao/backend/kubeflow/katib.py makes it the
Experiment's trialSpec, and Katib's webhook rules and the namespace's label are checked
before anything is made. Katib then suggests, runs and scores the trials; the kernel
follows them (KatibStudyRun) and reads the study from the cluster for `%study`, `%best`,
`%jobs`, `%logs`, `%attach` and `%delete`: the Experiment is the study's record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ciao.backend.kubeflow import katib_commands, katib_submit
from ciao.backend.kubeflow import katib_state as S
from ciao.backend.kubeflow.katib import METRICS_FILE, KatibPlan, katib_plan, placeholders
from ciao.backend.kubeflow.katib_run import KatibStudyRun
from ciao.backend.kubeflow.manifests import framework_of
from ciao.backend.kubeflow.plan import KubeflowPlan
from ciao.backend.record import STUDY
from ciao.backend.types import Job, JobInfo, LogLine
from ciao.config import Config
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.manager import CellPlan, Manager, Prepared
from ciao.s2i.types import LineCallback
from ciao.tune.state import StudyState
from ciao.tune.trial import trial_parameter

if TYPE_CHECKING:
    from ciao.backend.kubeflow.client import Cluster


def cluster_of(manager: Manager, config: Config) -> Cluster:
    return manager.registry.kubeflow(config).cluster


def katib_trial(parameter: Parameter) -> Parameter:
    """The cell's Parameter as the trials' job: named like the study, owned by it, the
    values `${trialParameters.<name>}`, its metric lines fed to Katib's File collector."""
    assert parameter.tune is not None
    study = parameter.generate_name
    owner = {**parameter.owner, "study": study}
    trial = trial_parameter(parameter, study, placeholders(parameter.tune), owner)
    return dataclasses.replace(trial, metrics_file=METRICS_FILE)


def plan(manager: Manager, prepared: Prepared, parameter: Parameter) -> tuple[CellPlan, KatibPlan]:
    """The trials' job (the cell's, named like the study) and the Experiment, checked
    against Katib's webhook rules and the namespace's label; nothing made."""
    assert parameter.tune is not None
    trial = katib_trial(parameter)
    cell = manager.plan(dataclasses.replace(prepared, parameter=trial), dict(trial.owner))
    job = cell.job.plan
    if not isinstance(job, KubeflowPlan):  # choose_engine gives Katib only on a cluster
        raise BackendError(f"Katib runs studies on a cluster, not on {job.backend}")
    made = katib_plan(job, parameter.tune)
    cluster = cluster_of(manager, prepared.config)
    katib_submit.require_katib(cluster)
    katib_submit.check(cluster, made)
    return cell, made


def start(
    manager: Manager,
    prepared: Prepared,
    cell: CellPlan,
    made: KatibPlan,
    progress: LineCallback | None = None,
) -> KatibStudyRun:
    """Ship the trials' code (an image, where the provider builds one), make the
    ConfigMap and the Experiment; the study to follow."""
    manager.ship(prepared, cell, progress)
    config = prepared.config
    cluster = cluster_of(manager, config)
    _, experiment = katib_submit.create(cluster, made)
    travels = cell.shipment.travels_line
    return KatibStudyRun(cluster, experiment, config.run_dir, config.kubeflow, travels=travels)


def attach(manager: Manager, config: Config, name: str) -> KatibStudyRun:
    """Follow a Katib study again: its table, and the trials that have not ended."""
    cluster = cluster_of(manager, config)
    found = katib_commands.experiment(cluster, name)
    if found is None:
        raise BackendError(f"no Experiment {name!r} in namespace {cluster.namespace}")
    return KatibStudyRun(cluster, found, config.run_dir, config.kubeflow, resumed=True)


def is_study(manager: Manager, config: Config, name: str) -> bool:
    """Whether `name` is a Katib study of Ciao's on the config's cluster."""
    if not any(backend.name == "kubeflow" for backend in manager.registry.backends(config)):
        return False
    return katib_commands.is_study(cluster_of(manager, config), name)


def view(
    manager: Manager, config: Config, name: str
) -> tuple[Job[object], StudyState, dict[str, Any]]:
    """The study as the Experiment and its Trials say it now: as a Job, its rows folded,
    and the study as its magics said it."""
    cluster = cluster_of(manager, config)
    experiment, rows = katib_commands.read(cluster, name)
    study = S.study(experiment)
    folded = StudyState.of(name, study)
    for row in rows:
        folded.apply(row)
    done = S.verdict(experiment)
    if done is not None:
        folded.apply(done)
    kind = S.job_kind(experiment)
    where = f"katib engine, trials on kubeflow ({kind.kind}, namespace {cluster.namespace})"
    job: Job[object] = Job(framework_of(kind), name, {"trials": folded.trials}, STUDY, None, where)
    return job, folded, study


def infos(manager: Manager, config: Config) -> list[JobInfo]:
    """Ciao's Katib studies on the config's cluster, as `%jobs` lists them."""
    if not any(backend.name == "kubeflow" for backend in manager.registry.backends(config)):
        return []
    cluster = cluster_of(manager, config)
    found = []
    for experiment in katib_commands.listed(cluster):
        name = S.name_of(experiment)
        labels = (experiment.get("metadata") or {}).get("labels") or {}
        prefix = "ciao.kubeflow.org/"
        status = experiment.get("status") or {}
        trials = int(status.get("trials") or 0)
        wanted = int(((experiment.get("spec") or {}).get("maxTrialCount")) or 0)
        condition = S.finished(experiment) or {}
        found.append(
            JobInfo(
                name=name,
                framework="study",
                backend=STUDY,
                state=S.state_of(experiment),  # type: ignore[arg-type]
                created=katib_commands.created(experiment),
                replicas={"trials": wanted},
                owner={k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)},
                location=f"katib (Experiment, namespace {cluster.namespace})",
                message=condition.get("message")
                or f"{trials} of {wanted} trials, {int(status.get('trialsSucceeded') or 0)} "
                "succeeded",
            )
        )
    return found


def lines(
    manager: Manager, config: Config, name: str, replica: str | None, tail: int | None
) -> Iterator[LogLine]:
    """Every trial's lines (`#3 master-0`), from its record here or its pods."""
    return katib_commands.logs(cluster_of(manager, config), config.run_dir, name, replica, tail)


def delete(manager: Manager, config: Config, name: str) -> list[str]:
    return katib_commands.delete(cluster_of(manager, config), config.run_dir, name)
