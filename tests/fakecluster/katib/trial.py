"""The Trial controller (pkg/controller.v1beta1/trial).

A Trial gets the finalizer `clean-metrics-in-db` (on deletion its observation logs are
deleted from katib-db-manager, then the finalizer goes), then Created (`Trial is created`,
startTime); then its run spec is created as the trial's job, named like the trial, with the
Trial as controller owner (event JobCreated `Job <name> has been created`; an API refusal is
a Warning ReconcileError `Failed to reconcile: <message>`, retried; a kind this cluster does
not serve: `no matches for kind "TrainJob" in version "trainer.kubeflow.org/v1alpha1"`).
The job's status is read with the trial's failure, then success condition (GJSON, gjson.py):
a match of the failure condition fails the trial (`Trial has failed. Job message: <job
condition's message>`, reason `TrialFailed. Job reason: <its reason>`); a match of the success
condition reads the observation from katib-db-manager (what the metrics collector reported),
and the trial waits (requeued) until there is one: with the objective available it is
Succeeded (`Trial has succeeded. Job message: ...`), else MetricsUnavailable (`Metrics are
not available. Job message: ...`, Warning event MetricsUnavailable); neither: Running (`Trial
is running`) as soon as its job exists. A finished trial's job is deleted (foreground, event
JobDeleted) unless `retainRun`. Killed and EarlyStopped are never set here (early stopping is
not simulated). Only the kinds of katib-config's trialResources are watched; others are
reconciled on the resync.
"""

from __future__ import annotations

from typing import Any

from .. import errors as E
from ..controller import Controller, owner_ref
from ..store import Obj, WatchEvent
from ..timeutil import rfc3339
from . import conditions as cond
from . import config as C
from . import gjson
from .metrics import ObservationDB, observation, observation_available


def is_completed(status: Obj) -> bool:
    return any(
        cond.true(status, t)
        for t in ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")
    )


def job_status(trial: Obj, job: Obj) -> tuple[str, str, str] | None:
    """GetDeployedJobStatus: (Failed|Succeeded|Running, reason, message), or None."""
    spec = trial.get("spec") or {}
    for condition, path in (
        ("Failed", spec.get("failureCondition", "")),
        ("Succeeded", spec.get("successCondition", "")),
    ):
        found = gjson.matched(job, path) if path else None
        if found is not None:
            found = found if isinstance(found, dict) else {}
            return condition, str(found.get("reason", "")), str(found.get("message", ""))
    if not cond.true(trial.get("status"), "Running") and job["metadata"].get("name"):
        return "Running", "", ""
    return None


def _with_job(text: str, label: str, value: str) -> str:
    return f"{text}. Job {label}: {value}" if value else text


class TrialController(Controller):
    """Trial -> its job; status from the job's conditions and the collector's report."""

    kind_plural = "trials"
    kind = "Trial"
    component = "trial-controller"

    def __init__(self, registry: Any, db: ObservationDB, resync: float = 0.5) -> None:
        super().__init__(registry, resync)
        self.db = db

    def keys_for(self, ev: WatchEvent) -> list[tuple[str, str]]:
        """Events of the trial kinds katib-config lists (those installed) reach the owner."""
        try:
            info = self.registry.by_plural(ev.resource)
        except KeyError:
            return []
        if not C.trial_resource(info.api_version, info.kind):
            return []
        return self.owner_keys(ev, self.kind)

    def finalize(self, trial: Obj) -> None:
        if C.TRIAL_FINALIZER in (trial["metadata"].get("finalizers") or []):
            self.db.delete(trial["metadata"]["name"])
            self.drop_finalizer(trial, C.TRIAL_FINALIZER)

    def reconcile(self, trial: Obj) -> None:
        if C.TRIAL_FINALIZER not in (trial["metadata"].get("finalizers") or []):
            self.add_finalizer(trial, C.TRIAL_FINALIZER)
            return
        status = self.status_copy(trial)
        if not cond.true(status, "Created"):
            status.setdefault("startTime", rfc3339())
            status.setdefault("completionTime", None)
            cond.set_(status, "Created", "True", "TrialCreated", "Trial is created")
        else:
            try:
                self._reconcile(trial, status)
            except E.StatusError as exc:
                self.event(
                    trial, "Warning", "ReconcileError", f"Failed to reconcile: {exc.message}"
                )
        self.write_status(trial, status)

    def _reconcile(self, trial: Obj, status: Obj) -> None:
        job = self._job(trial, status)
        if job is None or (is_completed(status) and not cond.true(status, "EarlyStopped")):
            return
        state = job_status(trial, job)
        if state is None:
            return
        condition, reason, message = state
        name = trial["metadata"]["name"]
        if condition == "Succeeded":
            self._observe(trial, status)
            collector = (trial["spec"].get("metricsCollector") or {}).get("collector") or {}
            if status.get("observation") is None and collector.get("kind") != "Push":
                return  # errMetricsNotReported: requeued (the resync)
        with_status = {**trial, "status": status}
        if condition == "Succeeded":
            if observation_available(with_status):
                if not cond.true(status, "Succeeded"):
                    cond.finish(
                        status,
                        "Succeeded",
                        _with_job("TrialSucceeded", "reason", reason),
                        _with_job("Trial has succeeded", "message", message),
                    )
                    status["completionTime"] = rfc3339()
                    self.event(trial, "Normal", "JobSucceeded", f"Job {name} has succeeded")
            elif not cond.true(status, "MetricsUnavailable"):
                cond.finish(
                    status,
                    "MetricsUnavailable",
                    _with_job("MetricsUnavailable", "reason", reason),
                    _with_job("Metrics are not available", "message", message),
                )
                status["completionTime"] = rfc3339()
                self.event(
                    trial,
                    "Warning",
                    "MetricsUnavailable",
                    f"Metrics are not available for Job {name}",
                )
        elif condition == "Failed" and not cond.true(status, "Failed"):
            cond.finish(
                status,
                "Failed",
                _with_job("TrialFailed", "reason", reason),
                _with_job("Trial has failed", "message", message),
            )
            status["completionTime"] = rfc3339()
            said = f"Job {name} has failed"
            if message or reason:
                said = f"{said}. {message} {reason}"
            self.event(trial, "Normal", "JobFailed", said)
        elif condition == "Running" and not cond.true(status, "Running"):
            cond.set_(status, "Running", "True", "TrialRunning", "Trial is running")
            self.event(trial, "Normal", "JobRunning", f"Job {name} is running")

    def _job(self, trial: Obj, status: Obj) -> Obj | None:
        """reconcileJob: the deployed job (created if missing and the trial is not done);
        a finished trial's job is deleted unless retained."""
        desired = trial["spec"]["runSpec"]
        meta = trial["metadata"]
        api_version, kind = desired.get("apiVersion", ""), desired.get("kind", "")
        info = self.registry.by_kind(api_version, kind)
        if info is None:
            raise E.StatusError(
                404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"'
            )
        deployed = self.store.get(info.plural, meta["namespace"], meta["name"])
        if deployed is None:
            if is_completed(status):
                return None
            job = {**desired, "metadata": {**(desired.get("metadata") or {})}}
            job["metadata"]["ownerReferences"] = [owner_ref(trial)]
            created, _ = self.registry.create(info, meta["namespace"], job)
            self.event(trial, "Normal", "JobCreated", f"Job {meta['name']} has been created")
            return created
        if is_completed(status) and not trial["spec"].get("retainRun"):
            if self.delete(info.plural, deployed, "Foreground"):
                self.event(trial, "Normal", "JobDeleted", f"Job {meta['name']} has been deleted")
            return None
        return deployed

    def _observe(self, trial: Obj, status: Obj) -> None:
        """UpdateTrialStatusObservation: the logs of the objective and additional metrics."""
        objective = trial["spec"].get("objective") or {}
        name = trial["metadata"]["name"]
        logs = self.db.get(name, objective.get("objectiveMetricName", ""))
        for metric in objective.get("additionalMetricNames") or []:
            logs += self.db.get(name, metric)
        if logs:
            status["observation"] = observation(logs, objective.get("metricStrategies") or [])
