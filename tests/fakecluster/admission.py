"""The kube-apiserver's built-in mutating admission plugins for pods (v1.31), in their
order, and the PriorityClass rules.

- ServiceAccount: the pod runs as `default` unless it names an account; an account that does
  not exist refuses it (403 `pods "x" is forbidden: error looking up service account
  ns/trainer: serviceaccount "trainer" not found`); a pod without imagePullSecrets gets its
  account's. (The API token volume `kube-api-access-*` is not added.)
- Priority: priorityClassName is resolved to spec.priority and preemptionPolicy (no name:
  the globalDefault class if any, else 0 and PreemptLowerPriority); an unknown class refuses
  the pod (`no PriorityClass with name high was found`), so does a spec.priority that differs.
- DefaultTolerationSeconds: tolerations of node.kubernetes.io/not-ready and unreachable
  (NoExecute, 300s) unless the pod tolerates them already.
A refusal names the pod as the request did: a pod created with generateName is named by its
prefix (names are generated after mutating admission).
PriorityClasses: values above 1000000000 and `system-` names are for the two built-in
classes (system-cluster-critical, system-node-critical), one globalDefault at most, value
and preemptionPolicy immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import errors as E
from .errors import FieldError
from .resources import CORE, PRIORITY_CLASSES
from .store import Obj

DEFAULT_SERVICE_ACCOUNT = "default"
HIGHEST_USER_PRIORITY = 1_000_000_000
PREEMPTION_POLICIES = ["Never", "PreemptLowerPriority"]
SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": (
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    "system-cluster-critical": (
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to "
        "another node if necessary.",
    ),
}
NODE_PROBLEM_TOLERATIONS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def _forbidden(name: str, why: str) -> E.StatusError:
    return CORE["pods"].forbidden(name, why)


def admit_service_account(pod: Obj, shown: str, account: Callable[[str, str], Obj | None]) -> None:
    """The ServiceAccount plugin's Admit on create; `account(namespace, name)` reads one."""
    spec = pod.setdefault("spec", {})
    namespace = pod["metadata"].get("namespace", "")
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
    spec["serviceAccountName"] = name
    found = account(namespace, name)
    if found is None:
        raise _forbidden(
            shown,
            f'error looking up service account {namespace}/{name}: serviceaccount "{name}" '
            "not found",
        )
    if not spec.get("imagePullSecrets") and found.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [
            {"name": ref.get("name", "")} for ref in found["imagePullSecrets"]
        ]


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The globalDefault class (the lowest value if several, as upstream picks)."""
    defaults = [c for c in classes if c.get("globalDefault")]
    return min(defaults, key=lambda c: int(c.get("value", 0))) if defaults else None


def admit_priority(pod: Obj, shown: str, classes: Iterable[Obj]) -> None:
    """The Priority plugin's Admit on create."""
    spec = pod.setdefault("spec", {})
    by_name = {c["metadata"]["name"]: c for c in classes}
    name = spec.get("priorityClassName") or ""
    if name:
        found = by_name.get(name)
        if found is None:
            raise _forbidden(shown, f"no PriorityClass with name {name} was found")
    else:
        found = default_class(by_name.values())
        if found is not None:
            spec["priorityClassName"] = found["metadata"]["name"]
    value = int(found.get("value", 0)) if found is not None else 0
    policy = (found or {}).get("preemptionPolicy") or "PreemptLowerPriority"
    if spec.get("priority") is not None and spec["priority"] != value:
        raise _forbidden(
            shown,
            f"the integer value of priority ({spec['priority']}) must not be provided in pod "
            f"spec; priority admission controller computed {value} from the given "
            "PriorityClass name",
        )
    if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
        raise _forbidden(
            shown,
            f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
            f"provided in pod spec; priority admission controller computed {policy} from the "
            "given PriorityClass name",
        )
    spec["priority"] = value
    spec["preemptionPolicy"] = policy


def default_toleration_seconds(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    tolerations: list[dict[str, Any]] = list(spec.get("tolerations") or [])
    for key in NODE_PROBLEM_TOLERATIONS:
        if any(
            (t.get("key") or "") in ("", key) and (t.get("effect") or "") in ("", "NoExecute")
            for t in tolerations
        ):
            continue
        tolerations.append(
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        )
    spec["tolerations"] = tolerations


# -- PriorityClasses ----------------------------------------------------------------------
def system_priority_classes() -> list[Obj]:
    return [
        {
            "apiVersion": PRIORITY_CLASSES.api_version,
            "kind": PRIORITY_CLASSES.kind,
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        }
        for name, (value, description) in SYSTEM_PRIORITY_CLASSES.items()
    ]


def default_priority_class(pc: Obj) -> None:
    pc.setdefault("preemptionPolicy", "PreemptLowerPriority")


def priority_class_errors(pc: Obj, old: Obj | None) -> list[FieldError]:
    """ValidatePriorityClass(Update)."""
    errs: list[FieldError] = []
    name = pc["metadata"]["name"]
    value = pc.get("value", 0)
    if not isinstance(value, int) or isinstance(value, bool):
        errs.append(E.invalid("value", value, "must be an integer"))
        return errs
    if name.startswith("system-"):
        known = SYSTEM_PRIORITY_CLASSES.get(name)
        if known is None or known[0] != value:
            errs.append(
                E.forbidden(
                    "metadata.name",
                    "priority class names with 'system-' prefix are reserved for system use "
                    f"only. error: {name} is not a known system priority class",
                )
            )
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(
            E.forbidden(
                "value",
                f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}",
            )
        )
    policy = pc.get("preemptionPolicy")
    if policy not in PREEMPTION_POLICIES:
        errs.append(E.not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
    if old is not None:
        if old.get("value") != value:
            errs.append(E.forbidden("value", "may not be changed in an update."))
        if old.get("preemptionPolicy") != policy:
            errs.append(E.invalid("preemptionPolicy", policy, "field is immutable"))
    return errs


def admit_priority_class(pc: Obj, old: Obj | None, classes: Iterable[Obj]) -> None:
    """The Priority plugin on PriorityClasses: one globalDefault at most."""
    if not pc.get("globalDefault"):
        return
    current = default_class(classes)
    if current is None:
        return
    name = pc["metadata"]["name"]
    if old is None or current["metadata"]["name"] != name:
        raise PRIORITY_CLASSES.forbidden(
            name,
            f"PriorityClass {current['metadata']['name']} is already marked as default. Only "
            "one default can exist",
        )
