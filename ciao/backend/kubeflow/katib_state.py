"""A Katib study as its objects say it: the Experiment is the record. Pure.

The study (space, objective, budget, algorithm) is read back from the Experiment's spec;
each Trial becomes a row of the study's view (a TrialUpdate: state, parameters, objective,
why it failed); the best is the Experiment's `status.currentOptimalTrial`; the verdict its
Succeeded or Failed condition. Trials are numbered in the order Katib made them
(creationTimestamp, then name: Katib stamps seconds), as the view numbers Ciao's own
trials; a live view numbers them as they appear, in the same order, except for trials Katib
made in two batches within one second, which a later read may number otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ciao.backend.kubeflow.katib import METRICS_FILE
from ciao.backend.kubeflow.manifests import KINDS, TRAINJOB, JobKind, replicas_of
from ciao.backend.types import JobDone, TrialUpdate
from ciao.constants import KATIB_FILTER

#: Katib's trial conditions, the terminal ones first, as the view's states.
TRIAL_STATES = (
    ("EarlyStopped", "Pruned"),
    ("MetricsUnavailable", "Failed"),
    ("Failed", "Failed"),
    ("Killed", "Cancelled"),
    ("Succeeded", "Succeeded"),
    ("Running", "Running"),
    ("Created", "Pending"),
)
FINISHED = frozenset({"Pruned", "Failed", "Cancelled", "Succeeded"})
#: Katib's value of a metric the collector never found.
UNAVAILABLE = "unavailable"


def name_of(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The object's True conditions by type."""
    found = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in found if c.get("status") == "True"}


def job_kind(experiment: dict[str, Any]) -> JobKind:
    """The kind of the trials' jobs (the trialSpec's)."""
    template = ((experiment.get("spec") or {}).get("trialTemplate") or {}).get("trialSpec") or {}
    kind = template.get("kind", "")
    if kind == TRAINJOB.kind:
        return TRAINJOB
    return next((k for k in KINDS.values() if k.kind == kind), KINDS["pytorch"])


def roles(experiment: dict[str, Any]) -> dict[str, int]:
    """A trial's replicas: `{"master": 1, "worker": 1}`, `{"node": 2}`."""
    template = ((experiment.get("spec") or {}).get("trialTemplate") or {}).get("trialSpec") or {}
    return replicas_of(job_kind(experiment), template)


def study(experiment: dict[str, Any]) -> dict[str, Any]:
    """The study as its magics said it (`TuneSpec.describe()`), from the Experiment."""
    spec = experiment.get("spec") or {}
    objective = spec.get("objective") or {}
    direction = objective.get("type", "minimize")
    metric = objective.get("objectiveMetricName", "")
    strategy = next(
        (
            s.get("value")
            for s in objective.get("metricStrategies") or []
            if s.get("name") == metric
        ),
        None,
    )
    default = "min" if direction == "minimize" else "max"
    suffix = f":{strategy}" if strategy and strategy != default else ""
    algorithm = spec.get("algorithm") or {}
    settings = {s.get("name"): s.get("value") for s in algorithm.get("algorithmSettings") or []}
    seed = settings.get("random_state")
    early = (spec.get("earlyStopping") or {}).get("algorithmName")
    return {
        "space": {p.get("name", ""): _describe(p) for p in spec.get("parameters") or []},
        "objective": f"{direction}:{metric}{suffix}",
        "trials": int(spec.get("maxTrialCount") or 0),
        "parallel": int(spec.get("parallelTrialCount") or 1),
        "algorithm": algorithm.get("algorithmName", ""),
        "earlyStopping": "median" if early == "medianstop" else early,
        "seed": int(seed) if seed is not None and str(seed).lstrip("-").isdigit() else None,
    }


def _describe(parameter: dict[str, Any]) -> str:
    space = parameter.get("feasibleSpace") or {}
    kind = parameter.get("parameterType")
    if kind in ("discrete", "categorical"):
        return f"choice({','.join(space.get('list') or [])})"
    log = space.get("distribution") == "logUniform"
    name = ("logint" if log else "int") if kind == "int" else ("loguniform" if log else "uniform")
    return f"{name}({space.get('min')},{space.get('max')})"


def numbered(trials: Iterable[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The trials with their numbers: in the order Katib made them."""
    ordered = sorted(trials, key=lambda t: (_created(t), name_of(t)))
    return list(enumerate(ordered))


def _created(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def trial_state(trial: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The view's state of a Trial, and the condition that says it."""
    true = conditions(trial)
    for katib, state in TRIAL_STATES:
        if katib in true:
            return state, true[katib]
    return "Pending", {}


def params(trial: dict[str, Any], experiment: dict[str, Any]) -> dict[str, str | int | float]:
    """The trial's values, typed as its parameters are (int, double, a choice's number)."""
    kinds = {
        p.get("name"): p.get("parameterType")
        for p in (experiment.get("spec") or {}).get("parameters") or []
    }
    assigned = (trial.get("spec") or {}).get("parameterAssignments") or []
    return {
        a.get("name", ""): _typed(str(a.get("value", "")), kinds.get(a.get("name")))
        for a in assigned
    }


def _typed(text: str, kind: str | None) -> str | int | float:
    if kind == "categorical":
        return text
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def objective_value(obj: dict[str, Any], experiment: dict[str, Any]) -> float | None:
    """The objective of a Trial (its `status.observation`) or of the Experiment's
    currentOptimalTrial (its `observation`), by the objective's strategy."""
    objective = (experiment.get("spec") or {}).get("objective") or {}
    metric = objective.get("objectiveMetricName", "")
    strategy = next(
        (
            s.get("value")
            for s in objective.get("metricStrategies") or []
            if s.get("name") == metric
        ),
        "min" if objective.get("type") == "minimize" else "max",
    )
    observation = (obj.get("status") or {}).get("observation") or obj.get("observation") or {}
    for found in observation.get("metrics") or []:
        if found.get("name") != metric:
            continue
        text = str(found.get(strategy) or "")
        if text == UNAVAILABLE:  # as Katib reads it (getObjectiveMetricValue)
            text = str(found.get("latest") or "")
        try:
            value = float(text)
        except ValueError:
            return None  # "unavailable", or none yet
        return value if math.isfinite(value) else None
    return None


def metrics_unavailable(experiment: dict[str, Any], primary: str) -> str:
    """Why Katib found no objective in a trial, and what makes it find one."""
    template = (experiment.get("spec") or {}).get("trialTemplate") or {}
    objective = (experiment.get("spec") or {}).get("objective") or {}
    metric = objective.get("objectiveMetricName", "")
    container = template.get("primaryContainerName", "")
    return (
        f"MetricsUnavailable: Katib's File collector found no {metric} in {METRICS_FILE} "
        f"of the primary replica ({primary}, container {container}): it must print a line "
        f"like `{metric}=0.42` (Katib's filter {KATIB_FILTER}), which Ciao's main.py also "
        "appends to that file"
    )


def trial_update(
    number: int,
    trial: dict[str, Any],
    experiment: dict[str, Any],
    replicas: str = "",
    job_failure: str = "",
) -> TrialUpdate:
    """A Trial as a row of the study's view; `job_failure` is what its job's verdict said
    (the replica and exit code) when it failed, `replicas` its pods' phases."""
    state, condition = trial_state(trial)
    message = ""
    if condition.get("type") == "MetricsUnavailable":
        message = metrics_unavailable(experiment, primary_replica(experiment))
    elif state == "Failed":
        message = job_failure or condition.get("message", "") or condition.get("reason", "")
    elif state in ("Pruned", "Cancelled"):
        message = condition.get("message", "") or condition.get("reason", "")
    return TrialUpdate(
        number,
        state,
        params(trial, experiment),
        name_of(trial),
        objective_value(trial, experiment),
        message,
        replicas,
        best=name_of(trial) == optimal_trial(experiment),
    )


def primary_replica(experiment: dict[str, Any]) -> str:
    """The replica Katib's collector watches: the master's (the chief's; else worker-0), a
    TrainJob's node-0."""
    found = roles(experiment)
    for role in ("chief", "master", "node", "worker"):
        if found.get(role):
            return f"{role}-0"
    return next((f"{r}-0" for r, n in found.items() if n), "worker-0")


def optimal_trial(experiment: dict[str, Any]) -> str:
    return str(
        ((experiment.get("status") or {}).get("currentOptimalTrial") or {}).get("bestTrialName")
        or ""
    )


def finished(experiment: dict[str, Any]) -> dict[str, Any] | None:
    """The Experiment's Succeeded or Failed condition, once it has one."""
    true = conditions(experiment)
    return true.get("Succeeded") or true.get("Failed")


def verdict(experiment: dict[str, Any]) -> JobDone | None:
    """The study's verdict once the Experiment ended, in Katib's words: ok when it
    succeeded with a best trial (Katib names one only from trials that reported the
    objective), as with Ciao's engine."""
    condition = finished(experiment)
    if condition is None:
        return None
    said = condition.get("message") or condition.get("reason") or ""
    if condition.get("type") == "Succeeded" and optimal_trial(experiment):
        return JobDone(True, "Succeeded", f"Katib: {said}")
    if condition.get("type") == "Succeeded":
        return JobDone(False, "Failed", f"no trial reported the objective (Katib: {said})")
    return JobDone(False, "Failed", f"Katib: {said}")


def state_of(experiment: dict[str, Any]) -> str:
    """The study's state as %jobs says it."""
    condition = finished(experiment)
    if condition is not None:
        return "Succeeded" if condition.get("type") == "Succeeded" else "Failed"
    if (experiment.get("metadata") or {}).get("deletionTimestamp"):
        return "Deleting"
    return "Running" if "Running" in conditions(experiment) else "Pending"
