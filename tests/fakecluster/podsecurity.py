"""The PodSecurity admission plugin (Pod Security Standards), as the API server runs it.

Its facts follow k8s.io/pod-security-admission (policy/check_*.go, api/helpers.go,
admission/admission.go); the code is this project's own. A namespace's labels
`pod-security.kubernetes.io/{enforce,audit,warn}[-version]` choose a level (privileged,
baseline, restricted) and a version (`latest` or `v1.N`) for each mode:

- enforce: a pod (create; update only when it changes a container image or adds a
  container) that violates the level is refused with the real server's 403:
  `pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation
  != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ...`,
  so the controller creating it (the v1 operator, the batch Job controller) records
  FailedCreatePod / FailedCreate, as for a ResourceQuota.
- warn: a pod or a workload (a batch Job here) that violates it is admitted with a Warning
  (`would violate PodSecurity "restricted:latest": ...`); a pod refused by enforce gets none.
- audit: only annotates audit events: nothing to see here, so it is not evaluated.
- Namespace labels are validated on create and update (422 `metadata.labels[...]: Invalid
  value`); tightening `enforce` on an update warns about the existing pods that violate it.

Versions: every check keeps each of its revisions with the first policy version it applies
to; a version newer than the server (and `latest`) means the server's own, as in a real API
server (`max_version`: the fake server is v1.31). No exemptions are configured (the
default): no namespace, user or runtime class is exempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import errors as E

Obj = dict[str, Any]
#: (major, minor); None is `latest`.
Version = tuple[int, int] | None

PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
LEVELS = ("privileged", "baseline", "restricted")
#: The server's version: `latest` and newer versions evaluate the checks as of this one.
SERVER_VERSION = (1, 31)
_VERSION = re.compile(r"v1\.([0-9]|[1-9][0-9]*)")


# -- levels, versions, policies -----------------------------------------------------------


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: Version = None

    def __str__(self) -> str:
        version = "latest" if self.version is None else f"v{self.version[0]}.{self.version[1]}"
        return f"{self.level}:{version}"


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion("privileged")
    audit: LevelVersion = LevelVersion("privileged")
    warn: LevelVersion = LevelVersion("privileged")

    @property
    def fully_privileged(self) -> bool:
        return all(lv.level == "privileged" for lv in (self.enforce, self.audit, self.warn))


def parse_version(text: str) -> Version:
    """`latest` or `v1.N`; ValueError otherwise."""
    if text == "latest":
        return None
    match = _VERSION.fullmatch(text)
    if match is None:
        raise ValueError('must be "latest" or "v1.x"')
    return (1, int(match.group(1)))


def _compare_levels(a: str, b: str) -> int:
    return LEVELS.index(a) - LEVELS.index(b)


def policy_of(labels: dict[str, str] | None) -> tuple[Policy, list[E.FieldError]]:
    """The namespace's policy and the problems of its labels. A bad enforce level means
    restricted (fail closed); a bad audit or warn level means privileged (fail open); a
    bad version means latest. Without a warn label, warn follows a stricter enforce."""
    levels = {mode: "privileged" for mode in MODES}
    versions: dict[str, Version] = dict.fromkeys(MODES)
    errs: list[E.FieldError] = []
    labels = labels or {}
    has_enforce_level = False
    for mode in MODES:
        key = PREFIX + mode
        if key in labels:
            value = labels[key]
            if value in LEVELS:
                levels[mode] = value
                has_enforce_level = has_enforce_level or mode == "enforce"
            else:
                levels[mode] = "restricted" if mode == "enforce" else "privileged"
                errs.append(_label_error(key, value, f"must be one of {', '.join(LEVELS)}"))
        key = f"{PREFIX}{mode}-version"
        if key in labels:
            try:
                versions[mode] = parse_version(labels[key])
            except ValueError as exc:
                errs.append(_label_error(key, labels[key], str(exc)))
    if (
        PREFIX + "warn" not in labels
        and has_enforce_level
        and _compare_levels(levels["enforce"], levels["warn"]) > 0
    ):
        levels["warn"] = levels["enforce"]
        if PREFIX + "warn-version" not in labels:
            versions["warn"] = versions["enforce"]
    policy = Policy(*(LevelVersion(levels[m], versions[m]) for m in MODES))
    return policy, errs


def _label_error(key: str, value: str, detail: str) -> E.FieldError:
    return E.invalid(f"metadata.labels[{key}]", value, detail)


# -- the checks ---------------------------------------------------------------------------

#: A check's verdict on a pod: None (allowed) or (forbidden reason, detail).
Result = tuple[str, str] | None
CheckFn = Callable[[Obj, Obj], Result]


@dataclass(frozen=True)
class Revision:
    since: tuple[int, int]
    check: CheckFn
    #: Baseline checks this (restricted) revision replaces.
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    id: str
    level: str  # baseline | restricted
    revisions: tuple[Revision, ...]

    def at(self, version: tuple[int, int]) -> Revision | None:
        """The revision that applies to policy `version`, if the check exists there."""
        current = None
        for revision in self.revisions:
            if revision.since <= version:
                current = revision
        return current


def _quote(items: Iterable[str]) -> str:
    """joinQuote: `"a", "b"`."""
    items = list(items)
    return ('"' + '", "'.join(items) + '"') if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _go_q(text: str) -> str:
    """Go's %q of a string."""
    return json.dumps(text)


def _containers(spec: Obj) -> list[Obj]:
    """Init containers, containers, ephemeral containers: in that order."""
    found = []
    for group in ("initContainers", "containers", "ephemeralContainers"):
        found += [c for c in spec.get(group) or [] if isinstance(c, dict)]
    return found


def _sc(obj: Obj) -> Obj | None:
    value = obj.get("securityContext")
    return value if isinstance(value, dict) else None


def _windows(spec: Obj) -> bool:
    return ((spec.get("os") or {}).get("name")) == "windows"


def _user_namespace(spec: Obj) -> bool:
    """hostUsers: false: the pod runs in a user namespace."""
    return spec.get("hostUsers") is False


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    setters = ["pod"] if pod_bad else []
    if containers:
        setters.append(
            f"{_plural('container', 'containers', len(containers))} {_quote(containers)}"
        )
    return setters


def _not_windows(check: CheckFn) -> CheckFn:
    """The 1.25 revisions: a pod with spec.os.name windows is exempt."""

    def revised(meta: Obj, spec: Obj) -> Result:
        return None if _windows(spec) else check(meta, spec)

    return revised


def _not_user_namespace(check: CheckFn) -> CheckFn:
    """The 1.35 revisions: a pod in a user namespace (hostUsers: false) is exempt."""

    def revised(meta: Obj, spec: Obj) -> Result:
        return None if _user_namespace(spec) else check(meta, spec)

    return revised


# baseline


def _apparmor(meta: Obj, spec: Obj) -> Result:
    allowed = ("RuntimeDefault", "Localhost")
    bad_values: set[str] = set()
    pod_sc = _sc(spec)
    pod_bad = False
    profile = (pod_sc or {}).get("appArmorProfile")
    if isinstance(profile, dict) and profile.get("type") not in allowed:
        pod_bad = True
        bad_values.add(str(profile.get("type") or ""))
    containers = []
    for c in _containers(spec):
        profile = (_sc(c) or {}).get("appArmorProfile")
        if isinstance(profile, dict) and profile.get("type") not in allowed:
            containers.append(c.get("name", ""))
            bad_values.add(str(profile.get("type") or ""))
    setters = _setters(pod_bad, containers)
    values = sorted(bad_values)
    annotations = []
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            annotations.append(f"{key}={_go_q(value)}")
    if annotations:
        values += sorted(annotations)
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (
        _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_quote(values)}",
    )


_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _capabilities_baseline(meta: Obj, spec: Obj) -> Result:
    containers, added = [], set()
    for c in _containers(spec):
        caps = (_sc(c) or {}).get("capabilities")
        if not isinstance(caps, dict):
            continue
        bad = [cap for cap in caps.get("add") or [] if cap not in _BASELINE_CAPABILITIES]
        if bad:
            containers.append(c.get("name", ""))
            added.update(bad)
    if not containers:
        return None
    return (
        "non-default capabilities",
        f"{_plural('container', 'containers', len(containers))} {_quote(containers)} must not "
        f"include {_quote(sorted(added))} in securityContext.capabilities.add",
    )


def _host_namespaces(meta: Obj, spec: Obj) -> Result:
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return ("host namespaces", ", ".join(found)) if found else None


def _host_path_volumes(meta: Obj, spec: Obj) -> Result:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_quote(names)}"


def _host_ports(meta: Obj, spec: Obj) -> Result:
    containers, ports = [], set()
    for c in _containers(spec):
        used = [str(p.get("hostPort")) for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            containers.append(c.get("name", ""))
            ports.update(used)
    if not containers:
        return None
    n = len(containers)
    return (
        "hostPort",
        f"{_plural('container', 'containers', n)} {_quote(containers)} "
        f"{_plural('uses', 'use', n)} {_plural('hostPort', 'hostPorts', len(ports))} "
        f"{', '.join(sorted(ports))}",
    )


def _handler_hosts(handler: Any) -> list[str]:
    if not isinstance(handler, dict):
        return []
    hosts = []
    for kind in ("httpGet", "tcpSocket"):
        host = (handler.get(kind) or {}).get("host")
        if host:
            hosts.append(host)
    return hosts


def _host_probes(meta: Obj, spec: Obj) -> Result:
    containers: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        lifecycle = c.get("lifecycle") or {}
        handlers += [lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            bad = _handler_hosts(handler)
            if bad:
                containers.add(c.get("name", ""))
                hosts.update(bad)
    if not containers:
        return None
    n = len(containers)
    return (
        "probe or lifecycle host",
        f"{_plural('container', 'containers', n)} {_quote(sorted(containers))} "
        f"{_plural('uses', 'use', n)} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        f"{_quote(sorted(hosts))}",
    )


def _privileged(meta: Obj, spec: Obj) -> Result:
    containers = [c.get("name", "") for c in _containers(spec) if (_sc(c) or {}).get("privileged")]
    if not containers:
        return None
    return (
        "privileged",
        f"{_plural('container', 'containers', len(containers))} {_quote(containers)} must not "
        "set securityContext.privileged=true",
    )


def _proc_mount(meta: Obj, spec: Obj) -> Result:
    containers, types = [], set()
    for c in _containers(spec):
        value = (_sc(c) or {}).get("procMount")
        if value is not None and value != "Default":
            containers.append(c.get("name", ""))
            types.add(str(value))
    if not containers:
        return None
    return (
        "procMount",
        f"{_plural('container', 'containers', len(containers))} {_quote(containers)} must not "
        f"set securityContext.procMount to {_quote(sorted(types))}",
    )


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})


def _selinux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Any) -> bool:
            if not isinstance(options, dict):
                return True
            ok = True
            if (options.get("type") or "") not in allowed:
                ok = False
                bad_types.add(options.get("type") or "")
            for key in ("user", "role"):
                if options.get(key):
                    ok, flags[key] = False, True
            return ok

        pod_bad = not valid((_sc(spec) or {}).get("seLinuxOptions"))
        containers = [
            c.get("name", "")
            for c in _containers(spec)
            if not valid((_sc(c) or {}).get("seLinuxOptions"))
        ]
        setters = _setters(pod_bad, containers)
        if not setters:
            return None
        data = []
        if bad_types:
            kinds = _plural("type", "types", len(bad_types))
            data.append(f"{kinds} {_quote(sorted(bad_types))}")
        data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
        return (
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            f"{'; '.join(data)}",
        )

    return check


def _seccomp_annotations(meta: Obj, spec: Obj) -> Result:
    """Before 1.19: the alpha annotations."""

    def valid(value: str) -> bool:
        return value in ("runtime/default", "docker/default") or value.startswith("localhost/")

    annotations = meta.get("annotations") or {}
    forbidden = set()
    pod_key = "seccomp.security.alpha.kubernetes.io/pod"
    if pod_key in annotations and not valid(annotations[pod_key]):
        forbidden.add(f"{pod_key}={_go_q(annotations[pod_key])}")
    for c in _containers(spec):
        key = "container.seccomp.security.alpha.kubernetes.io/" + c.get("name", "")
        if key in annotations and not valid(annotations[key]):
            forbidden.add(f"{key}={_go_q(annotations[key])}")
    if not forbidden:
        return None
    kinds = _plural("annotation", "annotations", len(forbidden))
    return "seccompProfile", f"forbidden {kinds} {', '.join(sorted(forbidden))}"


def _valid_seccomp(profile: Obj) -> bool:
    return profile.get("type") in ("Localhost", "RuntimeDefault")


def _seccomp(required: bool) -> CheckFn:
    """seccompProfile.type: baseline refuses only bad values (Unconfined), restricted also
    wants one set on the pod or on every container."""

    def check(meta: Obj, spec: Obj) -> Result:
        bad_values: set[str] = set()
        pod_profile = (_sc(spec) or {}).get("seccompProfile")
        pod_bad = pod_set = False
        if isinstance(pod_profile, dict):
            if _valid_seccomp(pod_profile):
                pod_set = True
            else:
                pod_bad = True
                bad_values.add(str(pod_profile.get("type") or ""))
        explicit, implicit = [], []
        for c in _containers(spec):
            profile = (_sc(c) or {}).get("seccompProfile")
            if isinstance(profile, dict):
                if not _valid_seccomp(profile):
                    explicit.append(c.get("name", ""))
                    bad_values.add(str(profile.get("type") or ""))
            elif not pod_set:
                implicit.append(c.get("name", ""))
        setters = _setters(pod_bad, explicit)
        if setters:
            return (
                "seccompProfile",
                f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                f"{_quote(sorted(bad_values))}",
            )
        if required and implicit:
            return (
                "seccompProfile",
                f"pod or {_plural('container', 'containers', len(implicit))} {_quote(implicit)} "
                'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
            )
        return None

    return check


_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Result:
        found = [
            s.get("name", "")
            for s in (_sc(spec) or {}).get("sysctls") or []
            if s.get("name") not in allowed
        ]
        return ("forbidden sysctls", ", ".join(found)) if found else None

    return check


def _host_process(meta: Obj, spec: Obj) -> Result:
    def on(sc: Obj | None) -> bool:
        return bool(((sc or {}).get("windowsOptions") or {}).get("hostProcess"))

    containers = [c.get("name", "") for c in _containers(spec) if on(_sc(c))]
    setters = _setters(on(_sc(spec)), containers)
    if not setters:
        return None
    return (
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


# restricted


def _privilege_escalation(meta: Obj, spec: Obj) -> Result:
    containers = [
        c.get("name", "")
        for c in _containers(spec)
        if (_sc(c) or {}).get("allowPrivilegeEscalation") is not False
    ]
    if not containers:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_plural('container', 'containers', len(containers))} {_quote(containers)} must set "
        "securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(meta: Obj, spec: Obj) -> Result:
    missing, adding, added = [], [], set()
    for c in _containers(spec):
        caps = (_sc(c) or {}).get("capabilities")
        if not isinstance(caps, dict):
            missing.append(c.get("name", ""))
            continue
        if "ALL" not in (caps.get("drop") or []):
            missing.append(c.get("name", ""))
        bad = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if bad:
            adding.append(c.get("name", ""))
            added.update(bad)
    details = []
    if missing:
        details.append(
            f"{_plural('container', 'containers', len(missing))} {_quote(missing)} must set "
            'securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_plural('container', 'containers', len(adding))} {_quote(adding)} must not "
            f"include {_quote(sorted(added))} in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


_VOLUME_SOURCES_ALLOWED = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: The volume sources restricted refuses, in the order the check looks for them.
_VOLUME_SOURCES_REFUSED = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


def _restricted_volumes(meta: Obj, spec: Obj) -> Result:
    names, kinds = [], set()
    for volume in spec.get("volumes") or []:
        present = {k for k, v in volume.items() if k != "name" and v is not None}
        if present & _VOLUME_SOURCES_ALLOWED:
            continue
        names.append(volume.get("name", ""))
        kinds.add(next((k for k in _VOLUME_SOURCES_REFUSED if k in present), "unknown"))
    if not names:
        return None
    n = len(names)
    return (
        "restricted volume types",
        f"{_plural('volume', 'volumes', n)} {_quote(names)} {_plural('uses', 'use', n)} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{_quote(sorted(kinds))}",
    )


def _run_as_non_root(meta: Obj, spec: Obj) -> Result:
    pod_value = (_sc(spec) or {}).get("runAsNonRoot")
    pod_bad, pod_ok = pod_value is False, pod_value is True
    explicit, implicit = [], []
    for c in _containers(spec):
        value = (_sc(c) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(c.get("name", ""))
        elif not pod_ok:
            implicit.append(c.get("name", ""))
    setters = _setters(pod_bad, explicit)
    if setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_plural('container', 'containers', len(implicit))} {_quote(implicit)} "
            "must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(meta: Obj, spec: Obj) -> Result:
    containers = [
        c.get("name", "") for c in _containers(spec) if (_sc(c) or {}).get("runAsUser") == 0
    ]
    setters = _setters((_sc(spec) or {}).get("runAsUser") == 0, containers)
    if not setters:
        return None
    return "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0"


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", "baseline", (Revision((1, 0), _apparmor),)),
    Check("capabilities_baseline", "baseline", (Revision((1, 0), _capabilities_baseline),)),
    Check("hostNamespaces", "baseline", (Revision((1, 0), _host_namespaces),)),
    Check("hostPathVolumes", "baseline", (Revision((1, 0), _host_path_volumes),)),
    Check("hostPorts", "baseline", (Revision((1, 0), _host_ports),)),
    Check("hostProbesAndHostLifecycle", "baseline", (Revision((1, 34), _host_probes),)),
    Check("privileged", "baseline", (Revision((1, 0), _privileged),)),
    Check(
        "procMount",
        "baseline",
        (Revision((1, 0), _proc_mount), Revision((1, 35), _not_user_namespace(_proc_mount))),
    ),
    Check(
        "seLinuxOptions",
        "baseline",
        (
            Revision((1, 0), _selinux(_SELINUX_TYPES)),
            Revision((1, 31), _selinux(_SELINUX_TYPES | {"container_engine_t"})),
        ),
    ),
    Check(
        "seccompProfile_baseline",
        "baseline",
        (Revision((1, 0), _seccomp_annotations), Revision((1, 19), _seccomp(required=False))),
    ),
    Check(
        "sysctls",
        "baseline",
        tuple(
            Revision(since, _sysctls(allowed))
            for since, allowed in (
                ((1, 0), _SYSCTLS_1_0),
                ((1, 27), _SYSCTLS_1_27),
                ((1, 29), _SYSCTLS_1_29),
                ((1, 32), _SYSCTLS_1_32),
                ((1, 37), _SYSCTLS_1_37),
            )
        ),
    ),
    Check("windowsHostProcess", "baseline", (Revision((1, 0), _host_process),)),
    Check(
        "allowPrivilegeEscalation",
        "restricted",
        (
            Revision((1, 8), _privilege_escalation),
            Revision((1, 25), _not_windows(_privilege_escalation)),
        ),
    ),
    Check(
        "capabilities_restricted",
        "restricted",
        (
            Revision((1, 22), _capabilities_restricted, ("capabilities_baseline",)),
            Revision((1, 25), _not_windows(_capabilities_restricted), ("capabilities_baseline",)),
        ),
    ),
    Check(
        "procMount_restricted",
        "restricted",
        (Revision((1, 35), _proc_mount, ("procMount",)),),
    ),
    Check(
        "restrictedVolumes",
        "restricted",
        (Revision((1, 0), _restricted_volumes, ("hostPathVolumes",)),),
    ),
    Check(
        "runAsNonRoot",
        "restricted",
        (
            Revision((1, 0), _run_as_non_root),
            Revision((1, 35), _not_user_namespace(_run_as_non_root)),
        ),
    ),
    Check(
        "runAsUser",
        "restricted",
        (Revision((1, 23), _run_as_user), Revision((1, 35), _not_user_namespace(_run_as_user))),
    ),
    Check(
        "seccompProfile_restricted",
        "restricted",
        (
            Revision((1, 19), _seccomp(required=True), ("seccompProfile_baseline",)),
            Revision((1, 25), _not_windows(_seccomp(required=True)), ("seccompProfile_baseline",)),
        ),
    ),
)
#: Messages list the baseline checks first, then the restricted ones, each by ID.
_ORDER = sorted(c.id for c in CHECKS if c.level == "baseline") + sorted(
    c.id for c in CHECKS if c.level == "restricted"
)


def evaluate(
    lv: LevelVersion, meta: Obj, spec: Obj, max_version: tuple[int, int] = SERVER_VERSION
) -> list[tuple[str, str]]:
    """The (reason, detail) of every check the pod fails at level and version `lv`."""
    if lv.level == "privileged":
        return []
    version = max_version if lv.version is None or lv.version > max_version else lv.version
    active = {}
    for check in CHECKS:
        if check.level == "restricted" and lv.level != "restricted":
            continue
        revision = check.at(version)
        if revision is not None:
            active[check.id] = revision
    for revision in list(active.values()):
        for overridden in revision.overrides:
            active.pop(overridden, None)
    results = []
    for check_id in _ORDER:
        if check_id in active:
            result = active[check_id].check(meta, spec)
            if result is not None:
                results.append(result)
    return results


def detail(results: list[tuple[str, str]]) -> str:
    """`reason (detail), reason, ...`, as an individual pod's verdict is written."""
    return ", ".join(f"{reason} ({text})" if text else reason for reason, text in results)


# -- admission ----------------------------------------------------------------------------

#: Workload resources whose pod template the plugin reads (warn and audit only).
_TEMPLATES: dict[str, Callable[[Obj], Obj | None]] = {
    "jobs": lambda obj: (obj.get("spec") or {}).get("template"),
}


def _meta_and_spec(pod: Obj) -> tuple[Obj, Obj]:
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    return meta or {}, spec or {}


def _significant_update(new: Obj, old: Obj) -> bool:
    """Only a changed image (or a changed number of containers) is re-evaluated."""
    new_spec, old_spec = _meta_and_spec(new)[1], _meta_and_spec(old)[1]
    for group in ("containers", "initContainers"):
        a, b = new_spec.get(group) or [], old_spec.get(group) or []
        if len(a) != len(b):
            return True
        if any(x.get("image") != y.get("image") for x, y in zip(a, b, strict=True)):
            return True
    old_ephemeral = {c.get("name"): c for c in old_spec.get("ephemeralContainers") or []}
    for c in new_spec.get("ephemeralContainers") or []:
        before = old_ephemeral.get(c.get("name"))
        if before is None or before.get("image") != c.get("image"):
            return True
    return False


def admit_pod(
    namespace: Obj,
    pod: Obj,
    old: Obj | None = None,
    max_version: tuple[int, int] = SERVER_VERSION,
) -> list[str]:
    """Warnings for an admitted pod; raises the 403 for one the enforce level refuses."""
    from .resources import CORE

    policy, errs = policy_of((namespace.get("metadata") or {}).get("labels"))
    if not errs and policy.fully_privileged:
        return []
    if old is not None and not _significant_update(pod, old):
        return []
    meta, spec = _meta_and_spec(pod)
    failed = evaluate(policy.enforce, meta, spec, max_version)
    if failed:
        raise CORE["pods"].forbidden(
            meta.get("name", ""), f'violates PodSecurity "{policy.enforce}": {detail(failed)}'
        )
    return _warning(policy, meta, spec, max_version)


def admit_workload(
    plural: str, namespace: Obj, obj: Obj, max_version: tuple[int, int] = SERVER_VERSION
) -> list[str]:
    """A workload's pod template is held to the warn level only: never refused."""
    template = _TEMPLATES[plural](obj) if plural in _TEMPLATES else None
    if not isinstance(template, dict):
        return []
    policy, _ = policy_of((namespace.get("metadata") or {}).get("labels"))
    if policy.warn.level == "privileged":
        return []
    meta, spec = _meta_and_spec(template)
    return _warning(policy, meta, spec, max_version)


def _warning(policy: Policy, meta: Obj, spec: Obj, max_version: tuple[int, int]) -> list[str]:
    failed = evaluate(policy.warn, meta, spec, max_version)
    if not failed:
        return []
    return [f'would violate PodSecurity "{policy.warn}": {detail(failed)}']


def admit_namespace(
    namespace: Obj,
    old: Obj | None,
    pods: Callable[[], list[Obj]],
    max_version: tuple[int, int] = SERVER_VERSION,
) -> list[str]:
    """Refuses bad policy labels (422); a stricter enforce level warns about the existing
    pods that violate it, grouped by their violations, each group named by its first pod."""
    from .resources import CORE

    name = (namespace.get("metadata") or {}).get("name", "")
    policy, errs = policy_of((namespace.get("metadata") or {}).get("labels"))
    old_policy, old_errs = (
        policy_of((old.get("metadata") or {}).get("labels")) if old is not None else (None, [])
    )
    if errs and (
        old is None or not old_errs or [str(e) for e in errs] != [str(e) for e in old_errs]
    ):
        raise CORE["namespaces"].invalid(name, errs)
    if old_policy is None or policy.enforce == old_policy.enforce:
        return []
    if policy.enforce.level == "privileged":
        return []
    if (
        policy.enforce.version == old_policy.enforce.version
        and _compare_levels(policy.enforce.level, old_policy.enforce.level) < 1
    ):
        return []
    groups: dict[str, list[str]] = {}
    for pod in pods():
        meta, spec = _meta_and_spec(pod)
        failed = evaluate(policy.enforce, meta, spec, max_version)
        if failed:
            groups.setdefault(", ".join(reason for reason, _ in failed), []).append(
                meta.get("name", "")
            )
    if not groups:
        return []
    warnings = [
        f'existing pods in namespace "{name}" violate the new PodSecurity enforce level '
        f'"{policy.enforce}"'
    ]
    decorated = []
    for reasons, names in groups.items():
        first, others = min(names), len(names) - 1
        if others == 0:
            decorated.append(f"{first}: {reasons}")
        elif others == 1:
            decorated.append(f"{first} (and 1 other pod): {reasons}")
        else:
            decorated.append(f"{first} (and {others} other pods): {reasons}")
    return warnings + sorted(decorated)
