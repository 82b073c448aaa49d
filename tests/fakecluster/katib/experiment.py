"""The Experiment controller (pkg/controller.v1beta1/experiment).

An Experiment gets the finalizer `update-prometheus-metrics` (removed when it is deleted),
then Created (`Experiment is created`); it then keeps `parallelTrialCount` trials active:
it asks its Suggestion (same name, created on the first need: algorithm, earlyStopping,
resumePolicy, `requests` = trials wanted so far) and creates a Trial
`<experiment>-<8 characters>` for each new assignment: labels the Experiment's own plus
`katib.kubeflow.org/experiment`, controller ownerReference, spec {objective,
parameterAssignments, runSpec (template.py), retainRun, metricsCollector,
primaryPodLabels, primaryContainerName, successCondition, failureCondition}. Its status is
rebuilt from its trials at each reconcile: the lists and counts of running, pending,
succeeded, failed, killed, early stopped and metrics-unavailable trials, `trials`,
`currentOptimalTrial` {bestTrialName, parameterAssignments, observation} (the best objective
value by its strategy; a value that is not a number counts as best), Running (`Experiment is
running`), then Succeeded (ExperimentGoalReached, ExperimentMaxTrialsReached) or Failed
(ExperimentFailed: `Experiment has failed because max failed count has reached`, or
`Suggestion has failed`) and completionTime; its Suggestion is then marked Succeeded
(resumePolicy Never or FromVolume). Trials still running when it ends run on and are
counted. Trials past a lowered parallelTrialCount are deleted, newest first. Restarting a
completed Experiment (LongRunning) is not simulated.
"""

from __future__ import annotations

from typing import Any

from ..controller import Controller, owner_ref
from ..errors import StatusError
from ..store import Obj, WatchEvent
from ..timeutil import rfc3339
from . import conditions as cond
from . import config as C
from .metrics import objective_value, observation_available
from .template import TemplateError, run_spec


def completed(status: Obj) -> bool:
    return cond.true(status, "Succeeded") or cond.true(status, "Failed")


def trial_state(trial: Obj) -> str:
    """The list a trial is counted in (updateTrialsSummary's order of checks)."""
    status = trial.get("status") or {}
    for state in ("Killed", "Failed", "Succeeded", "EarlyStopped", "Running", "MetricsUnavailable"):
        if cond.true(status, state):
            return state
    return "Pending"


_LISTS = {
    "Killed": ("killedTrialList", "trialsKilled"),
    "Failed": ("failedTrialList", "trialsFailed"),
    "Succeeded": ("succeededTrialList", "trialsSucceeded"),
    "EarlyStopped": ("earlyStoppedTrialList", "trialsEarlyStopped"),
    "Running": ("runningTrialList", "trialsRunning"),
    "MetricsUnavailable": ("metricsUnavailableTrialList", "trialMetricsUnavailable"),
    "Pending": ("pendingTrialList", "trialsPending"),
}


def summarize(experiment: Obj, status: Obj, trials: list[Obj]) -> bool:
    """updateTrialsSummary: the lists, counts and currentOptimalTrial; whether the goal is
    reached."""
    objective = experiment["spec"].get("objective") or {}
    goal = objective.get("goal")
    maximize = objective.get("type") == "maximize"
    lists: dict[str, list[str]] = {}
    best_index, best_value = -1, 0.0
    reached = False
    for index, trial in enumerate(trials):
        lists.setdefault(trial_state(trial), []).append(trial["metadata"]["name"])
        text = objective_value(trial)
        if text == C.UNAVAILABLE:
            continue
        try:
            value = float(text)
        except ValueError:
            best_index = index  # "for string metrics values best trial is the latest"
            continue
        if best_index == -1:
            best_index, best_value = index, value
        if objective.get("type") == "minimize":
            if value < best_value:
                best_index, best_value = index, value
            reached = reached or (goal is not None and best_value <= goal)
        elif maximize:
            if value > best_value:
                best_index, best_value = index, value
            reached = reached or (goal is not None and best_value >= goal)
    status["trials"] = len(trials)
    for state, (list_key, count_key) in _LISTS.items():
        names = lists.get(state)
        if names:
            status[list_key] = names
            status[count_key] = len(names)
        else:
            status.pop(list_key, None)
            status.pop(count_key, None)
    if not trials:
        status.pop("trials", None)
    if best_index != -1:
        chosen = trials[best_index]
        status["currentOptimalTrial"] = {
            "bestTrialName": chosen["metadata"]["name"],
            "parameterAssignments": list(chosen["spec"].get("parameterAssignments") or []),
            "observation": {
                "metrics": list(
                    ((chosen.get("status") or {}).get("observation") or {}).get("metrics") or []
                )
            },
        }
    return reached


def _count(status: Obj, *keys: str) -> int:
    return sum(int(status.get(k) or 0) for k in keys)


class ExperimentController(Controller):
    """Experiment -> Suggestion -> Trials; status from the trials."""

    kind_plural = "experiments"
    kind = "Experiment"
    dependents = ("trials", "suggestions")
    component = "experiment-controller"

    def keys_for(self, ev: WatchEvent) -> list[tuple[str, str]]:
        return self.owner_keys(ev, self.kind) if ev.resource in self.dependents else []

    def finalize(self, experiment: Obj) -> None:
        self.drop_finalizer(experiment, C.EXPERIMENT_FINALIZER)

    def reconcile(self, experiment: Obj) -> None:
        if C.EXPERIMENT_FINALIZER not in (experiment["metadata"].get("finalizers") or []):
            self.add_finalizer(experiment, C.EXPERIMENT_FINALIZER)
            return
        status = self.status_copy(experiment)
        status.setdefault("currentOptimalTrial", {"observation": {}})
        if completed(status):
            if experiment["spec"].get("resumePolicy") in ("Never", "FromVolume"):
                self._suggestion_done(experiment)
            if not int(status.get("trialsRunning") or 0):
                return
        if not cond.true(status, "Created"):
            status.setdefault("startTime", rfc3339())
            status.setdefault("completionTime", None)
            cond.set_(status, "Created", "True", "ExperimentCreated", "Experiment is created")
        else:
            try:
                self._reconcile(experiment, status)
            except (StatusError, TemplateError) as exc:
                self.event(experiment, "Warning", "ReconcileError", f"Failed to reconcile: {exc}")
        self.write_status(experiment, status)

    def _trials(self, experiment: Obj) -> list[Obj]:
        meta = experiment["metadata"]
        items, _ = self.store.list("trials", meta["namespace"])
        mine = [
            t
            for t in items
            if (t["metadata"].get("labels") or {}).get(C.LABEL_EXPERIMENT) == meta["name"]
        ]
        return sorted(
            mine, key=lambda t: (t["metadata"]["creationTimestamp"], t["metadata"]["name"])
        )

    def _reconcile(self, experiment: Obj, status: Obj) -> None:
        trials = self._trials(experiment)
        if trials:
            reached = summarize(experiment, status, trials)
            if not completed(status):
                self._update_condition(experiment, status, reached)
        if completed(status):
            return
        spec = experiment["spec"]
        parallel = int(spec.get("parallelTrialCount") or C.DEFAULT_PARALLEL_TRIALS)
        active = _count(status, "trialsPending", "trialsRunning")
        done = _count(
            status, "trialsSucceeded", "trialsFailed", "trialsKilled", "trialsEarlyStopped"
        )
        if active > parallel:
            self._delete_trials(experiment, trials, active - parallel)
            return
        if active < parallel:
            wanted = parallel
            if spec.get("maxTrialCount") is not None:
                wanted = min(int(spec["maxTrialCount"]) - done, parallel)
            add = max(wanted - active, 0)
            if add > 0:
                self._create_trials(experiment, status, trials, add)

    def _update_condition(self, experiment: Obj, status: Obj, reached: bool) -> None:
        """UpdateExperimentStatusCondition."""
        spec = experiment["spec"]
        finished = _count(
            status,
            "trialsSucceeded",
            "trialsFailed",
            "trialsKilled",
            "trialsEarlyStopped",
            "trialMetricsUnavailable",
        )
        failed = _count(status, "trialsFailed", "trialMetricsUnavailable")
        max_failed = spec.get("maxFailedTrialCount")
        max_trials = spec.get("maxTrialCount")
        if reached:
            self._end(
                status,
                "Succeeded",
                "ExperimentGoalReached",
                "Experiment has succeeded because Objective goal has reached",
            )
        elif max_failed is not None and failed and failed >= max_failed:
            self._end(
                status,
                "Failed",
                "ExperimentFailed",
                "Experiment has failed because max failed count has reached",
            )
        elif max_trials is not None and finished >= max_trials:
            self._end(
                status,
                "Succeeded",
                "ExperimentMaxTrialsReached",
                "Experiment has succeeded because max trial count has reached",
            )
        else:
            cond.set_(status, "Running", "True", "ExperimentRunning", "Experiment is running")

    @staticmethod
    def _end(status: Obj, type_: str, reason: str, message: str) -> None:
        cond.finish(status, type_, reason, message)
        status["completionTime"] = rfc3339()

    # -- suggestions and trials -----------------------------------------------------------
    def _suggestion(self, experiment: Obj, requests: int) -> Obj | None:
        """GetOrCreateSuggestion: None when it was just created."""
        meta = experiment["metadata"]
        found = self.store.get("suggestions", meta["namespace"], meta["name"])
        if found is not None:
            return found
        spec = experiment["spec"]
        suggestion: Obj = {
            "apiVersion": C.API_VERSION,
            "kind": "Suggestion",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "ownerReferences": [owner_ref(experiment)],
            },
            "spec": {
                "algorithm": spec.get("algorithm"),
                "requests": requests,
                "resumePolicy": spec.get("resumePolicy"),
            },
        }
        for key in ("labels", "annotations"):
            if meta.get(key):
                suggestion["metadata"][key] = dict(meta[key])
        if spec.get("earlyStopping") is not None:
            suggestion["spec"]["earlyStopping"] = spec["earlyStopping"]
        self.registry.create(self.registry.by_plural("suggestions"), meta["namespace"], suggestion)
        return None

    def _create_trials(self, experiment: Obj, status: Obj, trials: list[Obj], add: int) -> None:
        names = {t["metadata"]["name"] for t in trials}
        stopped_early = sum(
            1
            for t in trials
            if cond.true(t.get("status"), "EarlyStopped") and not observation_available(t)
        )
        requests = len(trials) + add - stopped_early
        suggestion = self._suggestion(experiment, requests)
        if suggestion is None:
            return
        sstatus = suggestion.get("status") or {}
        if cond.true(sstatus, "Failed"):
            cond.finish(status, "Failed", "ExperimentFailed", "Suggestion has failed")
            return
        fresh = (
            [a for a in sstatus.get("suggestions") or [] if a.get("name") not in names]
            if len(sstatus.get("suggestions") or []) > len(trials)
            else []
        )
        if int((suggestion.get("spec") or {}).get("requests") or 0) != requests:

            def ask(o: Obj) -> None:
                o["spec"]["requests"] = requests

            self.registry.mutate(
                "suggestions",
                suggestion["metadata"]["namespace"],
                suggestion["metadata"]["name"],
                ask,
            )
        for assignment in fresh:
            self._create_trial(experiment, assignment)

    def _create_trial(self, experiment: Obj, assignment: Obj) -> None:
        meta = experiment["metadata"]
        spec = experiment["spec"]
        template = spec.get("trialTemplate") or {}
        labels = {**(meta.get("labels") or {}), C.LABEL_EXPERIMENT: meta["name"]}
        labels.update(assignment.get("labels") or {})
        trial_spec: dict[str, Any] = {
            "objective": spec.get("objective"),
            "parameterAssignments": assignment.get("parameterAssignments") or [],
            "runSpec": run_spec(
                experiment,
                assignment["name"],
                meta["namespace"],
                assignment.get("parameterAssignments") or [],
                lambda ns, name: self.store.get("configmaps", ns, name),
            ),
            "metricsCollector": spec.get("metricsCollectorSpec") or {},
        }
        if spec.get("earlyStopping") is not None and assignment.get("earlyStoppingRules"):
            trial_spec["earlyStoppingRules"] = assignment["earlyStoppingRules"]
        if template.get("retain"):
            trial_spec["retainRun"] = True
        for key in ("primaryPodLabels", "primaryContainerName"):
            if template.get(key):
                trial_spec[key] = template[key]
        if template.get("successCondition") and template.get("failureCondition"):
            trial_spec["successCondition"] = template["successCondition"]
            trial_spec["failureCondition"] = template["failureCondition"]
        trial = {
            "apiVersion": C.API_VERSION,
            "kind": "Trial",
            "metadata": {
                "name": assignment["name"],
                "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [owner_ref(experiment)],
            },
            "spec": trial_spec,
        }
        try:  # "Due to unsynchronised policy of Kubernetes controllers, trial creation can fail"
            self.registry.create(self.registry.by_plural("trials"), meta["namespace"], trial)
        except StatusError:
            return

    def _delete_trials(self, experiment: Obj, trials: list[Obj], count: int) -> None:
        """deleteTrials: the newest `count` trials, and their assignments from the
        Suggestion's status."""
        newest = sorted(trials, key=lambda t: t["metadata"]["creationTimestamp"], reverse=True)
        gone = {t["metadata"]["name"] for t in newest[:count]}
        for trial in newest[:count]:
            self.delete("trials", trial)
        meta = experiment["metadata"]

        def forget(o: Obj) -> None:
            kept = [
                a
                for a in (o.get("status") or {}).get("suggestions") or []
                if a.get("name") not in gone
            ]
            o["spec"]["requests"] = len(kept)
            o.setdefault("status", {})["suggestions"] = kept
            o["status"]["suggestionCount"] = len(kept)

        self.registry.mutate("suggestions", meta["namespace"], meta["name"], forget)

    def _suggestion_done(self, experiment: Obj) -> None:
        """cleanupSuggestionResources."""
        meta = experiment["metadata"]
        suggestion = self.store.get("suggestions", meta["namespace"], meta["name"])
        if suggestion is None:
            return
        sstatus = suggestion.get("status") or {}
        if cond.true(sstatus, "Succeeded") or cond.true(sstatus, "Failed"):
            return
        never = experiment["spec"].get("resumePolicy") == "Never"
        message = (
            "Suggestion is succeeded, can't be restarted"
            if never
            else "Suggestion is succeeded, suggestion volume is not deleted, can be restarted"
        )

        def succeed(o: Obj) -> None:
            st = o.setdefault("status", {})
            reason = "Suggestion is succeeded"
            if cond.get(st, "Running") is not None:
                cond.set_(st, "Running", "False", reason, "Suggestion is not running")
            if cond.get(st, "DeploymentReady") is not None:
                cond.set_(st, "DeploymentReady", "False", reason, "Deployment is not ready")
            cond.set_(st, "Succeeded", "True", "Experiment is succeeded", message)

        self.registry.mutate("suggestions", meta["namespace"], meta["name"], succeed)
