"""What the default scheduler's filter plugins decide about a pod and a node (v1.31), in
their words, and the FailedScheduling text that sums their verdicts over the nodes.

Per node, the first plugin that refuses gives the node's reason, in the default profile's
order: TaintToleration (`node(s) had untolerated taint {key: value}`: a NoSchedule or
NoExecute taint no toleration matches; PreferNoSchedule only scores), NodeAffinity
(`node(s) didn't match Pod's node affinity/selector`: nodeSelector, and required node
affinity's terms: In, NotIn, Exists, DoesNotExist, Gt, Lt on labels, metadata.name in
matchFields), NodeResourcesFit (`Insufficient <resource>`, `Too many pods`: requests against
allocatable minus what the node's pods request), VolumeRestrictions (ReadWriteOncePod).
Taints and affinity are UnschedulableAndUnresolvable (preemption cannot help), resources
Unschedulable. framework.FitError words the sum: `0/N nodes are available: <PreFilter
message>.` or `0/N nodes are available: <count> <reason>, ...` (the histogram sorted as
strings), then the PostFilter plugin's sentence: DefaultPreemption's `preemption: 0/N nodes
are available: <count> <reason>.` (see preemption.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

DEFAULT_CAPACITY = {
    "cpu": "8",
    "memory": "32Gi",
    "ephemeral-storage": "100Gi",
    "nvidia.com/gpu": "0",
    "pods": "110",
}
UNRESOLVABLE = "UnschedulableAndUnresolvable"
UNSCHEDULABLE = "Unschedulable"
NODE_AFFINITY_REASON = "node(s) didn't match Pod's node affinity/selector"
RWOP_REASON = (
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)


@dataclass(frozen=True)
class Verdict:
    """A plugin's refusal of one node: its reasons and whether preemption could help."""

    reasons: tuple[str, ...]
    code: str = UNSCHEDULABLE

    @property
    def resolvable(self) -> bool:
        return self.code == UNSCHEDULABLE


def parse_capacity(capacity: Mapping[str, Any] | None) -> dict[str, Decimal]:
    merged = {**DEFAULT_CAPACITY, **{k: str(v) for k, v in (capacity or {}).items()}}
    return {k: parse_quantity(v) for k, v in merged.items()}


def pod_requests(pod: dict[str, Any]) -> dict[str, Decimal]:
    """Effective requests: the sum over containers, or the largest init container if larger."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}

    def requests(c: dict[str, Any]) -> dict[str, Decimal]:
        res = c.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {k: parse_quantity(v) for k, v in merged.items()}

    for c in spec.get("containers") or []:
        for k, v in requests(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in requests(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    total["pods"] = Decimal(1)
    return total


def priority(pod: dict[str, Any]) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def insufficient(
    capacity: dict[str, Decimal], used: dict[str, Decimal], wanted: dict[str, Decimal]
) -> list[str]:
    """NodeResourcesFit's reasons; zero requests always fit."""
    short = []
    for name, amount in wanted.items():
        if amount <= 0:
            continue
        free = capacity.get(name, Decimal(0)) - used.get(name, Decimal(0))
        if amount > free:
            short.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return sorted(short)


def add(used: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for k, v in more.items():
        used[k] = used.get(k, Decimal(0)) + v


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Iterable[Mapping[str, Any]],
    effects: tuple[str, ...] = ("NoSchedule", "NoExecute"),
) -> Mapping[str, Any] | None:
    """v1helper.FindMatchingUntoleratedTaint: the first taint of `effects` not tolerated."""
    tols = list(tolerations)
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tols):
            return taint
    return None


def taint_verdict(pod: dict[str, Any], taints: Iterable[Mapping[str, Any]]) -> Verdict | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    taint = untolerated_taint(taints, tolerations)
    if taint is None:
        return None
    reason = f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"
    return Verdict((reason,), UNRESOLVABLE)


def _requirement_matches(req: Mapping[str, Any], value: str | None) -> bool:
    operator, values = req.get("operator"), [str(v) for v in req.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, bound = int(value), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    """NodeSelectorTerm: its requirements ANDed; an empty term matches no node."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for req in expressions:
        if not _requirement_matches(req, labels.get(req.get("key", ""))):
            return False
    for req in fields:
        value = node_name if req.get("key") == "metadata.name" else None
        if not _requirement_matches(req, value):
            return False
    return True


def affinity_matches(pod: dict[str, Any], labels: Mapping[str, str], node_name: str) -> bool:
    """nodeSelector (every label equal) and required node affinity (terms ORed)."""
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required is None:
        return True
    return any(_term_matches(t, labels, node_name) for t in required)


def affinity_verdict(
    pod: dict[str, Any], labels: Mapping[str, str], node_name: str
) -> Verdict | None:
    if affinity_matches(pod, labels, node_name):
        return None
    return Verdict((NODE_AFFINITY_REASON,), UNRESOLVABLE)


def resources_verdict(
    capacity: dict[str, Decimal], used: dict[str, Decimal], wanted: dict[str, Decimal]
) -> Verdict | None:
    reasons = insufficient(capacity, used, wanted)
    return Verdict(tuple(reasons)) if reasons else None


def histogram(verdicts: Iterable[Verdict]) -> str:
    """`2 Insufficient cpu, 1 node(s) had untolerated taint {a: }`: counts of each reason,
    sorted as strings (Go's sort.Strings)."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        for reason in verdict.reasons:
            counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))


def fit_error(
    num_nodes: int,
    verdicts: Iterable[Verdict] = (),
    prefilter: str = "",
    postfilter: str = "",
) -> str:
    """framework.FitError.Error()."""
    message = f"0/{num_nodes} nodes are available:"
    if prefilter:
        message += f" {prefilter}."
    else:
        reasons = histogram(verdicts)
        if reasons:
            message += f" {reasons}."
    if postfilter:
        message += f" {postfilter}"  # a sentence of its own (no doubled period since v1.30)
    return message


def format_quantity(value: Decimal, name: str) -> str:
    if name in ("memory", "ephemeral-storage") and value == value.to_integral_value():
        gi = value / (1024**3)
        return f"{gi.normalize():f}Gi" if gi == gi.to_integral_value() else f"{int(value)}"
    return f"{value.normalize():f}"
