"""A cell's pod settings (`ciao.interpreter.pod`) as Kubernetes writes them in a pod.

Pure functions shared by the v1 replica templates (manifests.py) and Trainer v2's pod
overrides (trainjob.py): each setting has one Kubernetes shape, whichever API carries it.
What a Trainer v2 release cannot carry is trainer_overrides.py's to refuse.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ciao.errors import BackendError
from ciao.interpreter.pod import SHM_PATH, EnvVar, PodSettings, Toleration, Volume
from ciao.interpreter.types import Parameter

#: The in-memory emptyDir of `%shm` (the name PyTorch's and the operators' examples use).
SHM_VOLUME = "dshm"
#: The cell's volumes are `volume-<mount path>`: never one of Ciao's (`ciao-code`,
#: `ciao-home`) nor `%shm`'s, and readable in `%dryrun`.
VOLUME_PREFIX = "volume-"
#: The scheduler whose gang scheduling the v1 operator drives (`runPolicy.schedulingPolicy`).
VOLCANO = "volcano"
_MAX_LABEL = 63


def say(settings: PodSettings, magic: str, text: str = "") -> str:
    """How an error names a setting: as its magic and where it was given,
    `%imagePullSecret=regcred (line 3)`, or a config key `securityContext (profile gpu)`."""
    where = settings.origin(magic, text)
    return f"%{magic}={text} ({where})" if text else f"{magic} ({where})"


# --- volumes -------------------------------------------------------------------------------


def volume_name(path: str, taken: set[str]) -> str:
    """`volume-data-train` for /data/train: a DNS label, unique among `taken`."""
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
    name = (VOLUME_PREFIX + slug)[:_MAX_LABEL].rstrip("-")
    if name in taken or len(VOLUME_PREFIX + slug) > _MAX_LABEL:
        digest = hashlib.sha256(path.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: _MAX_LABEL - 9].rstrip('-')}-{digest}"
    return name


def _source(volume: Volume, settings: PodSettings) -> dict[str, Any]:
    if volume.kind == "pvc":
        claim: dict[str, Any] = {"claimName": volume.source}
        if volume.read_only:
            claim["readOnly"] = True
        return {"persistentVolumeClaim": claim}
    if volume.kind == "emptyDir":
        empty: dict[str, Any] = {"medium": "Memory"} if volume.memory else {}
        if volume.size:
            empty["sizeLimit"] = volume.size
        return {"emptyDir": empty}
    if volume.kind == "configMap":
        return {"configMap": {"name": volume.source}}
    if volume.kind == "secret":
        return {"secret": {"secretName": volume.source}}
    if volume.source.startswith("~"):
        raise BackendError(
            f"{say(settings, 'volume', volume.describe())}: ~ is a home folder of this "
            "machine; on a cluster a hostPath is a folder of the node the pod runs on: give "
            "its absolute path"
        )
    return {"hostPath": {"path": volume.source}}


def cell_volumes(
    settings: PodSettings, taken: set[str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes of `%volume` and `%shm`, and the training container's mounts of
    them; `taken`: volume names the pod has already (Ciao's own)."""
    names = set(taken or ())
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for volume in settings.volumes:
        name = volume_name(volume.path, names)
        names.add(name)
        volumes.append({"name": name, **_source(volume, settings)})
        mount: dict[str, Any] = {"name": name, "mountPath": volume.path}
        if volume.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    if settings.shm:
        volumes.append(
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm}}
        )
        mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
    return volumes, mounts


# --- the training container's environment ------------------------------------------------


def env_var(var: EnvVar) -> dict[str, Any]:
    """`%env`: a value, or a reference the kubelet resolves (Ciao never reads a Secret)."""
    if var.ref_kind == "secret":
        return {"name": var.name, "valueFrom": {"secretKeyRef": _key_ref(var)}}
    if var.ref_kind == "configMap":
        return {"name": var.name, "valueFrom": {"configMapKeyRef": _key_ref(var)}}
    return {"name": var.name, "value": var.value}


def _key_ref(var: EnvVar) -> dict[str, str]:
    return {"name": var.ref_name, "key": var.ref_key}


def cell_env(settings: PodSettings) -> list[dict[str, Any]]:
    """The cell's `%env`, then `CIAO_VOLUME_<PATH>` of each volume: where it is mounted."""
    mounted = [{"name": name, "value": path} for name, path in settings.mount_env().items()]
    return [*(env_var(var) for var in settings.env), *mounted]


def cell_env_from(settings: PodSettings) -> list[dict[str, Any]]:
    """`%envFrom`: every key of a Secret or ConfigMap as a variable."""
    ref = {"secret": "secretRef", "configMap": "configMapRef"}
    return [{ref[source.kind]: {"name": source.name}} for source in settings.env_from]


# --- the pod spec ------------------------------------------------------------------------


def toleration(item: Toleration) -> dict[str, str]:
    """Exists without a value, Equal with one; no effect tolerates every effect."""
    out = {"key": item.key, "operator": "Exists" if item.exists else "Equal"}
    if not item.exists:
        out["value"] = item.value
    if item.effect:
        out["effect"] = item.effect
    return out


def placement(settings: PodSettings) -> dict[str, Any]:
    """The pod spec's fields of where and as whom the pod runs: nodeSelector,
    tolerations, affinity, serviceAccountName, imagePullSecrets, priorityClassName,
    schedulerName (only those the cell sets)."""
    fields: dict[str, Any] = {}
    if settings.node_selector:
        fields["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        fields["tolerations"] = [toleration(t) for t in settings.tolerations]
    if settings.affinity:
        fields["affinity"] = dict(settings.affinity)
    if settings.service_account:
        fields["serviceAccountName"] = settings.service_account
    if settings.image_pull_secrets:
        fields["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.priority_class:
        fields["priorityClassName"] = settings.priority_class
    if settings.scheduler_name:
        fields["schedulerName"] = settings.scheduler_name
    return fields


def security_context(settings: PodSettings, ciao: Mapping[str, Any]) -> dict[str, Any]:
    """The pod's securityContext: a profile's, key by key over Ciao's own (Pod Security
    `restricted`), so `fsGroup: 2000` for a volume's permissions keeps the rest."""
    return {**ciao, **(settings.security_context or {})}


def pod_metadata(
    settings: PodSettings,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    own_prefix: str,
) -> tuple[dict[str, str], dict[str, str]]:
    """The pod's labels and annotations: Ciao's, and a profile's beside them. Ciao's own
    keys (and any under `own_prefix`) are refused: Ciao finds its jobs' pods by its labels,
    and an Istio sidecar would keep a finished pod running."""
    merged = []
    for setting, ours, given in (
        ("labels", labels, settings.labels),
        ("annotations", annotations, settings.annotations),
    ):
        for key, _value in given:
            if key in ours or key.startswith(own_prefix + "/"):
                raise BackendError(
                    f"{say(settings, setting)}: {key} is one of Ciao's own pod {setting} "
                    f"(Ciao sets {key}={ours.get(key, '...')} on every pod it runs): use "
                    "another key"
                )
        merged.append({**ours, **dict(given)})
    return merged[0], merged[1]


# --- Volcano, through the v1 operator ---------------------------------------------------


def gang_scheduled(parameter: Parameter) -> bool:
    """Whether the cell's pods go to Volcano (`%schedulerName=volcano`)."""
    return any(parameter.pod_of(role).scheduler_name == VOLCANO for role in parameter.roles)


def volcano_policy(parameter: Parameter, queue: str) -> dict[str, Any]:
    """The v1 operator's `runPolicy.schedulingPolicy` of a Volcano job: the PodGroup it
    creates (with `--gang-scheduler-name=volcano`) starts every replica at once or none, in
    `queue` (Volcano's queue: with Volcano, `%queue` is not Kueue's), at the job's priority.
    Every role must go to Volcano: a gang waiting for a pod another scheduler holds would
    never start."""
    for role in parameter.roles:
        settings = parameter.pod_of(role)
        if settings.scheduler_name != VOLCANO:
            used = settings.scheduler_name or "the default scheduler"
            raise BackendError(
                f"%schedulerName={VOLCANO} gang-schedules the whole job, but the {role} "
                f"replicas use {used}: give %schedulerName={VOLCANO} on its own line, for "
                "every role"
            )
    policy: dict[str, Any] = {"minAvailable": parameter.total_replicas}
    if queue:
        policy["queue"] = queue
    classes = {parameter.pod_of(role).priority_class for role in parameter.roles}
    if len(classes) == 1 and "" not in classes:
        policy["priorityClass"] = classes.pop()
    return policy
