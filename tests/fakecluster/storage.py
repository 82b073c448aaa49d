"""PersistentVolumeClaims: what the API server, the PV controller, the scheduler's volume
plugins and the attach/detach controller make of them (v1.31).

- A claim of StorageClass `standard` (the default class, set when the claim names none) is
  provisioned and bound at once: spec.volumeName `pvc-<claim uid>`, status Bound with its
  access modes and requested capacity, as a dynamic provisioner does. Any other class
  (`manual`, or "" for static binding) finds no volume: the claim stays Pending, and the PV
  controller says why (Warning ProvisioningFailed `storageclass.storage.k8s.io "manual" not
  found`, or Normal FailedBinding `no persistent volumes available for this claim and no
  storage class is set`). StorageClass and PersistentVolume objects are not served.
- The scheduler (PreFilter): a claim that does not exist refuses the pod on every node
  (`persistentvolumeclaim "x" not found`, VolumeRestrictions), an unbound one too (`pod has
  unbound immediate PersistentVolumeClaims`, VolumeBinding); a ReadWriteOncePod claim that
  another pod uses refuses it (Filter, preemption may help).
- A ReadWriteOnce claim is attached to one node at a time: a pod on another node waits in
  ContainerCreating, with attachdetach-controller's Warning FailedAttachVolume `Multi-Attach
  error for volume "pvc-..." Volume is already used by pod(s) a, b` until the pods there are
  gone; ReadWriteMany and ReadOnlyMany claims attach anywhere.
- The data of a bound claim is one directory (runtime.py) that every pod mounting it shares,
  kept until the claim is deleted (reclaimPolicy Delete). Deleting a claim in use is not held
  back (the pvc-protection finalizer is not simulated).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable

from kubernetes.utils import parse_quantity

from . import errors as E
from .errors import FieldError
from .store import Obj

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
DEFAULT_CLASS = "standard"
PROVISIONER = "fakecluster.local/hostpath"
SHARED_MODES = ("ReadWriteMany", "ReadOnlyMany")
ClaimLookup = Callable[[str, str], "Obj | None"]


def claim_volumes(pod: Obj) -> list[tuple[str, str, bool]]:
    """(volume name, claim name, readOnly) of the pod's persistentVolumeClaim volumes."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        source = vol.get("persistentVolumeClaim")
        if isinstance(source, dict):
            out.append(
                (vol.get("name", ""), source.get("claimName", ""), bool(source.get("readOnly")))
            )
    return out


def access_modes(claim: Obj) -> list[str]:
    return list((claim.get("spec") or {}).get("accessModes") or [])


def bound(claim: Obj) -> bool:
    return (claim.get("status") or {}).get("phase") == "Bound" and bool(
        (claim.get("spec") or {}).get("volumeName")
    )


def volume_name(claim: Obj) -> str:
    return str((claim.get("spec") or {}).get("volumeName") or "")


# -- the API server ------------------------------------------------------------------------
def default_claim(claim: Obj, old: Obj | None) -> None:
    spec = claim.setdefault("spec", {})
    if old is not None:
        for key in ("volumeName", "storageClassName", "volumeMode"):
            if key in (old.get("spec") or {}):
                spec[key] = old["spec"][key]
        return
    spec.setdefault("volumeMode", "Filesystem")
    if "storageClassName" not in spec:  # the DefaultStorageClass admission plugin
        spec["storageClassName"] = DEFAULT_CLASS
    claim["status"] = {"phase": "Pending"}


def claim_errors(claim: Obj, old: Obj | None) -> list[FieldError]:
    """ValidatePersistentVolumeClaim(Update): access modes, the storage request, and a spec
    that only grows its request once created."""
    spec = claim.get("spec") or {}
    errs: list[FieldError] = []
    if old is not None:
        strip = ("resources", "volumeAttributesClassName")
        if {k: v for k, v in spec.items() if k not in strip} != {
            k: v for k, v in (old.get("spec") or {}).items() if k not in strip
        }:
            errs.append(
                E.forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            )
        return errs
    modes = spec.get("accessModes") or []
    if not modes:
        errs.append(E.required("spec.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(E.not_supported("spec.accessModes", mode, list(ACCESS_MODES)))
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        errs.append(
            E.forbidden("spec.accessModes", "may not use ReadWriteOncePod with other access modes")
        )
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        errs.append(E.required("spec.resources[storage]"))
    else:
        try:
            if parse_quantity(storage) <= 0:
                errs.append(
                    E.invalid("spec.resources[storage]", storage, "must be greater than zero")
                )
        except (ValueError, TypeError):
            errs.append(
                E.invalid(
                    "spec.resources.requests[storage]",
                    storage,
                    "quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
            )
    return errs


def provision(claim: Obj) -> None:
    """The PV controller and the class's provisioner, at once: a claim of the default class
    is bound to a new volume `pvc-<uid>`; others stay Pending."""
    spec = claim.get("spec") or {}
    if spec.get("storageClassName") != DEFAULT_CLASS or spec.get("volumeName"):
        return
    spec["volumeName"] = f"pvc-{claim['metadata']['uid']}"
    annotations = claim["metadata"].setdefault("annotations", {})
    annotations.update(
        {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
            "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
            "volume.kubernetes.io/storage-provisioner": PROVISIONER,
        }
    )
    claim["status"] = {
        "phase": "Bound",
        "accessModes": list(spec.get("accessModes") or []),
        "capacity": {"storage": copy.deepcopy(spec["resources"]["requests"]["storage"])},
    }


def unbound_event(claim: Obj) -> tuple[str, str, str] | None:
    """(type, reason, message) of the PV controller about a claim it cannot bind."""
    if bound(claim):
        return None
    cls = (claim.get("spec") or {}).get("storageClassName")
    if not cls:
        return (
            "Normal",
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        )
    return "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{cls}" not found'


# -- the scheduler -------------------------------------------------------------------------
def prefilter(pod: Obj, claim_of: ClaimLookup) -> str:
    """VolumeRestrictions then VolumeBinding PreFilter: why no node can take the pod's
    claims ("" when they can)."""
    namespace = pod["metadata"].get("namespace", "")
    claims = []
    for _, name, _ in claim_volumes(pod):
        claim = claim_of(namespace, name)
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        claims.append(claim)
    unbound = False
    for claim in claims:
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{claim["metadata"]["name"]}" is being deleted'
        unbound = unbound or not bound(claim)
    return "pod has unbound immediate PersistentVolumeClaims" if unbound else ""


def exclusive_claims(pod: Obj, claim_of: ClaimLookup) -> set[str]:
    """The pod's ReadWriteOncePod claims, by name."""
    namespace = pod["metadata"].get("namespace", "")
    out = set()
    for _, name, _ in claim_volumes(pod):
        claim = claim_of(namespace, name)
        if claim is not None and "ReadWriteOncePod" in access_modes(claim):
            out.add(name)
    return out


def uses_any(pod: Obj, namespace: str, claims: set[str]) -> bool:
    if pod["metadata"].get("namespace") != namespace:
        return False
    return any(name in claims for _, name, _ in claim_volumes(pod))


# -- the attach/detach controller ----------------------------------------------------------
class Attachments:
    """Which node each single-node volume is attached to; a volume is detached once no
    running pod there uses it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, str] = {}

    def attach(self, volume: str, node: str, users: Callable[[str], Iterable[Obj]]) -> list[Obj]:
        """Attach `volume` to `node`; [] when done, else the pods that hold it on the node
        it is attached to (`users(node)`: the live pods there that use it)."""
        with self._lock:
            current = self._nodes.get(volume)
            if current is not None and current != node:
                holders = list(users(current))
                if holders:
                    return holders
            self._nodes[volume] = node
            return []

    def forget(self, volume: str) -> None:
        with self._lock:
            self._nodes.pop(volume, None)


def multi_attach_message(volume: str, pod: Obj, holders: Iterable[Obj]) -> str:
    """reportMultiAttachError: the holders' names in the pod's namespace, others counted."""
    namespace = pod["metadata"].get("namespace")
    holders = list(holders)
    local = sorted(
        p["metadata"]["name"] for p in holders if p["metadata"].get("namespace") == namespace
    )
    others = sum(1 for p in holders if p["metadata"].get("namespace") != namespace)
    if local:
        text = f"Volume is already used by pod(s) {', '.join(local)}"
        if others:
            text += f" and {others} pod(s) in different namespaces"
    else:
        text = f"Volume is already used by {others} pod(s) in different namespaces"
    return f'Multi-Attach error for volume "{volume}" {text}'


def single_node(claim: Obj) -> bool:
    """isMultiAttachAllowed's opposite: no ReadWriteMany or ReadOnlyMany mode."""
    modes = access_modes(claim)
    return bool(modes) and not any(m in SHARED_MODES for m in modes)
