"""Why a replica stays Pending unscheduled, and what to do: the scheduler's own words (its
FailedScheduling event, or the pod's Unschedulable condition), or its silence (a pod whose
schedulerName no scheduler serves gets neither).

The scheduler's message counts the nodes each reason ruled out: `0/3 nodes are available:
1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 node(s) didn't
match Pod's node affinity/selector. preemption: ...`. Each cause the user can act on gives
one part of the hint, what the pods refer to first (a PVC), then where they may run (taints,
labels), then what they ask for (cpu, memory, GPUs); the control plane's own taint, which
every cluster has, is only said when nothing else is.
"""

from __future__ import annotations

import re
from typing import Any

from ciao.backend.kubeflow.pod_problems import (
    PVC_DELETED,
    PVC_NOT_FOUND,
    PVC_UNBOUND,
    deleted_pvc_hint,
    missing_pvc_hint,
    pvc_claims,
    unbound_pvc_hint,
)
from ciao.interpreter.pod import Toleration

_RESOURCE_HINTS = {
    "cpu": "no node has enough free CPU for this replica's request: lower %cpu for the role, "
    "or wait for (or add) capacity",
    "memory": "no node has enough free memory for this replica's request: lower %memory for "
    "the role, or wait for (or add) capacity",
    "nvidia.com/gpu": "no node has a free GPU: lower %gpu, or wait for a GPU node (is the "
    "NVIDIA device plugin installed?)",
}
#: `N node(s) had untolerated taint {key: value}` (Kubernetes 1.25 on; before, `had taint
#: {key: value}, that the pod didn't tolerate`); recent releases no longer name the taint:
#: `N node(s) had untolerated taint(s)`.
_TAINT = re.compile(r"(\d+) node\(s\) had (?:untolerated )?taint \{([^:{}]+): ?([^{}]*)\}")
_UNNAMED_TAINTS = re.compile(r"(\d+) node\(s\) had untolerated taint\(s\)")
#: Taints the cluster sets itself (control plane, not ready, unreachable, cordoned...).
_CLUSTER_TAINTS = ("node-role.kubernetes.io/", "node.kubernetes.io/", "node.cloudprovider.")
_SELECTOR = re.compile(r"(\d+) node\(s\) didn't match (?:Pod's )?node (?:affinity/)?selector")
_VOLUME_ZONE = re.compile(
    r"(\d+) node\(s\) (?:had volume node affinity conflict|didn't match PersistentVolume's "
    r"node affinity)"
)
_RWOP_IN_USE = re.compile(
    r"(\d+) node\(s\) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access "
    r"mode already in-use by another pod"
)
_NO_VOLUME = re.compile(r"(\d+) node\(s\) didn't find available persistent volumes to bind")
_GPU = "nvidia.com/gpu"
DEFAULT_SCHEDULER = "default-scheduler"


def scheduling_hint(message: str, pod: dict[str, Any] | None = None, namespace: str = "") -> str:
    """What to do about a FailedScheduling message (the pod, when known, names the
    settings at fault)."""
    reasons = message.split(" preemption:", 1)[0]
    parts = [
        *_volume_parts(reasons, pod, namespace),
        *_placement_parts(reasons, pod),
        *_resource_parts(reasons),
    ]
    unnamed = _UNNAMED_TAINTS.search(reasons)
    if unnamed and (not parts or _gpu_untolerated(pod)):
        # Unnamed, the control plane's taint looks like any other: said when it is all
        # there is, or when the pods want GPUs and do not tolerate the usual GPU taint.
        parts.insert(0, _unnamed_taints_part(int(unnamed.group(1)), pod))
    if not parts:
        parts = _cluster_taint_parts(reasons)
    if not parts:
        return f"the scheduler cannot place this replica: {message}"
    return f"{'; '.join(parts)} ({message})"


def _volume_parts(reasons: str, pod: dict[str, Any] | None, namespace: str) -> list[str]:
    missing = dict.fromkeys(PVC_NOT_FOUND.findall(reasons))
    parts = [missing_pvc_hint(claim, namespace, pod) for claim in missing]
    deleted = dict.fromkeys(PVC_DELETED.findall(reasons))
    parts += [deleted_pvc_hint(claim, namespace) for claim in deleted]
    if PVC_UNBOUND in reasons:
        parts.append(unbound_pvc_hint(pvc_claims(pod), namespace))
    zone = _VOLUME_ZONE.search(reasons)
    if zone:
        parts.append(
            f"{zone.group(1)} node(s) are not where the PVC's volume is (another zone, or a "
            "local volume on another node): use a claim whose volume the pods' nodes can "
            "reach, or let the pods run there (%nodeSelector, %toleration)"
        )
    if _RWOP_IN_USE.search(reasons):
        claims = pvc_claims(pod)
        which = f'the PVC "{claims[0]}"' if len(claims) == 1 else "a PVC of the pods"
        name = claims[0] if len(claims) == 1 else "NAME"
        parts.append(
            f"{which} is ReadWriteOncePod and another pod uses it: one pod at a time can; a "
            "job of several replicas needs a ReadWriteMany claim (or ReadOnlyMany, mounted "
            f"read-only with %volume=pvc:{name}:/PATH:ro)"
        )
    unbound = _NO_VOLUME.search(reasons)
    if unbound:
        parts.append(
            f"no PersistentVolume fits the pods' claim on {unbound.group(1)} node(s): "
            "kubectl describe pvc says what it asks for"
        )
    return parts


def _placement_parts(reasons: str, pod: dict[str, Any] | None) -> list[str]:
    """Taints the pods do not tolerate, labels no node has."""
    parts = []
    taints = [(n, k, v) for n, k, v in _TAINT.findall(reasons) if not _by_cluster(k)]
    if taints:
        named = ", ".join(f"{{{k}: {v}}} on {n} node(s)" for n, k, v in taints)
        settings = " or ".join(
            f"%toleration={Toleration(k, v, exists=not v).describe()}" for _, k, v in taints
        )
        parts.append(
            f"the nodes have taints the pods do not tolerate ({named}): add {settings} for "
            "the nodes to use (or a %profile that has it)"
        )
    selector = _SELECTOR.search(reasons)
    if selector:
        parts.append(_selector_part(int(selector.group(1)), pod))
    return parts


def _unnamed_taints_part(count: int, pod: dict[str, Any] | None) -> str:
    """Recent schedulers do not say which taint: the nodes do (and GPU node pools are
    usually tainted nvidia.com/gpu)."""
    gpu = f"; GPU nodes are usually tainted {_GPU}: %toleration={_GPU}"
    gpu = gpu if _gpu_untolerated(pod) else ""
    return (
        f"{count} node(s) have taints the pods do not tolerate: kubectl describe nodes | grep "
        f"Taints shows them; add a %toleration for the nodes to use (or a %profile that has "
        f"it){gpu}"
    )


def _selector_part(count: int, pod: dict[str, Any] | None) -> str:
    spec = (pod or {}).get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    if selector:
        labels = " ".join(f"%nodeSelector={k}={v}" for k, v in selector.items())
        keys = ",".join(selector)
        return (
            f"{count} node(s) lack the labels {labels} asks for: check the values the "
            f"nodes have (kubectl get nodes -L {keys})"
        )
    if spec.get("affinity"):
        return (
            f"{count} node(s) do not match the pods' node affinity (a profile's affinity): "
            "check the nodes' labels (kubectl get nodes --show-labels)"
        )
    return (
        f"{count} node(s) do not match the pods' node selector or affinity (%nodeSelector, "
        "or a profile's): check the nodes' labels (kubectl get nodes --show-labels)"
    )


def _resource_parts(reasons: str) -> list[str]:
    for resource in re.findall(r"Insufficient ([\w./-]*\w)", reasons):
        if resource in _RESOURCE_HINTS:
            return [_RESOURCE_HINTS[resource]]
    return []


def _cluster_taint_parts(reasons: str) -> list[str]:
    """Only the cluster's own taints ruled the nodes out: nothing for the cell to tolerate."""
    keys = sorted({k for _, k, _ in _TAINT.findall(reasons) if _by_cluster(k)})
    if not keys:
        return []
    return [
        f"the only nodes are kept from workloads by the cluster's own taints ({', '.join(keys)}"
        "): control-plane nodes, or nodes not ready, unreachable or cordoned (kubectl get "
        "nodes)"
    ]


def _by_cluster(key: str) -> bool:
    return key.startswith(_CLUSTER_TAINTS)


def _gpu_untolerated(pod: dict[str, Any] | None) -> bool:
    """The pods ask for GPUs and do not tolerate the taint GPU node pools usually have."""
    spec = (pod or {}).get("spec") or {}
    asks = any(
        _GPU in ((c.get("resources") or {}).get(k) or {})
        for c in spec.get("containers") or []
        for k in ("limits", "requests")
    )
    tolerates = any(
        t.get("key") == _GPU or (not t.get("key") and t.get("operator") == "Exists")
        for t in spec.get("tolerations") or []
    )
    return asks and not tolerates


# --- pods no scheduler takes ---------------------------------------------------------------


def unclaimed_by(pod: dict[str, Any]) -> str:
    """The schedulerName of a Pending pod no scheduler has looked at (no node, no
    PodScheduled condition, no scheduling gate holding it), when it is not the default
    scheduler's; "" otherwise (the default scheduler always says why)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    scheduler = spec.get("schedulerName") or DEFAULT_SCHEDULER
    if (
        scheduler == DEFAULT_SCHEDULER
        or spec.get("nodeName")
        or spec.get("schedulingGates")
        or (pod.get("metadata") or {}).get("deletionTimestamp")
        or status.get("phase", "Pending") != "Pending"
        or any(c.get("type") == "PodScheduled" for c in status.get("conditions") or [])
    ):
        return ""
    return scheduler


def unscheduled_hint(scheduler: str, waited: int) -> str:
    return (
        f"the job's pods are Pending and no scheduler has taken them after {waited} s: no "
        f"scheduler named {scheduler} seems to run in this cluster (is it installed? kubectl "
        f"get pods -A | grep {scheduler}), or fix %schedulerName={scheduler}"
    )
