"""DefaultPreemption (v1.31): the PostFilter that runs when no node fits a pod.

A pod may preempt unless its preemptionPolicy is Never (`preemption: not eligible due to
preemptionPolicy=Never.`) or pods it preempted are still terminating on its nominated node
(`preemption: not eligible due to a terminating pod on the nominated node.`). On each node
whose refusal was resolvable (resources, ReadWriteOncePod) the pods of lower priority are
the potential victims: none (`No preemption victims found for incoming pod`), or the pod
still does not fit without all of them (the filter's reason again), or the fewest of them,
highest priority reprieved first, make room. No candidate node: `preemption: 0/N nodes are
available: <histogram>.` with `Preemption is not helpful for scheduling` for the nodes
refused for good (taints, affinity, a claim). Else the node picked is the one whose victims
have the lowest highest priority, then the lowest sum of priorities, the fewest victims,
the latest start; the victims get the DisruptionTarget condition, the event Preempted and a
graceful delete, and the pod is nominated to the node (status.nominatedNodeName) until they
are gone. PodDisruptionBudgets and nominated pods' reservations are not simulated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .scheduler import UNRESOLVABLE, Verdict, fit_error, priority
from .store import Obj

NOT_HELPFUL = Verdict(("Preemption is not helpful for scheduling",), UNRESOLVABLE)
NO_VICTIMS = Verdict(("No preemption victims found for incoming pod",), UNRESOLVABLE)
NEVER = "preemption: not eligible due to preemptionPolicy=Never."
TERMINATING = "preemption: not eligible due to a terminating pod on the nominated node."
DISRUPTION_REASON = "PreemptionByScheduler"
MAX_INT32 = 2**31 - 1
#: fits(node name, uids of pods taken away) -> the node's refusal, or None when it fits.
FitCheck = Callable[[str, frozenset[str]], "Verdict | None"]


@dataclass(frozen=True)
class Candidate:
    node: str
    victims: tuple[Obj, ...]


def _start(pod: Obj) -> str:
    return str(
        (pod.get("status") or {}).get("startTime") or pod["metadata"].get("creationTimestamp") or ""
    )


def _importance(pod: Obj) -> tuple[int, str]:
    """MoreImportantPod as a sort key: higher priority, then earlier start, first."""
    return -priority(pod), _start(pod)


def terminating_by_preemption(pod: Obj) -> bool:
    if not pod["metadata"].get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "DisruptionTarget"
        and c.get("status") == "True"
        and c.get("reason") == DISRUPTION_REASON
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def ineligible(
    pod: Obj, verdicts: Mapping[str, Verdict], pods_on: Mapping[str, Sequence[Obj]]
) -> str:
    """PodEligibleToPreemptOthers: the PostFilter message when the pod may not preempt."""
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return NEVER
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated:
        verdict = verdicts.get(nominated)
        if verdict is not None and not verdict.resolvable:
            return ""
        mine = priority(pod)
        for other in pods_on.get(nominated, ()):
            if priority(other) < mine and terminating_by_preemption(other):
                return TERMINATING
    return ""


def _victims_on(
    pod: Obj, node: str, on_node: Sequence[Obj], fits: FitCheck
) -> tuple[Verdict | None, tuple[Obj, ...]]:
    """SelectVictimsOnNode: (refusal, ()) or (None, victims)."""
    mine = priority(pod)
    potential = sorted((p for p in on_node if priority(p) < mine), key=_importance)
    if not potential:
        return NO_VICTIMS, ()
    removed = {p["metadata"]["uid"] for p in potential}
    refusal = fits(node, frozenset(removed))
    if refusal is not None:
        return refusal, ()
    victims = []
    for p in potential:  # reprieve the most important first
        removed.discard(p["metadata"]["uid"])
        if fits(node, frozenset(removed)) is not None:
            removed.add(p["metadata"]["uid"])
            victims.append(p)
    return None, tuple(victims)


def _pick(candidates: list[Candidate]) -> Candidate:
    """pickOneNodeForPreemption, PodDisruptionBudgets aside: the lowest highest priority,
    the lowest sum of priorities, the fewest victims, then the latest start of the most
    important victims; the first node left."""

    def rank(c: Candidate) -> tuple[int, int, int]:
        prios = [priority(v) for v in c.victims]
        return max(prios), sum(p + MAX_INT32 + 1 for p in prios), len(prios)

    best = min(rank(c) for c in candidates)
    left = [c for c in candidates if rank(c) == best]

    def earliest_top(c: Candidate) -> str:
        return min(_start(v) for v in c.victims if priority(v) == best[0])

    latest = max(earliest_top(c) for c in left)
    return next(c for c in left if earliest_top(c) == latest)


def preempt(
    pod: Obj,
    nodes: Sequence[str],
    verdicts: Mapping[str, Verdict],
    pods_on: Mapping[str, Sequence[Obj]],
    fits: FitCheck,
) -> Candidate | str:
    """A node and its victims, or the PostFilter message saying why preemption cannot help."""
    why = ineligible(pod, verdicts, pods_on)
    if why:
        return why
    statuses: list[Verdict] = []
    candidates: list[Candidate] = []
    for node in nodes:
        verdict = verdicts.get(node)
        if verdict is None or not verdict.resolvable:
            statuses.append(NOT_HELPFUL)
            continue
        refusal, victims = _victims_on(pod, node, pods_on.get(node, ()), fits)
        if refusal is not None:
            statuses.append(refusal)
        else:
            candidates.append(Candidate(node, victims))
    if not candidates:
        return "preemption: " + fit_error(len(nodes), statuses)
    return _pick(candidates)
