"""The cluster's nodes: what a test says about each (name, labels, taints, capacity) and
the Node objects the API serves for them.

Every node is this machine: its pods run as local processes whichever node they are bound
to. What differs is what the scheduler and the kubelet see: labels (`nvidia.com/gpu.product`
...), taints, capacity, and each node's address (status.hostIP of its pods): 127.0.0.1 for
the first node, 127.0.0.2 for the second, and so on (pods have addresses of their own,
127.1-254.x.y, see runtime.py).
"""

from __future__ import annotations

import copy
import hashlib
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .scheduler import format_quantity, parse_capacity
from .store import Obj
from .timeutil import rfc3339
from .validation import dns1123_subdomain

DEFAULT_NODE = "fake-node"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_KEYS = ("name", "labels", "taints", "capacity")
KUBELET_VERSION = "v1.31.0-fakecluster"


@dataclass(frozen=True)
class Node:
    """One node: the scheduler filters on labels, taints and capacity; the kubelet reports
    `ip` as its pods' hostIP."""

    name: str
    ip: str
    capacity: dict[str, Decimal]
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()

    @property
    def all_labels(self) -> dict[str, str]:
        """The labels the kubelet sets on its Node, then the test's."""
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }

    def to_object(self) -> Obj:
        resources = {k: format_quantity(v, k) for k, v in self.capacity.items()}
        spec: Obj = {}
        if self.taints:
            spec["taints"] = [copy.deepcopy(dict(t)) for t in self.taints]
        now = rfc3339()
        ident = hashlib.sha256(self.name.encode()).hexdigest()[:32]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.all_labels},
            "spec": spec,
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "addresses": [
                    {"type": "InternalIP", "address": self.ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "nodeInfo": {
                    "machineID": ident,
                    "systemUUID": ident,
                    "bootID": ident,
                    "kernelVersion": platform.release(),
                    "osImage": "fakecluster (this machine)",
                    "containerRuntimeVersion": "fake://1.0",
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        }


def node_ip(index: int) -> str:
    return f"127.0.0.{1 + index}"


def parse_nodes(
    nodes: Iterable[Mapping[str, Any]] | None, capacity: Mapping[str, Any] | None = None
) -> list[Node]:
    """FakeCluster(nodes=...) as Nodes; None: the one node `fake-node` with `capacity` (the
    default for a node that gives none). A bad entry is a ValueError naming it and why."""
    given = [{"name": DEFAULT_NODE}] if nodes is None else list(nodes)
    if not given:
        raise ValueError("FakeCluster(nodes=[]): a cluster needs at least one node")
    if len(given) > 254:
        raise ValueError("FakeCluster(nodes=...): at most 254 nodes")
    out: list[Node] = []
    for i, spec in enumerate(given):
        where = f"FakeCluster(nodes=...): node {i}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}: must be a mapping with keys {', '.join(NODE_KEYS)}")
        unknown = sorted(set(spec) - set(NODE_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; known: {', '.join(NODE_KEYS)}")
        name = spec.get("name")
        if not isinstance(name, str) or dns1123_subdomain(name):
            raise ValueError(f"{where}: name must be a DNS subdomain, got {name!r}")
        where = f"FakeCluster(nodes=...): node {name!r}"
        if any(n.name == name for n in out):
            raise ValueError(f"{where}: the name is used twice")
        labels = spec.get("labels") or {}
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError(f"{where}: labels must map strings to strings")
        try:
            node_capacity = parse_capacity({**(capacity or {}), **(spec.get("capacity") or {})})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: capacity: {exc}") from exc
        out.append(
            Node(
                name=name,
                ip=node_ip(i),
                capacity=node_capacity,
                labels=dict(labels),
                taints=tuple(_taint(t, where) for t in spec.get("taints") or ()),
            )
        )
    return out


def _taint(taint: Any, where: str) -> dict[str, str]:
    if not isinstance(taint, Mapping):
        raise ValueError(f"{where}: a taint must be a mapping {{key, value, effect}}")
    unknown = sorted(set(taint) - {"key", "value", "effect"})
    if unknown:
        raise ValueError(f"{where}: taint has unknown key(s) {unknown}; known: key, value, effect")
    key, effect = taint.get("key"), taint.get("effect")
    if not isinstance(key, str) or not key:
        raise ValueError(f"{where}: a taint needs a key")
    if effect not in TAINT_EFFECTS:
        raise ValueError(
            f"{where}: taint {key}: effect must be one of {', '.join(TAINT_EFFECTS)}, got "
            f"{effect!r}"
        )
    out = {"key": key, "effect": effect}
    if taint.get("value"):
        out["value"] = str(taint["value"])
    return out
