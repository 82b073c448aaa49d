"""The namespace's Warning events about a followed job, its pods and its batch Jobs, as
diagnoses of the replica (or the whole job) they are about.

The event watch can outrun the pod watch: an event about a TrainJob pod not seen yet (its
name does not say which node it is) is held, bounded, until the pod shows its replica.
A creation that admission refuses for good (a Pod Security level, a service account that
does not exist) ends the following: the controller would retry it forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ciao.backend.kubeflow.pod_problems import is_mount_timeout, missing_pull_secrets
from ciao.backend.kubeflow.pods import (
    CREATION_FAILURES,
    PULL_SECRET_MISSING,
    diagnose_event,
    never_created,
)
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
        pod_named: Callable[[str], dict[str, Any] | None],
        missing_pull: dict[str, tuple[str, ...]],
    ) -> None:
        """`replicas`: pod name -> replica, as the pod watch learns them; `fail` ends the
        following (pods that can never be created: a Pod Security level that refuses them,
        a service account that does not exist); `pod_named`: the pod watch's latest view
        of a pod (its spec names the settings a hint points at); `missing_pull`: pod name
        -> the pull secrets the kubelet could not find, written here and read by the pod
        watch (they explain a pull failure either may see first)."""
        self.job = job
        self.api = api
        self.replicas = replicas
        self.diagnose = diagnose
        self.fail = fail
        self.pod_named = pod_named
        self.missing_pull = missing_pull
        #: Warning events about pods not seen yet, by pod name.
        self.early: dict[str, list[dict[str, Any]]] = {}
        #: The job's pods can never be created: following has failed.
        self.refused = False
        #: Replicas a volume could not be attached for: the kubelet's later "still not
        #: mounted" summary only repeats it.
        self.attach_failed: set[str] = set()

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
        self._diagnose_event(event, replica, name)

    def pod_seen(self, pod: str, replica: str) -> None:
        """The pod watch saw `pod` (of `replica`): the events held for it are said now."""
        for event in self.early.pop(pod, ()):
            self._diagnose_event(event, replica, pod)

    def _diagnose_event(self, event: dict[str, Any], replica: str, name: str) -> None:
        reason, message = event.get("reason", ""), event.get("message") or ""
        if reason == PULL_SECRET_MISSING:
            self.missing_pull[name] = missing_pull_secrets(message)
        if reason == "FailedMount" and replica in self.attach_failed and is_mount_timeout(message):
            return
        pod = self.pod_named(name)
        diagnosis = diagnose_event(event, replica, pod, self.missing_pull.get(name, ()))
        if diagnosis is None:
            return
        if reason == "FailedAttachVolume":
            self.attach_failed.add(replica)
        self.diagnose(diagnosis)
        if diagnosis.reason in CREATION_FAILURES and never_created(message) and not self.refused:
            # Unlike a full quota, this never passes: the controller would retry forever.
            self.refused = True
            self.fail(BackendError(f"its pods cannot be created: {diagnosis.hint}"))
