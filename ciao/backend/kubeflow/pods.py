"""Pod states and diagnoses: what a pod shows, and why a replica is stuck or died.

The causes with names in them (a PVC, a Secret, a taint) are read by pod_problems.py and
scheduling.py; here each Warning event or pod status is sent to the reader of its kind.
"""

from __future__ import annotations

import re
from typing import Any

from ciao.backend.kubeflow.errors import RUNTIME_HINT
from ciao.backend.kubeflow.manifests import replica_of
from ciao.backend.kubeflow.pod_problems import (
    config_hint,
    missing_pull_secrets,
    namespace_of,
    pod_pull_secrets,
    pull_secret_hint,
    refusal_hint,
    volume_hint,
)
from ciao.backend.kubeflow.scheduling import scheduling_hint
from ciao.backend.types import Diagnosis, ReplicaState

#: The kubelet's Warning when a pod's pull secrets do not exist (it pulls without them).
PULL_SECRET_MISSING = "FailedToRetrieveImagePullSecret"


def diagnose_event(
    event: dict[str, Any],
    replica: str,
    pod: dict[str, Any] | None = None,
    missing_pull: tuple[str, ...] = (),
) -> Diagnosis | None:
    """A Diagnosis for a Warning event that explains a stuck or failed replica.

    `pod`: the pod the event is about, when the pod watch has seen it (its spec names the
    settings at fault); `missing_pull`: its pull secrets the kubelet said do not exist.
    """
    reason = event.get("reason", "")
    message = (event.get("message") or "").strip()
    namespace = namespace_of(event, pod)
    if reason == "FailedScheduling":
        return Diagnosis(replica, reason, scheduling_hint(message, pod, namespace))
    if reason in ("Failed", "ErrImagePull", "ImagePullBackOff") and _is_pull(message):
        hint = pull_hint(message, missing_pull, pod_pull_secrets(pod), namespace)
        return Diagnosis(replica, "ErrImagePull", hint)
    if reason == PULL_SECRET_MISSING:
        names = missing_pull_secrets(message) or pod_pull_secrets(pod)
        return Diagnosis(replica, reason, pull_secret_hint(names, namespace))
    if reason == "BackOff" and "restarting failed container" in message.lower():
        return Diagnosis(replica, "CrashLoopBackOff", _CRASH_HINT)
    if reason in ("FailedMount", "FailedAttachVolume"):
        return Diagnosis(replica, reason, volume_hint(reason, message, pod, namespace))
    if reason == "Evicted":
        return Diagnosis(replica, reason, f"the node evicted the pod: {message}")
    if reason in CREATION_FAILURES:
        return Diagnosis(replica, reason, creation_hint(message))
    return None


#: Warning reasons of controllers that cannot create what runs the job (nothing is Pending
#: to explain it): the v1 operator's, the batch Job controller's, JobSet's, Trainer's.
CREATION_FAILURES = frozenset(
    {
        "FailedCreate",
        "FailedCreatePod",
        "FailedCreateService",
        "JobCreationFailed",
        "HeadlessServiceCreationFailed",
        "TrainJobResourcesCreationFailed",
    }
)


#: What to do when the namespace's Pod Security level refuses the job's pods.
POD_SECURITY_HINT = (
    "the namespace's Pod Security level (label pod-security.kubernetes.io/enforce) refuses "
    "the job's pods: with the config's kubeflow.pod_security: restricted (the default) Ciao's "
    "pods pass every level (on Kubeflow Trainer v2.0/v2.1, whose TrainJobs cannot carry a "
    "securityContext, the runtime's pod template must set one); an image that must run as "
    "root needs a namespace whose level allows it (baseline or privileged), with "
    "kubeflow.pod_security: none"
)
#: Pod Security's baseline and restricted levels refuse every hostPath volume, whatever
#: securityContext Ciao sets (`hostPath volumes`, or at restricted `restricted volume
#: types (... "hostPath")`).
HOST_PATH_HINT = (
    "the namespace's Pod Security level (label pod-security.kubernetes.io/enforce: baseline "
    "or restricted) refuses hostPath volumes, so a %volume=hostPath:... (a folder of the "
    "node) cannot be mounted in this namespace: put the data on a claim "
    "(%volume=pvc:NAME:/path), or use a namespace whose level is privileged"
)
_HOST_PATH_REFUSED = ("hostPath volumes", 'restricted volume type "hostPath"')
#: The v1 operator's own init container in a PyTorchJob's workers sets no securityContext.
INIT_PYTORCH_HINT = (
    "the namespace's Pod Security level (label pod-security.kubernetes.io/enforce) refuses "
    "the workers for the init container init-pytorch, which the Training Operator v1 adds "
    "to every worker of a PyTorchJob with a master, with no securityContext (whatever Ciao "
    "sets on its own): a cluster admin gives the operator a template that sets one "
    "(deploy/training-operator-init-container.yaml), or run the cell where the level is "
    "baseline, on Kubeflow Trainer v2 (config kubeflow.api: v2), or as a master alone"
)
#: What to do when the kubelet will not start a container that would run as root.
RUN_AS_ROOT_HINT = (
    "the image runs as root, which runAsNonRoot forbids: set the config's "
    "kubeflow.run_as_user to a uid (the default, 1000) rather than image, or use an image "
    "whose USER is a numeric uid other than 0"
)


def refused_by_pod_security(message: str) -> bool:
    """A create refused by the PodSecurity admission plugin (`violates PodSecurity "..."`)."""
    return "violates podsecurity" in message.lower()


def never_created(message: str) -> bool:
    """A controller's creation failure that its retries cannot get past: the same pods are
    refused every time until the user changes the job (its Pod Security level, a service
    account or PriorityClass that does not exist). A full quota, by contrast, frees up."""
    return refused_by_pod_security(message) or refusal_hint(message) is not None


def creation_hint(message: str) -> str:
    """Why the job's pods (or Jobs) cannot be made, and what to do; the controller retries."""
    lowered = message.lower()
    if "failed quota" in lowered and "must specify" in lowered:
        return (
            "the namespace's ResourceQuota wants every container to state its resources: set "
            "%cpu and %memory for every role (or ask for a LimitRange that gives defaults) "
            f"({message})"
        )
    if "exceeded quota" in lowered:
        return (
            "the namespace's ResourceQuota does not allow the pod: lower %cpu, %memory or "
            f"%gpu, or the number of replicas, or ask for more quota ({message})"
        )
    if refused_by_pod_security(message) and '"init-pytorch"' in message:
        return f"{INIT_PYTORCH_HINT} ({message})"
    if refused_by_pod_security(message) and any(w in message for w in _HOST_PATH_REFUSED):
        return f"{HOST_PATH_HINT} ({message})"
    if refused_by_pod_security(message):
        return f"{POD_SECURITY_HINT} ({message})"
    refused = refusal_hint(message)
    if refused:
        return f"{refused} ({message})"
    if "trainingruntime" in lowered and "not found" in lowered:
        return f"{message} ({RUNTIME_HINT})"
    return f"the job's resources cannot be created (the controller keeps trying): {message}"


def diagnose_pod(
    pod: dict[str, Any], replica: str, missing_pull: tuple[str, ...] = ()
) -> list[Diagnosis]:
    """Diagnoses read off the pod's conditions and container statuses (waiting and
    terminated reasons); `missing_pull`: its pull secrets the kubelet said do not exist."""
    found = []
    status = pod.get("status") or {}
    namespace = namespace_of(None, pod)
    for condition in status.get("conditions") or []:
        # The scheduler's verdict is on the pod too: no Event needed (missed, expired, or
        # not readable under the Role) to say why a replica stays Pending.
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            hint = scheduling_hint((condition.get("message") or "").strip(), pod, namespace)
            found.append(Diagnosis(replica, "FailedScheduling", hint))
    limits = _memory_limit(pod)
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason", "")
        message = waiting.get("message") or ""
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            hint = pull_hint(message, missing_pull, pod_pull_secrets(pod), namespace)
            found.append(Diagnosis(replica, "ErrImagePull", hint))
        elif reason == "CrashLoopBackOff":
            found.append(Diagnosis(replica, reason, _CRASH_HINT))
        elif reason == "CreateContainerConfigError" and "runAsNonRoot" in message:
            found.append(Diagnosis(replica, reason, f"{RUN_AS_ROOT_HINT} ({message})"))
        elif reason == "CreateContainerConfigError":
            hint = config_hint(message, pod, namespace) or message or reason
            found.append(Diagnosis(replica, reason, hint))
        elif reason == "InvalidImageName":
            found.append(Diagnosis(replica, reason, message or reason))
        for key in ("terminated",):
            terminated = state.get(key) or (container.get("lastState") or {}).get(key) or {}
            if terminated.get("reason") == "OOMKilled":
                found.append(Diagnosis(replica, "OOMKilled", oom_hint(limits)))
    return found


def pull_hint(
    message: str,
    missing: tuple[str, ...] = (),
    pull_secrets: tuple[str, ...] = (),
    namespace: str = "",
) -> str:
    """What to do about an image pull failure; `missing`: the pod's pull secrets the
    kubelet could not find (they explain it), `pull_secrets`: those the pod names."""
    lowered = message.lower()
    image = _image_in(message)
    if missing:
        return (
            f"the image {image} cannot be pulled, and {pull_secret_hint(missing, namespace)} "
            f"(the registry said: {message})"
        )
    if any(
        w in lowered for w in ("unauthorized", "authentication required", "denied", "forbidden")
    ):
        if pull_secrets:
            named = ", ".join(pull_secrets)
            return (
                f"the registry refused to pull {image}: the pod's pull secret ({named}) does "
                "not hold credentials for it; check it exists and is for this registry "
                f"(kubectl get secret {pull_secrets[0]}{' -n ' + namespace if namespace else ''})"
                f" (the registry said: {message})"
            )
        return (
            f"the registry refused to pull {image}: it needs credentials the cluster does not "
            "have; add an imagePullSecret (%imagePullSecret=NAME, or on the namespace's "
            f"service account) (the registry said: {message})"
        )
    if any(w in lowered for w in ("not found", "manifest unknown", "does not exist")):
        return (
            f"the image {image} does not exist: check its name and tag (was it pushed?) "
            f"(the registry said: {message})"
        )
    return f"the image {image} cannot be pulled: {message}"


def oom_hint(limit: str) -> str:
    where = f" ({limit})" if limit else ""
    return (
        f"killed for using more memory than its limit{where} (exit code 137): raise %memory "
        "for this role, or use less (smaller batches)"
    )


_CRASH_HINT = (
    "the container keeps exiting soon after it starts (CrashLoopBackOff); its output is "
    "above, and it is restarted until the job's backoff limit (runPolicy.backoffLimit; on "
    "Trainer v2, the runtime's)"
)


def _is_pull(message: str) -> bool:
    lowered = message.lower()
    return "pull" in lowered or "image" in lowered


def _image_in(message: str) -> str:
    match = re.search(r'image "([^"]+)"', message) or re.search(
        r"pull(?:ing)? ([^\s:,]+:[^\s,]+)", message
    )
    return match.group(1) if match else "the image"


def _memory_limit(pod: dict[str, Any]) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit:
            return f"memory limit {limit}"
    return ""


def replica_state(pod: dict[str, Any], container: str, deleted: bool = False) -> ReplicaState:
    """The ReplicaState a pod shows: phase, the reason it waits or ended, restarts, node."""
    status = pod.get("status") or {}
    phase = "Deleted" if deleted else status.get("phase", "Pending")
    reason, message, restarts, exit_code = _container_summary(pod, container)
    if not reason:
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("reason"):
                reason, message = condition["reason"], condition.get("message", "")
    where = (pod.get("spec") or {}).get("nodeName", "")
    return ReplicaState(replica_of(pod), phase, reason, message, restarts, exit_code, where)


def _container_summary(pod: dict[str, Any], container: str) -> tuple[str, str, int, int | None]:
    """(reason, message, restarts, exit code) of the job's container in the pod."""
    status = pod.get("status") or {}
    for entry in status.get("initContainerStatuses") or []:
        waiting = (entry.get("state") or {}).get("waiting")
        if waiting or (entry.get("state") or {}).get("running"):
            return "Init:0/1", "", 0, None
    for entry in status.get("containerStatuses") or []:
        if entry.get("name") != container:
            continue
        state = entry.get("state") or {}
        restarts = int(entry.get("restartCount") or 0)
        if state.get("waiting"):
            waiting = state["waiting"]
            return waiting.get("reason", ""), waiting.get("message", ""), restarts, None
        if state.get("terminated"):
            ended = state["terminated"]
            return (
                ended.get("reason", ""),
                ended.get("message", ""),
                restarts,
                ended.get("exitCode"),
            )
        return "", "", restarts, None
    return "", "", 0, None
