"""A Kubeflow job's state, as every view of it says it (%jobs, %status).

Training Operator v1 jobs say it in their conditions (Created, Running, Restarting,
Succeeded, Failed, Suspended: the last True one). A TrainJob has no Running condition in
any release (only Suspended, Complete, Failed): while it runs, its `jobsStatus` (one entry
per replicated Job of its JobSet, with `active` and `ready` counts) says whether any node's
pods are up, as the pods say in the live view.
"""

from __future__ import annotations

from typing import Any

from ciao.backend.kubeflow.manifests import JobKind
from ciao.backend.types import JobState

#: v1 condition types that mean the job runs.
_RUNNING = ("Created", "Running", "Restarting")


def job_state(kind: JobKind, obj: dict[str, Any]) -> tuple[JobState, str]:
    """The job's state and the message that goes with it."""
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Deleting", ""
    status = obj.get("status") or {}
    true = [c for c in status.get("conditions") or [] if c.get("status") == "True"]
    for condition in reversed(true):  # the last True one
        condition_type = condition.get("type", "")
        message = str(condition.get("message", ""))
        if condition_type in (kind.succeeded, "Succeeded", "Complete"):
            return "Succeeded", message
        if condition_type == "Failed":
            return "Failed", message
        if condition_type == "Suspended":
            return "Suspended", message
        if condition_type in _RUNNING and kind.api == "v1":
            return ("Running" if condition_type != "Created" else "Pending"), message
    if kind.api == "v2":
        return _trainjob_state(status), ""
    return "Pending", ""


def _trainjob_state(status: dict[str, Any]) -> JobState:
    """Running once any node's Job has a ready pod (or has finished some), else Pending."""
    for job in status.get("jobsStatus") or []:
        if int(job.get("ready") or 0) > 0 or int(job.get("succeeded") or 0) > 0:
            return "Running"
    return "Pending"
