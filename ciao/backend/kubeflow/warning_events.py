"""The namespace's Warning events about a followed job, its pods and its batch Jobs, as
diagnoses of the replica (or the whole job) they are about.

The event watch can outrun the pod watch: an event about a TrainJob pod not seen yet (its
name does not say which node it is) is held, bounded, until the pod shows its replica.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ciao.backend.kubeflow.pods import CREATION_FAILURES, diagnose_event, refused_by_pod_security
from ciao.backend.types import Diagnosis
from ciao.errors import BackendError

#: Bounds on the Warning events held for pods the pod watch has not shown yet.
MAX_EARLY_PODS = 256
MAX_EARLY_EVENTS = 8


class WarningEvents:
    """Called under the follower's lock, one event at a time."""

    def __init__(
        self,
        job: str,
        api: str,
        replicas: dict[str, str],
        diagnose: Callable[[Diagnosis], None],
        fail: Callable[[BackendError], None],
    ) -> None:
        """`replicas`: pod name -> replica, as the pod watch learns them; `fail` ends the
        following (a namespace whose Pod Security refuses the pods)."""
        self.job = job
        self.api = api
        self.replicas = replicas
        self.diagnose = diagnose
        self.fail = fail
        #: Warning events about pods not seen yet, by pod name.
        self.early: dict[str, list[dict[str, Any]]] = {}
        #: The namespace's Pod Security level refused the job's pods: following has failed.
        self.refused = False

    def on_event(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "DELETED" or event.get("type") != "Warning":
            return
        involved = event.get("involvedObject") or {}
        name = involved.get("name", "")
        job = self.job
        if name == job:
            replica = "job"
        elif name in self.replicas:
            replica = self.replicas[name]
        elif name.startswith(job + "-") and involved.get("kind") == "Job":
            replica = "job"  # a TrainJob's batch Job: it makes every node's pods
        elif name.startswith(job + "-") and self.api == "v1":
            replica = name[len(job) + 1 :]  # v1 pods are named {job}-{type}-{index}
        elif name.startswith(job + "-") and involved.get("kind", "Pod") == "Pod":
            # A TrainJob's pod not seen yet: its name does not say which node it is.
            if name in self.early or len(self.early) < MAX_EARLY_PODS:
                events = self.early.setdefault(name, [])
                events.append(event)
                del events[:-MAX_EARLY_EVENTS]
            return
        else:
            return
        self._diagnose_event(event, replica)

    def pod_seen(self, pod: str, replica: str) -> None:
        """The pod watch saw `pod` (of `replica`): the events held for it are said now."""
        for event in self.early.pop(pod, ()):
            self._diagnose_event(event, replica)

    def _diagnose_event(self, event: dict[str, Any], replica: str) -> None:
        diagnosis = diagnose_event(event, replica)
        if diagnosis is None:
            return
        self.diagnose(diagnosis)
        message = event.get("message") or ""
        if (
            diagnosis.reason in CREATION_FAILURES
            and refused_by_pod_security(message)
            and not self.refused
        ):
            # Unlike a full quota, this never passes: the controller would retry forever.
            self.refused = True
            self.fail(BackendError(f"its pods cannot be created: {diagnosis.hint}"))
