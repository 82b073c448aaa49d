"""JobSet (kubernetes-sigs/jobset v0.12) and the batch/v1 Job controller, as Trainer v2 uses them.

JobSet `<name>` -> a headless Service `<subdomain>` (default: the JobSet's name) and, per
replicated job and replica, a Job `<name>-<rjob>-<i>` with the JobSet labels; its status:
`replicatedJobsStatus` (counts of Jobs) and a Completed / Failed condition: reason
`AllJobsCompleted` ("jobset completed successfully") or `FailedJobs` ("jobset failed due to
one or more job failures (first failed job: <job>)"); `failurePolicy.maxRestarts` recreates
all Jobs (label restart-attempt) before `ReachedMaxRestarts`. A finished JobSet deletes its
active Jobs. Defaulting and validation are the JobSet webhook's (completionMode Indexed,
restartPolicy OnFailure, DNS hostnames on; generated Job and pod names must fit 63).

Job: pods `<job>-<index>-<5 random>` (Indexed; hostname `<job>-<index>`, label and
annotation `batch.kubernetes.io/job-completion-index`, env JOB_COMPLETION_INDEX), at most
`parallelism` at a time; a failed pod (restartPolicy Never) is replaced until
`backoffLimit` is exceeded; with OnFailure the kubelet restarts containers in place and the
restarts count against the limit. Then FailureTarget, the active pods are deleted, and
Failed (BackoffLimitExceeded, "Job has reached the specified backoff limit"); all indexes
succeeded: SuccessCriteriaMet and Complete (CompletionsReached). Pod finalizers
(`batch.kubernetes.io/job-tracking`) are not simulated.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from . import errors as E
from .controller import (
    Controller,
    condition_true,
    find_condition,
    owner_ref,
    set_condition,
)
from .resources import CORE, JOBS, ResourceInfo
from .store import Obj
from .timeutil import now_ns, parse_rfc3339, rfc3339
from .validation import dns1035_label, dns1123_subdomain

JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
REPLICATED_JOB_REPLICAS = "jobset.sigs.k8s.io/replicatedjob-replicas"
JOB_INDEX = "jobset.sigs.k8s.io/job-index"
JOB_KEY = "jobset.sigs.k8s.io/job-key"
JOBSET_UID = "jobset.sigs.k8s.io/jobset-uid"
RESTART_ATTEMPT = "jobset.sigs.k8s.io/restart-attempt"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_FIELD = f"metadata.annotations['{COMPLETION_INDEX}']"

FAILED_JOBS_MESSAGE = "jobset failed due to one or more job failures"
MAX_RESTARTS_MESSAGE = "jobset failed due to reaching max number of restarts"
COMPLETED_MESSAGE = "jobset completed successfully"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETIONS_MESSAGE = "Reached expected number of succeeded pods"


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def _terminal(pod: Obj) -> bool:
    return _phase(pod) in ("Succeeded", "Failed")


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _ready(pod: Obj) -> bool:
    return condition_true(pod.get("status"), "Ready")


def _index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def job_finished(job: Obj) -> bool:
    status = job.get("status")
    return condition_true(status, "Complete") or condition_true(status, "Failed")


def compress_indexes(indexes: set[int]) -> str:
    """status.completedIndexes: `0-2,5`."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


# -- the JobSet webhook ------------------------------------------------------------------
def default_jobset(info: ResourceInfo, js: Obj, old: Obj | None) -> list[str]:
    """mjobset.kb.io: the defaults the JobSet webhook applies."""
    spec = js.setdefault("spec", {})
    spec.setdefault("successPolicy", {"operator": "All"})
    spec.setdefault("startupPolicy", {"startupPolicyOrder": "AnyOrder"})
    for rjob in spec.get("replicatedJobs") or []:
        if not isinstance(rjob, dict):
            continue
        rjob.setdefault("replicas", 1)
        jspec = rjob.setdefault("template", {}).setdefault("spec", {})
        jspec.setdefault("completionMode", "Indexed")
        pod_spec = jspec.setdefault("template", {}).setdefault("spec", {})
        pod_spec.setdefault("restartPolicy", "OnFailure")
    network = spec.setdefault("network", {})
    network.setdefault("enableDNSHostnames", True)
    network.setdefault("publishNotReadyAddresses", True)
    return []


def validate_jobset(info: ResourceInfo, js: Obj, old: Obj | None) -> list[str]:
    """vjobset.kb.io ValidateCreate: the generated names must be valid DNS-1035 labels."""
    if old is not None:
        return []
    errors: list[str] = []
    name = js["metadata"]["name"]
    spec = js.get("spec") or {}
    subdomain = (spec.get("network") or {}).get("subdomain")
    if subdomain:
        errors += dns1123_subdomain(subdomain)
        errors += [
            ".spec.network.subdomain is too long, must be less than 63 characters"
            if "63 characters" in m
            else m
            for m in dns1035_label(subdomain)
        ]
    for rjob in spec.get("replicatedJobs") or []:
        replicas = int(rjob.get("replicas", 1))
        job_name = f"{name}-{rjob.get('name', '')}-{replicas - 1}"
        errors += [
            "JobSet name is too long, job names generated for this JobSet will exceed 63 characters"
            if "63 characters" in m
            else m
            for m in dns1035_label(job_name)
        ]
        jspec = (rjob.get("template") or {}).get("spec") or {}
        if jspec.get("completionMode") == "Indexed" and jspec.get("completions") is not None:
            pod = f"{job_name}-{int(jspec['completions']) - 1}-abcde"
            errors += [
                "JobSet name is too long, pod names generated for this JobSet will exceed 63 "
                "characters"
                if "63 characters" in m
                else m
                for m in dns1035_label(pod)
            ]
    if errors:
        raise E.StatusError(
            403,
            "Forbidden",
            'admission webhook "vjobset.kb.io" denied the request: ' + "\n".join(errors),
        )
    return []


# -- JobSet controller -------------------------------------------------------------------
class JobSetController(Controller):
    """JobSet -> headless Service + Jobs; status from the Jobs."""

    kind_plural = "jobsets"
    kind = "JobSet"
    dependents = ("jobs",)
    component = "jobset"

    def reconcile(self, js: Obj) -> None:
        spec = js.get("spec") or {}
        status = self.status_copy(js)
        restarts = int(status.get("restarts", 0))
        current: list[Obj] = []
        for job in self.owned("jobs", js):
            attempt = (job["metadata"].get("labels") or {}).get(RESTART_ATTEMPT, "0")
            if attempt != str(restarts):
                self.delete("jobs", job, "Foreground")
            elif not _deleting(job):
                current.append(job)
        finished = bool(status.get("terminalState")) or any(
            condition_true(status, t) for t in ("Completed", "Failed")
        )
        if finished:
            for job in current:
                if not job_finished(job):
                    self.delete("jobs", job, "Foreground")
        else:
            self._suspension(js, status, current)
            failed = [j for j in current if condition_true(j.get("status"), "Failed")]
            if failed:
                self._failure(js, status, failed, current)
            elif self._succeeded(spec, current):
                self._finish(js, status, "Completed", "AllJobsCompleted", COMPLETED_MESSAGE)
            else:
                self._create_children(js, current, restarts)
        status["replicatedJobsStatus"] = self._replicated_status(spec, current)
        self.write_status(js, status)

    def _suspension(self, js: Obj, status: Obj, jobs: list[Obj]) -> None:
        suspend = bool((js.get("spec") or {}).get("suspend"))
        for job in jobs:
            if bool((job.get("spec") or {}).get("suspend")) != suspend:

                def flip(o: Obj, value: bool = suspend) -> None:
                    o["spec"]["suspend"] = value

                self.registry.mutate(
                    "jobs", job["metadata"]["namespace"], job["metadata"]["name"], flip
                )
        if suspend and not condition_true(status, "Suspended"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "True",
                    "reason": "SuspendedJobs",
                    "message": "jobset is suspended",
                },
            )
            self.event(js, "Normal", "SuspendedJobs", "jobset is suspended")
        elif not suspend and condition_true(status, "Suspended"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "False",
                    "reason": "ResumeJobs",
                    "message": "jobset is resumed",
                },
            )
            self.event(js, "Normal", "ResumeJobs", "jobset is resumed")

    @staticmethod
    def _first_failed(failed: list[Obj]) -> Obj:
        def when(job: Obj) -> int:
            cond = find_condition(job.get("status"), "Failed") or {}
            try:
                return parse_rfc3339(cond.get("lastTransitionTime") or "")
            except ValueError:
                return 0

        return min(failed, key=lambda j: (when(j), j["metadata"]["name"]))

    def _failure(self, js: Obj, status: Obj, failed: list[Obj], jobs: list[Obj]) -> None:
        first = self._first_failed(failed)["metadata"]["name"]
        policy = (js.get("spec") or {}).get("failurePolicy")
        if policy is None:
            msg = f"{FAILED_JOBS_MESSAGE} (first failed job: {first})"
            self._finish(js, status, "Failed", "FailedJobs", msg, jobs)
            return
        max_restarts = int(policy.get("maxRestarts", 0))
        if int(status.get("restartsCountTowardsMax", 0)) >= max_restarts:
            msg = f"{MAX_RESTARTS_MESSAGE} (first failed job: {first})"
            self._finish(js, status, "Failed", "ReachedMaxRestarts", msg, jobs)
            return
        status["restarts"] = int(status.get("restarts", 0)) + 1
        status["restartsCountTowardsMax"] = int(status.get("restartsCountTowardsMax", 0)) + 1
        self.event(
            js,
            "Warning",
            "Restarting",
            f"restarting jobset, attempt {status['restarts']} (first failed job: {first})",
        )
        for job in jobs:
            self.delete("jobs", job, "Foreground")

    def _finish(
        self,
        js: Obj,
        status: Obj,
        type_: str,
        reason: str,
        message: str,
        jobs: list[Obj] | None = None,
    ) -> None:
        set_condition(
            status, {"type": type_, "status": "True", "reason": reason, "message": message}
        )
        status["terminalState"] = type_
        self.event(js, "Warning" if type_ == "Failed" else "Normal", reason, message)
        for job in jobs or []:
            if not job_finished(job):
                self.delete("jobs", job, "Foreground")

    @staticmethod
    def _succeeded(spec: Obj, jobs: list[Obj]) -> bool:
        policy = spec.get("successPolicy") or {"operator": "All"}
        targets = policy.get("targetReplicatedJobs") or [
            r.get("name") for r in spec.get("replicatedJobs") or []
        ]
        done: dict[str, int] = {}
        for job in jobs:
            if condition_true(job.get("status"), "Complete"):
                rjob = (job["metadata"].get("labels") or {}).get(REPLICATED_JOB, "")
                done[rjob] = done.get(rjob, 0) + 1
        expected = {
            r.get("name"): int(r.get("replicas", 1)) for r in spec.get("replicatedJobs") or []
        }
        if policy.get("operator") == "Any":
            return any(done.get(t, 0) > 0 for t in targets)
        return bool(targets) and all(done.get(t, 0) >= expected.get(t, 1) for t in targets)

    def _create_children(self, js: Obj, jobs: list[Obj], restarts: int) -> None:
        spec = js.get("spec") or {}
        meta = js["metadata"]
        network = spec.get("network") or {}
        subdomain = network.get("subdomain") or meta["name"]
        if network.get("enableDNSHostnames", True) and not self.store.exists(
            "services", meta["namespace"], subdomain
        ):
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": subdomain,
                    "namespace": meta["namespace"],
                    "labels": {JOBSET_NAME: meta["name"]},
                    "ownerReferences": [owner_ref(js)],
                },
                "spec": {
                    "clusterIP": "None",
                    "selector": {JOBSET_NAME: meta["name"]},
                    "publishNotReadyAddresses": bool(network.get("publishNotReadyAddresses", True)),
                },
            }
            try:
                self.registry.create(CORE["services"], meta["namespace"], svc)
            except E.StatusError as err:
                if err.code != 409:
                    self.event(js, "Warning", "HeadlessServiceCreationFailed", err.message)
        existing = {j["metadata"]["name"] for j in jobs}
        for rjob in spec.get("replicatedJobs") or []:
            for idx in range(int(rjob.get("replicas", 1))):
                name = f"{meta['name']}-{rjob['name']}-{idx}"
                if name in existing or self.store.exists("jobs", meta["namespace"], name):
                    continue
                job = self._construct_job(js, rjob, idx, restarts, subdomain)
                try:
                    self.registry.create(JOBS, meta["namespace"], job)
                except E.StatusError as err:
                    if err.code != 409:
                        self.event(js, "Warning", "JobCreationFailed", err.message)

    @staticmethod
    def _construct_job(js: Obj, rjob: Obj, idx: int, restarts: int, subdomain: str) -> Obj:
        meta = js["metadata"]
        name = f"{meta['name']}-{rjob['name']}-{idx}"
        template = copy.deepcopy(rjob.get("template") or {})
        tmeta = template.get("metadata") or {}
        stamp = {
            JOBSET_NAME: meta["name"],
            REPLICATED_JOB: rjob["name"],
            RESTART_ATTEMPT: str(restarts),
            REPLICATED_JOB_REPLICAS: str(int(rjob.get("replicas", 1))),
            JOB_INDEX: str(idx),
            JOB_KEY: hashlib.sha1(f"{meta['namespace']}/{name}".encode()).hexdigest(),
            JOBSET_UID: meta["uid"],
        }
        spec = template.get("spec") or {}
        pod_template = spec.setdefault("template", {})
        pmeta = pod_template.setdefault("metadata", {})
        pmeta["labels"] = {**(pmeta.get("labels") or {}), **stamp}
        pmeta["annotations"] = {**(pmeta.get("annotations") or {}), **stamp}
        network = (js.get("spec") or {}).get("network") or {}
        if network.get("enableDNSHostnames", True):
            pod_template.setdefault("spec", {})["subdomain"] = subdomain
        if (js.get("spec") or {}).get("suspend") is not None:
            spec["suspend"] = bool(js["spec"]["suspend"])
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {**(tmeta.get("labels") or {}), **stamp},
                "annotations": {**(tmeta.get("annotations") or {}), **stamp},
                "ownerReferences": [owner_ref(js)],
            },
            "spec": spec,
        }

    @staticmethod
    def _replicated_status(spec: Obj, jobs: list[Obj]) -> list[Obj]:
        out = []
        for rjob in spec.get("replicatedJobs") or []:
            counts = {"ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
            for job in jobs:
                if (job["metadata"].get("labels") or {}).get(REPLICATED_JOB) != rjob.get("name"):
                    continue
                jstatus = job.get("status") or {}
                if condition_true(jstatus, "Complete"):
                    counts["succeeded"] += 1
                elif condition_true(jstatus, "Failed"):
                    counts["failed"] += 1
                else:
                    parallelism = int((job.get("spec") or {}).get("parallelism", 1))
                    ready = int(jstatus.get("ready", 0))
                    if int(jstatus.get("succeeded", 0)) + ready >= parallelism:
                        counts["ready"] += 1
                    if int(jstatus.get("active", 0)) > 0:
                        counts["active"] += 1
                    if (job.get("spec") or {}).get("suspend"):
                        counts["suspended"] += 1
            out.append({"name": rjob.get("name"), **counts})
        return out


# -- Job controller ----------------------------------------------------------------------
class JobController(Controller):
    """batch/v1 Jobs: pods per completion index, backoff limit, conditions."""

    kind_plural = "jobs"
    kind = "Job"
    dependents = ("pods",)
    component = "job-controller"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._failed: dict[str, set[str]] = {}

    def deleted(self, obj: Obj) -> None:
        self._failed.pop(obj["metadata"].get("uid", ""), None)

    def reconcile(self, job: Obj) -> None:
        spec = job.get("spec") or {}
        status = self.status_copy(job)
        pods = self.owned("pods", job)
        failed = self._failed.setdefault(job["metadata"]["uid"], set())
        for pod in pods:
            if _phase(pod) == "Failed":
                failed.add(pod["metadata"]["uid"])
        if job_finished(job):
            self._counts(spec, status, pods, failed)
            self.write_status(job, status)
            return
        if spec.get("suspend"):
            self._suspend(job, status, pods, failed)
            self.write_status(job, status)
            return
        if condition_true(status, "Suspended"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "False",
                    "reason": "JobResumed",
                    "message": "Job resumed",
                },
            )
            status["startTime"] = rfc3339()
            self.event(job, "Normal", "Resumed", "Job resumed")
        status.setdefault("startTime", rfc3339())
        target = find_condition(status, "FailureTarget")
        if target is None:
            target = self._failure_target(job, status, pods, failed)
        if target is not None:
            live = [p for p in pods if not _terminal(p)]
            for pod in live:
                if self.delete("pods", pod):
                    failed.add(pod["metadata"]["uid"])
                    self.event(
                        job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}"
                    )
            if not live:
                set_condition(
                    status,
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": target["reason"],
                        "message": target["message"],
                    },
                )
            self._counts(spec, status, pods, failed)
            self.write_status(job, status)
            return
        if self._complete(spec, pods):
            for pod in pods:
                if not _terminal(pod):
                    self.delete("pods", pod)
            for type_ in ("SuccessCriteriaMet", "Complete"):
                set_condition(
                    status,
                    {
                        "type": type_,
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": COMPLETIONS_MESSAGE,
                    },
                )
            status["completionTime"] = rfc3339()
            self.event(job, "Normal", "Completed", "Job completed")
        else:
            self._create_pods(job, pods)
            pods = self.owned("pods", job)
        self._counts(spec, status, pods, failed)
        self.write_status(job, status)

    def _failure_target(
        self, job: Obj, status: Obj, pods: list[Obj], failed: set[str]
    ) -> Obj | None:
        spec = job.get("spec") or {}
        limit = int(spec.get("backoffLimit", 6))
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        restarts = 0
        if policy == "OnFailure":
            for pod in pods:
                if _phase(pod) not in ("Running", "Pending"):
                    continue
                pstatus = pod.get("status") or {}
                for cs in (pstatus.get("initContainerStatuses") or []) + (
                    pstatus.get("containerStatuses") or []
                ):
                    restarts += int(cs.get("restartCount", 0))
        past_on_failure = policy == "OnFailure" and (
            restarts > 0 if limit == 0 else restarts >= limit
        )
        reason = message = ""
        if len(failed) > limit or past_on_failure:
            reason, message = "BackoffLimitExceeded", BACKOFF_MESSAGE
        deadline = spec.get("activeDeadlineSeconds")
        started = status.get("startTime")
        if (
            not reason
            and deadline is not None
            and started
            and (now_ns() - parse_rfc3339(started)) / 1e9 >= int(deadline)
        ):
            reason, message = "DeadlineExceeded", DEADLINE_MESSAGE
        if not reason:
            return None
        cond = {"type": "FailureTarget", "status": "True", "reason": reason, "message": message}
        set_condition(status, cond)
        self.event(job, "Warning", reason, message)
        return cond

    @staticmethod
    def _complete(spec: Obj, pods: list[Obj]) -> bool:
        succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            done = {_index(p) for p in succeeded} - {None}
            return completions is not None and len(done) >= int(completions)
        if completions is None:
            return bool(succeeded) and all(_terminal(p) for p in pods)
        return len(succeeded) >= int(completions)

    def _suspend(self, job: Obj, status: Obj, pods: list[Obj], failed: set[str]) -> None:
        for pod in pods:
            if not _terminal(pod):
                self.delete("pods", pod)
        if not condition_true(status, "Suspended"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "True",
                    "reason": "JobSuspended",
                    "message": "Job suspended",
                },
            )
            status.pop("startTime", None)
            self.event(job, "Normal", "Suspended", "Job suspended")
        self._counts(job.get("spec") or {}, status, [], failed)

    def _create_pods(self, job: Obj, pods: list[Obj]) -> None:
        spec = job.get("spec") or {}
        active = [p for p in pods if not _terminal(p) and not _deleting(p)]
        room = int(spec.get("parallelism", 1)) - len(active)
        if room <= 0:
            return
        if spec.get("completionMode") == "Indexed":
            succeeded = {_index(p) for p in pods if _phase(p) == "Succeeded"}
            covered = {_index(p) for p in active}
            wanted: list[int | None] = [
                i
                for i in range(int(spec.get("completions") or 0))
                if i not in succeeded and i not in covered
            ]
        else:
            done = sum(1 for p in pods if _phase(p) == "Succeeded")
            total = spec.get("completions")
            left = (int(total) - done - len(active)) if total is not None else room
            wanted = [None] * max(0, left)
        for index in wanted[:room]:
            self._create_pod(job, index)

    def _create_pod(self, job: Obj, index: int | None) -> None:
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec = template.get("spec") or {}
        generate = f"{meta['name']}-"
        if index is not None:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
            pod_spec["hostname"] = f"{meta['name']}-{index}"
            generate = f"{meta['name']}-{index}-"
            for c in (pod_spec.get("initContainers") or []) + (pod_spec.get("containers") or []):
                env = c.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append(
                        {
                            "name": "JOB_COMPLETION_INDEX",
                            "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}},
                        }
                    )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": generate,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner_ref(job)],
            },
            "spec": pod_spec,
        }
        try:
            created, _ = self.registry.create(CORE["pods"], meta["namespace"], pod)
        except E.StatusError as err:
            self.event(job, "Warning", "FailedCreate", f"Error creating: {err.message}")
            return
        self.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    @staticmethod
    def _counts(spec: Obj, status: Obj, pods: list[Obj], failed: set[str]) -> None:
        active = [p for p in pods if not _terminal(p) and not _deleting(p)]
        terminating = [p for p in pods if not _terminal(p) and _deleting(p)]
        succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        for key in ("active", "succeeded", "failed", "completedIndexes"):
            status.pop(key, None)
        if active:
            status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = len(terminating)
        if spec.get("completionMode") == "Indexed":
            done = {i for i in (_index(p) for p in succeeded) if i is not None}
            if done:
                status["succeeded"] = len(done)
                status["completedIndexes"] = compress_indexes(done)
        elif succeeded:
            status["succeeded"] = len(succeeded)
        if failed:
            status["failed"] = len(failed)
        status["uncountedTerminatedPods"] = {}
