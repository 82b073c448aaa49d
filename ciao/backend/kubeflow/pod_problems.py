"""What a job's pods refer to that the namespace does not have, read off the words of the
kubelet, the attach/detach controller and the admission plugins, with what to do: a PVC
(missing, unbound, or ReadWriteOnce and on another node), a Secret, a ConfigMap or one of
their keys, a pull secret, a service account, a PriorityClass.

Each hint names the object and the setting that asks for it (`%volume=pvc:datasets:/data`,
`%env=TOKEN=secret:hf/token`), read back from the pod's spec when the pod is known: the
setting may come from the cell, a profile or the config, and the pod is what they became.
Ciao never reads a Secret, a PVC or a ServiceAccount itself: the cluster's words say it all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ciao.interpreter.pod import RESERVED_MOUNTS, EnvFrom, EnvVar, Volume

# --- the messages, as upstream writes them -------------------------------------------------

#: The scheduler's (its lister: `persistentvolumeclaim "x" not found`) and the kubelet's
#: (the API server's: `persistentvolumeclaims "x" not found`).
PVC_NOT_FOUND = re.compile(r'persistentvolumeclaims? "([^"]+)" not found')
PVC_DELETED = re.compile(r'persistentvolumeclaim "([^"]+)" is being deleted')
#: The scheduler's VolumeBinding PreFilter: the claim is not named.
PVC_UNBOUND = "pod has unbound immediate PersistentVolumeClaims"
#: The kubelet's volume manager: `error processing PVC ns/name: PVC is not bound`.
_PVC_PROCESSING = re.compile(r"error processing PVC ([^/\s]+)/([^:\s]+): (.*)")
#: The kubelet's volume manager, when the volumes are still not mounted after 2 minutes.
_MOUNT_SUMMARY = re.compile(r"Unable to attach or mount volumes: unmounted volumes=\[([^\]]*)\]")
_SETUP_NOT_FOUND = re.compile(
    r'MountVolume\.SetUp failed for volume "([^"]+)" ?: (secret|configmap) "([^"]+)" not found'
)
_SETUP_FAILED = re.compile(r'MountVolume\.\w+ failed for volume "([^"]+)"')
_MULTI_ATTACH = re.compile(r'Multi-Attach error for volume "([^"]+)"')
_USED_BY = re.compile(r"Volume is already used by pod\(s\) ([^\n]+?)(?: and \d+ pod\(s\) in|$)")
#: The kubelet's CreateContainerConfigError: an env reference that does not resolve.
_OBJECT_NOT_FOUND = re.compile(r'^(secret|configmap) "([^"]+)" not found')
_KEY_NOT_FOUND = re.compile(r"couldn't find key (\S+) in (Secret|ConfigMap) ([^/\s]+)/(\S+)")
_PULL_SECRETS = re.compile(r"Unable to retrieve some image pull secrets \(([^)]*)\)")
#: Admission refusals of the pods' creation (the controller's FailedCreate quotes them).
_SERVICE_ACCOUNT = re.compile(
    r'error looking up service account ([^/\s]+)/([^:\s]+): serviceaccount "[^"]+" not found'
)
_PRIORITY_CLASS = re.compile(r"no PriorityClass with name (\S+) was found")
_PRIORITY_NOT_PERMITTED = re.compile(
    r"pods with (\S+) priorityClass is not permitted in (\S+) namespace"
)

_KINDS = {"secret": "Secret", "configmap": "ConfigMap"}
_CREATE = {
    "Secret": "kubectl create secret generic {name} --from-literal=KEY=VALUE",
    "ConfigMap": "kubectl create configmap {name} --from-literal=KEY=VALUE",
}


# --- volumes ------------------------------------------------------------------------------


def volume_hint(reason: str, message: str, pod: dict[str, Any] | None, namespace: str) -> str:
    """A kubelet's FailedMount or the attach/detach controller's FailedAttachVolume."""
    if reason == "FailedAttachVolume" and _MULTI_ATTACH.search(message):
        return multi_attach_hint(message, pod)
    pvc = _PVC_PROCESSING.search(message)
    if pvc:
        ns, claim, why = pvc.groups()
        if PVC_NOT_FOUND.search(why):
            return missing_pvc_hint(claim, ns, pod)
        if "not bound" in why:
            return unbound_pvc_hint([claim], ns)
    setup = _SETUP_NOT_FOUND.search(message)
    if setup:
        volume, kind, name = setup.groups()
        if _mount_path(pod, volume).startswith(RESERVED_MOUNTS):
            return (
                f'the {_KINDS[kind]} "{name}" that holds the cell\'s code is gone (deleted '
                "while the job started?): run the cell again"
            )
        return _missing_object_hint(_KINDS[kind], name, namespace, volume_setting(pod, volume))
    failed = _SETUP_FAILED.search(message)
    if failed:
        return f"{_volume_words(pod, failed.group(1))} could not be mounted: {message}"
    summary = _MOUNT_SUMMARY.search(message)
    if summary and is_mount_timeout(message):
        names = summary.group(1).split()
        volumes = ", ".join(_volume_words(pod, name) for name in names) or "a volume"
        return (
            f"{volumes} still not mounted after 2 minutes: the pod's other events say why "
            f"(kubectl describe pod{_pod_name(pod)}{_ns_flag(namespace)}) ({message})"
        )
    return f"a volume could not be mounted: {message}"


def is_mount_timeout(message: str) -> bool:
    """The kubelet's summary that only says the volumes are still not mounted (its cause is
    in an earlier event: a Multi-Attach error, a SetUp failure)."""
    return bool(_MOUNT_SUMMARY.search(message)) and (
        "timed out waiting for the condition" in message or "context deadline exceeded" in message
    )


def missing_pvc_hint(claim: str, namespace: str, pod: dict[str, Any] | None) -> str:
    setting = claim_setting(pod, claim) or f"the %volume=pvc:{claim}:/PATH that names it"
    return (
        f'PVC "{claim}" does not exist{_in(namespace)}: create it, or fix {setting} '
        f"(kubectl get pvc{_ns_flag(namespace)} lists the claims there are)"
    )


def deleted_pvc_hint(claim: str, namespace: str) -> str:
    return (
        f'PVC "{claim}"{_in(namespace)} is being deleted (a pod that still uses it keeps it): '
        "use another claim, or recreate it once it is gone"
    )


def unbound_pvc_hint(claims: list[str], namespace: str) -> str:
    if len(claims) == 1:
        which, first = f'PVC "{claims[0]}"', claims[0]
    else:
        named = ", ".join(f'"{c}"' for c in claims)
        which, first = f"a PVC of the pod ({named})" if claims else "a PVC of the pod", "NAME"
    return (
        f"{which}{_in(namespace)} is not bound to a volume yet: kubectl describe pvc {first}"
        f"{_ns_flag(namespace)} says why (a StorageClass that provisions nothing, or no "
        "PersistentVolume that fits its size and access mode)"
    )


def multi_attach_hint(message: str, pod: dict[str, Any] | None) -> str:
    """A ReadWriteOnce volume is attached to another node (for another pod, often another
    replica of the same job): it is attached to one node at a time."""
    volume = _MULTI_ATTACH.search(message)
    name = volume.group(1) if volume else "the volume"
    claims = pvc_claims(pod)
    which = f'volume {name} (PVC "{claims[0]}")' if len(claims) == 1 else f"volume {name}"
    users = _USED_BY.search(message)
    by = f", for pod(s) {users.group(1)}" if users else ""
    ro = f"%volume=pvc:{claims[0]}:/PATH:ro" if len(claims) == 1 else "%volume=pvc:NAME:/PATH:ro"
    return (
        f"{which} is already attached to another node{by}, and its access mode "
        "(ReadWriteOnce) attaches it to one node at a time: a job whose replicas run on "
        "several nodes needs a ReadWriteMany claim (or ReadOnlyMany, mounted read-only with "
        f"{ro}), or all its replicas on one node"
    )


def claim_setting(pod: dict[str, Any] | None, claim: str) -> str:
    """`%volume=pvc:datasets:/data:ro` for the pod's volume of claim `claim`, or ""."""
    for volume in _spec(pod).get("volumes") or []:
        if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
            return volume_setting(pod, volume.get("name", ""))
    return ""


def pvc_claims(pod: dict[str, Any] | None) -> list[str]:
    """The claims the pod's volumes name, in order."""
    claims = []
    for volume in _spec(pod).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            claims.append(claim)
    return claims


def volume_setting(pod: dict[str, Any] | None, name: str) -> str:
    """The `%volume=` setting the pod's volume `name` is, where a container mounts it;
    "" for a volume no setting makes (an emptyDir, Ciao's own, the runtime's)."""
    volume = next((v for v in _spec(pod).get("volumes") or [] if v.get("name") == name), None)
    mount = _mount(pod, name)
    if volume is None or mount is None or _mount_path(pod, name).startswith(RESERVED_MOUNTS):
        return ""
    path, read_only = mount.get("mountPath", ""), bool(mount.get("readOnly"))
    if "persistentVolumeClaim" in volume:
        source = Volume(
            "pvc", volume["persistentVolumeClaim"].get("claimName", ""), path, read_only
        )
    elif "secret" in volume:
        source = Volume("secret", volume["secret"].get("secretName", ""), path)
    elif "configMap" in volume:
        source = Volume("configMap", volume["configMap"].get("name", ""), path)
    else:
        return ""
    return f"%volume={source.describe()}"


def _mount(pod: dict[str, Any] | None, volume: str) -> dict[str, Any] | None:
    """Where a container of the pod mounts `volume` (the first that does)."""
    mounts = (m for c in _containers(pod) for m in c.get("volumeMounts") or [])
    return next((m for m in mounts if m.get("name") == volume), None)


def _mount_path(pod: dict[str, Any] | None, volume: str) -> str:
    return str((_mount(pod, volume) or {}).get("mountPath", ""))


def _volume_words(pod: dict[str, Any] | None, name: str) -> str:
    setting = volume_setting(pod, name)
    return f"volume {name} ({setting})" if setting else f"volume {name}"


# --- Secrets and ConfigMaps the containers read ------------------------------------------


def config_hint(message: str, pod: dict[str, Any] | None, namespace: str) -> str | None:
    """A CreateContainerConfigError whose message says a Secret, a ConfigMap or one of
    their keys does not exist; None for another cause."""
    key = _KEY_NOT_FOUND.search(message)
    if key:
        name_key, kind, ns, name = key.groups()
        settings = _env_settings(pod, kind, name, name_key)
        reads = f", which {settings} reads" if settings else ""
        return (
            f'{kind} {ns}/{name} has no key "{name_key}"{reads}: add the key to the {kind}, '
            f"or fix the key (kubectl describe {kind.lower()} {name} -n {ns} lists its keys)"
        )
    missing = _OBJECT_NOT_FOUND.search(message.strip())
    if missing:
        kind = _KINDS[missing.group(1)]
        name = missing.group(2)
        return _missing_object_hint(kind, name, namespace, _env_settings(pod, kind, name))
    return None


def _missing_object_hint(kind: str, name: str, namespace: str, settings: str) -> str:
    needs = f", and {settings} needs it" if settings else ""
    create = _CREATE[kind].format(name=name) + _ns_flag(namespace)
    return (
        f'{kind} "{name}" does not exist{_in(namespace)}{needs}: create it ({create}), or '
        "fix the name"
    )


def _env_settings(pod: dict[str, Any] | None, kind: str, name: str, key: str = "") -> str:
    """The %env and %envFrom settings of the pod's containers that read `kind` `name`
    (and `key`), as the magics write them."""
    ref_kind = "secret" if kind == "Secret" else "configMap"
    ref_field = "secretKeyRef" if kind == "Secret" else "configMapKeyRef"
    from_field = "secretRef" if kind == "Secret" else "configMapRef"
    found: list[str] = []
    for container in _containers(pod):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get(ref_field) or {}
            if ref.get("name") == name and (not key or ref.get("key") == key):
                var = EnvVar(
                    env.get("name", ""),
                    ref_kind=ref_kind,
                    ref_name=name,
                    ref_key=ref.get("key", ""),
                )
                found.append(f"%env={var.describe()}")
        for source in container.get("envFrom") or []:
            if not key and (source.get(from_field) or {}).get("name") == name:
                found.append(f"%envFrom={EnvFrom(ref_kind, name).describe()}")
    return " and ".join(dict.fromkeys(found))


# --- pull secrets --------------------------------------------------------------------------


def missing_pull_secrets(message: str) -> tuple[str, ...]:
    """The pull secrets a FailedToRetrieveImagePullSecret says the kubelet could not read."""
    found = _PULL_SECRETS.search(message)
    if not found:
        return ()
    return tuple(n.strip() for n in found.group(1).split(",") if n.strip())


def pull_secret_hint(names: tuple[str, ...], namespace: str) -> str:
    """The kubelet pulls without the pull secrets it could not find (and says so): a
    public image still comes, a private one cannot."""
    listed = ", ".join(f'"{n}"' for n in names) or "of the pod"
    one = names[0] if names else "NAME"
    does = "does" if len(names) == 1 else "do"
    return (
        f"the pull secret {listed} (from %imagePullSecret, or the service account's "
        f"imagePullSecrets) {does} not exist{_in(namespace)}: create it (kubectl create "
        f"secret docker-registry {one} --docker-server=REGISTRY --docker-username=USER "
        f"--docker-password=TOKEN{_ns_flag(namespace)}), or fix the name; without it a "
        "private image cannot be pulled"
    )


def pod_pull_secrets(pod: dict[str, Any] | None) -> tuple[str, ...]:
    return tuple(
        s.get("name", "") for s in _spec(pod).get("imagePullSecrets") or [] if s.get("name")
    )


# --- admission refusals of the pods' creation ----------------------------------------------


def refusal_hint(message: str) -> str | None:
    """A pod creation refused for a name that does not exist (a service account, a
    PriorityClass): the same pods are refused at every retry; None for another refusal."""
    account = _SERVICE_ACCOUNT.search(message)
    if account:
        ns, name = account.groups()
        return (
            f'the service account "{name}" does not exist in namespace {ns}, so no pod of the '
            f"job can be created: fix %serviceAccount={name}, or create it (kubectl create "
            f"serviceaccount {name} -n {ns})"
        )
    priority = _PRIORITY_CLASS.search(message)
    if priority:
        name = priority.group(1)
        return (
            f'the PriorityClass "{name}" does not exist, so no pod of the job can be created: '
            f"fix %priorityClass={name} (kubectl get priorityclasses lists those there are), or "
            "ask a cluster admin to create it"
        )
    reserved = _PRIORITY_NOT_PERMITTED.search(message)
    if reserved:
        name, ns = reserved.groups()
        return (
            f'the PriorityClass "{name}" is kept for the cluster\'s own pods and namespace {ns} '
            f"may not use it: fix %priorityClass={name} (kubectl get priorityclasses)"
        )
    return None


# --- reading the pod -----------------------------------------------------------------------


def namespace_of(event: dict[str, Any] | None, pod: dict[str, Any] | None) -> str:
    """The namespace an event's object (or the pod) is in."""
    involved = (event or {}).get("involvedObject") or {}
    return (
        involved.get("namespace")
        or ((event or {}).get("metadata") or {}).get("namespace")
        or ((pod or {}).get("metadata") or {}).get("namespace")
        or ""
    )


def _spec(pod: dict[str, Any] | None) -> dict[str, Any]:
    return (pod or {}).get("spec") or {}


def _containers(pod: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    spec = _spec(pod)
    yield from spec.get("containers") or []
    yield from spec.get("initContainers") or []


def _pod_name(pod: dict[str, Any] | None) -> str:
    name = ((pod or {}).get("metadata") or {}).get("name")
    return f" {name}" if name else ""


def _in(namespace: str) -> str:
    return f" in namespace {namespace}" if namespace else ""


def _ns_flag(namespace: str) -> str:
    return f" -n {namespace}" if namespace else ""
