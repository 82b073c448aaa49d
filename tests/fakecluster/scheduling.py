"""default-scheduler: which pending pod goes to which node, and what it records.

A pass over the pending pods (highest priority first, then oldest), as the kubelet's worker
ticks or a pod is added: pods of another schedulerName are left alone, pods with
schedulingGates get PodScheduled=False SchedulingGated and no event. For the others:
PreFilter (storage.py: claims), Filter on every node (scheduler.py), the feasible node with
the fewest untolerated PreferNoSchedule taints, then the least requested (cpu and memory
fractions), then the first listed, gets the pod (binding: spec.nodeName, PodScheduled=True,
Normal Scheduled `Successfully assigned ns/pod to node`). None: DefaultPreemption
(preemption.py), then PodScheduled=False Unschedulable and Warning FailedScheduling with
the FitError text, recorded again only when it changes. Unlike upstream, ties are not
broken at random, and a node is picked for a pod only once its previous pods of the pass
are counted (no parallel binding).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from decimal import Decimal

from . import errors as E
from . import storage
from .faults import Faults
from .nodes import Node
from .preemption import DISRUPTION_REASON, Candidate, preempt
from .recorder import EventRecorder
from .registry import Registry
from .scheduler import (
    RWOP_REASON,
    Verdict,
    add,
    affinity_verdict,
    fit_error,
    pod_requests,
    priority,
    resources_verdict,
    taint_verdict,
    untolerated_taint,
)
from .store import Obj
from .timeutil import rfc3339

NAME = "default-scheduler"
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Scheduler:
    """The scheduling pass; the kubelet's worker thread runs it."""

    def __init__(self, registry: Registry, nodes: Sequence[Node], faults: Faults) -> None:
        self.registry = registry
        self.nodes = list(nodes)
        self.by_name = {n.name: n for n in self.nodes}
        self.faults = faults
        self.recorder = EventRecorder(registry, NAME)
        self._reported: dict[str, str] = {}
        self._gated: set[str] = set()

    def forget(self, uid: str) -> None:
        self._reported.pop(uid, None)
        self._gated.discard(uid)

    # -- the pass ------------------------------------------------------------------------
    def schedule_pending(self) -> None:
        pods, _ = self.registry.store.list("pods")
        on: dict[str, list[Obj]] = {n.name: [] for n in self.nodes}
        pending = []
        for p in pods:
            node = (p.get("spec") or {}).get("nodeName")
            if node:
                if node in on and not _terminal(p):
                    on[node].append(p)
            elif (
                not p["metadata"].get("deletionTimestamp")
                and (p.get("spec") or {}).get("schedulerName", NAME) == NAME
            ):
                pending.append(p)
        pending.sort(key=lambda p: (-priority(p), int(p["metadata"]["resourceVersion"])))
        for pod in pending:
            if (pod.get("spec") or {}).get("schedulingGates"):
                self._mark_gated(pod)
                continue
            node = self._cycle(pod, on)
            if node is not None and self._bind(pod, node):
                on[node].append(pod)

    def _claim(self, namespace: str, name: str) -> Obj | None:
        return self.registry.store.get("persistentvolumeclaims", namespace, name)

    def _filter(
        self, pod: Obj, node: Node, on: dict[str, list[Obj]], removed: frozenset[str]
    ) -> Verdict | None:
        """The Filter plugins in the default profile's order; the first refusal."""
        verdict = taint_verdict(pod, node.taints) or affinity_verdict(
            pod, node.all_labels, node.name
        )
        if verdict is not None:
            return verdict
        used: dict[str, Decimal] = {}
        for other in on[node.name]:
            if other["metadata"]["uid"] not in removed:
                add(used, pod_requests(other))
        verdict = resources_verdict(node.capacity, used, pod_requests(pod))
        if verdict is not None:
            return verdict
        exclusive = storage.exclusive_claims(pod, self._claim)
        if exclusive:
            namespace = pod["metadata"].get("namespace", "")
            for others in on.values():
                for other in others:
                    if other["metadata"]["uid"] in removed:
                        continue
                    if storage.uses_any(other, namespace, exclusive):
                        return Verdict((RWOP_REASON,))
        return None

    def _score(self, pod: Obj, node: Node, on: dict[str, list[Obj]]) -> tuple[int, Decimal]:
        """Lower is better: untolerated PreferNoSchedule taints, then the requested share."""
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        soft = sum(
            1
            for taint in node.taints
            if untolerated_taint([taint], tolerations, ("PreferNoSchedule",)) is not None
        )
        used: dict[str, Decimal] = {}
        for other in on[node.name] + [pod]:
            add(used, pod_requests(other))
        share = Decimal(0)
        for resource in ("cpu", "memory"):
            capacity = node.capacity.get(resource, Decimal(0))
            if capacity > 0:
                share += used.get(resource, Decimal(0)) / capacity
        return soft, share

    def _cycle(self, pod: Obj, on: dict[str, list[Obj]]) -> str | None:
        """One scheduling cycle: the node for the pod, or None (recorded why)."""
        names = [n.name for n in self.nodes]
        fault = self.faults.peek("unschedulable", pod)
        if fault is not None:
            self.faults.count(fault)
        prefilter = storage.prefilter(pod, self._claim)
        verdicts: dict[str, Verdict] = {}
        fits: Callable[[str, frozenset[str]], Verdict | None]
        if prefilter:
            refusal = Verdict((prefilter,), "UnschedulableAndUnresolvable")
            verdicts = {name: refusal for name in names}

            def fits(node: str, removed: frozenset[str]) -> Verdict | None:
                return refusal

        elif fault is not None:
            short = Verdict((f"Insufficient {fault.params['resource']}",))
            verdicts = {name: short for name in names}

            def fits(node: str, removed: frozenset[str]) -> Verdict | None:
                return short

        else:
            feasible = []
            for node in self.nodes:
                verdict = self._filter(pod, node, on, frozenset())
                if verdict is None:
                    feasible.append(node)
                else:
                    verdicts[node.name] = verdict
            if feasible:
                return min(feasible, key=lambda n: self._score(pod, n, on)).name

            def fits(node: str, removed: frozenset[str]) -> Verdict | None:
                return self._filter(pod, self.by_name[node], on, removed)

        outcome = preempt(pod, names, verdicts, on, fits)
        if isinstance(outcome, Candidate):
            self._preempt(pod, outcome)
            message = fit_error(len(names), verdicts.values(), prefilter)
        else:
            message = fit_error(len(names), verdicts.values(), prefilter, outcome)
        self._mark_unschedulable(pod, message)
        return None

    # -- writes --------------------------------------------------------------------------
    def _mark_gated(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta["uid"] in self._gated:
            return
        self._gated.add(meta["uid"])
        self._set_scheduled_condition(pod, "SchedulingGated", GATED_MESSAGE)

    def _set_scheduled_condition(self, pod: Obj, reason: str, message: str) -> None:
        meta = pod["metadata"]

        def mark(p: Obj) -> bool | None:
            if p["metadata"]["uid"] != meta["uid"]:
                return False
            status = p.setdefault("status", {})
            status["phase"] = "Pending"
            others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [
                *others,
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(),
                    "reason": reason,
                    "message": message,
                },
            ]
            return None

        self.registry.mutate("pods", meta["namespace"], meta["name"], mark)

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        self._gated.discard(meta["uid"])
        if self._reported.get(meta["uid"]) == message:
            return
        self._reported[meta["uid"]] = message
        self._set_scheduled_condition(pod, "Unschedulable", message)
        self.recorder.event(pod, "Warning", "FailedScheduling", message)

    def _preempt(self, pod: Obj, candidate: Candidate) -> None:
        """prepareCandidate: the victims go (DisruptionTarget, Preempted, graceful delete)
        and the pod is nominated to the node."""
        pods = self.registry.by_plural("pods")
        scheduler = (pod.get("spec") or {}).get("schedulerName") or NAME
        for victim in candidate.victims:
            vmeta = victim["metadata"]

            def disrupt(p: Obj, uid: str = vmeta["uid"]) -> bool | None:
                if p["metadata"]["uid"] != uid:
                    return False
                status = p.setdefault("status", {})
                others = [
                    c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"
                ]
                status["conditions"] = [
                    *others,
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": rfc3339(),
                        "reason": DISRUPTION_REASON,
                        "message": f"{scheduler}: preempting to accommodate a higher priority pod",
                    },
                ]
                return None

            self.registry.mutate("pods", vmeta["namespace"], vmeta["name"], disrupt)
            self.recorder.event(
                victim,
                "Normal",
                "Preempted",
                f"Preempted by pod {pod['metadata']['uid']} on node {candidate.node}",
            )
            with contextlib.suppress(E.StatusError):
                self.registry.delete(pods, vmeta["namespace"], vmeta["name"])
        meta = pod["metadata"]

        def nominate(p: Obj) -> bool | None:
            if p["metadata"]["uid"] != meta["uid"]:
                return False
            p.setdefault("status", {})["nominatedNodeName"] = candidate.node
            return None

        self.registry.mutate("pods", meta["namespace"], meta["name"], nominate)

    def _bind(self, pod: Obj, node: str) -> bool:
        meta = pod["metadata"]
        self.forget(meta["uid"])

        def bind(p: Obj) -> bool | None:
            if p["metadata"]["uid"] != meta["uid"] or p["spec"].get("nodeName"):
                return False
            p["spec"]["nodeName"] = node
            status = p.setdefault("status", {})
            status.pop("nominatedNodeName", None)
            others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = [
                *others,
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(),
                },
            ]
            return None

        bound = self.registry.mutate("pods", meta["namespace"], meta["name"], bind)
        if bound is None or bound["spec"].get("nodeName") != node:
            return False
        self.recorder.event(
            bound,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
        )
        return True
