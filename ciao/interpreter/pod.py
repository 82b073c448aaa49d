"""Pod settings: what a job's pods need on a real cluster besides cpu, memory and GPUs.

One model for the three ways to say them: config `pod:` defaults, named `profiles:`, and
the cell's magics (`%volume`, `%env`, `%toleration`, ...). Each setting is read from the
same text by the same function wherever it is written (`read_setting`), so a value means
one thing and is refused with one message. Pure: no I/O, no Kubernetes client; the
backends map a `PodSettings` to their APIs (`ciao.backend.kubeflow.pod_settings`) or to
local processes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ciao.constants import CODE_DIR
from ciao.errors import excerpt
from ciao.interpreter.quantity import check_quantity

VolumeKind = Literal["pvc", "emptyDir", "configMap", "secret", "hostPath"]
VOLUME_KINDS: tuple[VolumeKind, ...] = ("pvc", "emptyDir", "configMap", "secret", "hostPath")
#: The taint effects a toleration may name (empty: every effect).
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
#: Where `%shm` mounts its in-memory emptyDir.
SHM_PATH = "/dev/shm"

#: Kubernetes' name grammars (apimachinery validation).
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_SUBDOMAIN = 253
MAX_NAME = 63

#: Variables every replica gets from Ciao, the operator or torchrun: a cell that set one
#: would break its own job (a wrong RANK hangs every replica).
RESERVED_ENV = frozenset(
    {
        "MASTER_ADDR",
        "MASTER_PORT",
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "TF_CONFIG",
        "PYTHONUNBUFFERED",
        "HOME",
        "PYTHONUSERBASE",
    }
)
RESERVED_ENV_PREFIXES = ("CIAO_", "PET_", "TORCHELASTIC_")
#: Mount paths Ciao's own volumes take.
RESERVED_MOUNTS = (CODE_DIR, "/home/ciao")


@dataclass(frozen=True)
class Volume:
    """One volume and where the training container sees it.

    `source`: the claim, ConfigMap or Secret name, or the host folder (hostPath); empty
    for an emptyDir. `size`: an emptyDir's sizeLimit; `memory`: backed by RAM (tmpfs).
    """

    kind: VolumeKind
    source: str
    path: str
    read_only: bool = False
    size: str = ""
    memory: bool = False

    def describe(self) -> str:
        """As the magic writes it: `pvc:datasets:/data:ro`."""
        parts = [self.kind, *([self.source] if self.source else []), self.path]
        if self.size:
            parts.append(self.size)
        if self.read_only:
            parts.append("ro")
        return ":".join(parts)


@dataclass(frozen=True)
class EnvVar:
    """`%env=NAME=value`, or a reference to a Secret's (or ConfigMap's) key: Ciao never
    reads the value, the kubelet does."""

    name: str
    value: str = ""
    #: "secret" or "configMap" with `ref_name`/`ref_key`; "" for a plain value.
    ref_kind: str = ""
    ref_name: str = ""
    ref_key: str = ""

    def describe(self) -> str:
        if self.ref_kind:
            return f"{self.name}={self.ref_kind}:{self.ref_name}/{self.ref_key}"
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class EnvFrom:
    """`%envFrom=secret:s3-creds`: every key of a Secret (or ConfigMap) as a variable."""

    kind: str  # "secret" | "configMap"
    name: str

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Toleration:
    """`key[=value][:Effect]`: Exists without a value, Equal with one; no effect: all."""

    key: str
    value: str = ""
    effect: str = ""
    exists: bool = True

    def describe(self) -> str:
        text = self.key + (f"={self.value}" if not self.exists else "")
        return text + (f":{self.effect}" if self.effect else "")


@dataclass(frozen=True)
class PodSettings:
    """Everything a cell may say about its pods besides resources; empty means "not set".

    `origins` says where each setting came from (`line 3`, `profile gpu`, `config pod`),
    for errors a backend finds later (a release that cannot express a setting): by magic
    (`volume`: where the first was given) and by value as the magic writes it
    (`volume=hostPath:/x:/data`), since the values of one list may come from several places.
    """

    volumes: tuple[Volume, ...] = ()
    shm: str = ""
    env: tuple[EnvVar, ...] = ()
    env_from: tuple[EnvFrom, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    service_account: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    priority_class: str = ""
    scheduler_name: str = ""
    image: str = ""
    #: Profile and config only: Kubernetes objects as written (the API server validates).
    affinity: dict[str, Any] | None = field(default=None, compare=False)
    security_context: dict[str, Any] | None = field(default=None, compare=False)
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "origins")

    def set_names(self) -> list[str]:
        """The settings given, by their magic's (or config key's) name."""
        return [
            SETTING_OF_FIELD[f.name]
            for f in fields(self)
            if f.name != "origins" and getattr(self, f.name)
        ]

    def origin(self, setting: str, text: str = "") -> str:
        """Where `setting` (a magic name) was given: `line 3`, `profile gpu`, `config pod`;
        with `text` (a value as the magic writes it, `pvc:datasets:/data:ro`), where that
        value was."""
        return self.origins.get(f"{setting}={text}") or self.origins.get(setting, "the cell")

    def with_defaults(self, earlier: PodSettings) -> PodSettings:
        """These settings over `earlier` ones: config pod < profile < cell < role line.

        Lists merge by identity (env by name, volumes by mount path, node labels by key)
        with the later one winning; tolerations, pull secrets and envFrom add up; one-value
        settings are replaced when given; securityContext, labels, annotations merge by key.
        """
        merged: dict[str, Any] = {}
        for f in fields(self):
            name = f.name
            if name == "origins":
                continue
            ours, theirs = getattr(self, name), getattr(earlier, name)
            merged[name] = _MERGE.get(name, _replace)(theirs, ours)
        origins = dict(earlier.origins)
        origins.update(self.origins)
        return PodSettings(**merged, origins=origins)

    def mount_env(self) -> dict[str, str]:
        """`CIAO_VOLUME_<NAME>` for every mounted folder: where it is for this replica (its
        mount path on a cluster; the local folder is given by the local backend)."""
        return {volume_env_name(v.path): v.path for v in self.volumes}


def volume_env_name(path: str) -> str:
    """`/data/train` -> CIAO_VOLUME_DATA_TRAIN: the variable that says where a volume is."""
    return "CIAO_VOLUME_" + re.sub(r"[^A-Za-z0-9]+", "_", path.strip("/")).upper()


def _replace(earlier: Any, later: Any) -> Any:
    return later if later else earlier


def _by_key(
    key: Callable[[Any], Any],
) -> Callable[[tuple[Any, ...], tuple[Any, ...]], tuple[Any, ...]]:
    def merge(earlier: tuple[Any, ...], later: tuple[Any, ...]) -> tuple[Any, ...]:
        replaced = {key(item) for item in later}
        return tuple(item for item in earlier if key(item) not in replaced) + tuple(later)

    return merge


def _union(earlier: tuple[Any, ...], later: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys((*earlier, *later)))


def _dict_merge(
    earlier: dict[str, Any] | None, later: dict[str, Any] | None
) -> dict[str, Any] | None:
    if not later:
        return earlier
    return {**(earlier or {}), **later}


#: What identifies one item of a list setting, and what that is called: a later item with
#: the same identity replaces an earlier one when settings merge, and two in one place (a
#: cell's scope, a config section) are an error.
IDENTITIES: dict[str, tuple[str, Callable[[Any], str]]] = {
    "volumes": ("the mount path", lambda v: v.path),
    "env": ("the variable", lambda e: e.name),
    "node_selector": ("the node label", lambda kv: kv[0]),
    "labels": ("the label", lambda kv: kv[0]),
    "annotations": ("the annotation", lambda kv: kv[0]),
}


def identity(field_name: str, value: Any) -> tuple[str, str] | None:
    """(what it is, which one) of one item of a list setting, like ("the variable",
    "TOKEN"); None where items have no identity (tolerations, pull secrets add up)."""
    known = IDENTITIES.get(field_name)
    return (known[0], known[1](value)) if known else None


_MERGE: dict[str, Callable[[Any, Any], Any]] = {
    **{name: _by_key(key) for name, (_, key) in IDENTITIES.items()},
    "env_from": _union,
    "tolerations": _union,
    "image_pull_secrets": _union,
    "security_context": _dict_merge,
}


class SettingError(ValueError):
    """A pod setting's value is wrong; the message says what and how to write it."""


# --- one reader per setting: the text a magic (or a config list item) holds ---------------


def read_volume(text: str) -> Volume:
    """`pvc:NAME:/path[:ro]`, `emptyDir:/path[:SIZE]`, `configMap:NAME:/path`,
    `secret:NAME:/path`, `hostPath:/folder:/path[:ro]`."""
    parts = text.split(":")
    kind = _volume_kind(parts[0])
    if kind == "emptyDir":
        if len(parts) not in (2, 3):
            raise SettingError(
                f"expected emptyDir:/path or emptyDir:/path:SIZE, got {excerpt(text)}"
            )
        size = parts[2] if len(parts) == 3 else ""
        if size:
            _check_quantity(size, "the emptyDir's size")
        return Volume("emptyDir", "", _mount_path(parts[1]), size=size)
    if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("ro", "rw")):
        raise SettingError(f"expected {kind}:{_SOURCE[kind]}:/path[:ro], got {excerpt(text)}")
    source, path = parts[1], _mount_path(parts[2])
    read_only = len(parts) == 4 and parts[3] == "ro"
    if kind == "hostPath":
        if not source.startswith(("/", "~")):
            raise SettingError(f"the host folder must be an absolute path, got {excerpt(source)}")
    else:
        _check_subdomain(source, f"a {_SOURCE[kind]}")
    # ConfigMap and Secret volumes are read-only whatever the mount says
    return Volume(kind, source, path, read_only=read_only or kind in ("configMap", "secret"))


_SOURCE: dict[str, str] = {
    "pvc": "claim name",
    "configMap": "ConfigMap name",
    "secret": "Secret name",
    "hostPath": "/host/folder",
    "emptyDir": "",
}


def _volume_kind(word: str) -> VolumeKind:
    for kind in VOLUME_KINDS:
        if word.lower() == kind.lower() or (
            kind == "pvc" and word.lower() == "persistentvolumeclaim"
        ):
            return kind
    raise SettingError(
        f"unknown volume kind {excerpt(word)}; write pvc:NAME:/path[:ro], emptyDir:/path, "
        "configMap:NAME:/path, secret:NAME:/path or hostPath:/folder:/path"
    )


def _mount_path(path: str) -> str:
    """The mount path, as one spelling (`/data//x/` is `/data/x`): the identity by which
    two volumes of one scope clash and a later one replaces an earlier one."""
    clean = re.sub("/+", "/", path).rstrip("/")
    if not path.startswith("/") or not clean:
        raise SettingError(
            f"the mount path must be an absolute folder like /data, got {excerpt(path)}"
        )
    if ".." in path.split("/"):
        raise SettingError(f"the mount path must not contain '..', got {excerpt(path)}")
    for reserved in RESERVED_MOUNTS:
        if (
            clean == reserved
            or clean.startswith(reserved + "/")
            or reserved.startswith(clean + "/")
        ):
            raise SettingError(f"{reserved} is where Ciao mounts its own files: mount elsewhere")
    if clean == SHM_PATH:
        raise SettingError(f"{SHM_PATH} is %shm's: write %shm=8Gi for a larger shared memory")
    return clean


def read_shm(text: str) -> str:
    """`%shm=8Gi`: the size of the in-memory emptyDir at /dev/shm."""
    _check_quantity(text, "/dev/shm's size")
    return text


def read_env(text: str) -> EnvVar:
    """`NAME=value`, `NAME=secret:SECRET/KEY`, `NAME=configMap:NAME/KEY`."""
    name, eq, value = text.partition("=")
    name, value = name.strip(), value.strip()  # `%env=A = 1` means A=1, as the other magics
    if not eq:
        raise SettingError(f"expected NAME=value or NAME=secret:SECRET/KEY, got {excerpt(text)}")
    _check_env_name(name)
    prefix, colon, reference = value.partition(":")
    kind = _REF_KINDS.get(prefix.lower()) if colon else None
    if kind is None:
        return EnvVar(name, value=value)
    ref_name, slash, key = reference.partition("/")
    if not slash or not key:
        raise SettingError(
            f"{name}: a {kind} reference is {kind}:NAME/KEY (the key inside it), "
            f"got {excerpt(value)}"
        )
    _check_subdomain(ref_name, f"a {kind} name")
    if len(key) > MAX_SUBDOMAIN or not _KEY.fullmatch(key):
        raise SettingError(f"{excerpt(key)} is not a {kind} key (letters, digits, -, _, .)")
    return EnvVar(name, ref_kind=kind, ref_name=ref_name, ref_key=key)


#: The objects a value may come from, as written (any case) -> as Kubernetes names them.
_REF_KINDS = {"secret": "secret", "configmap": "configMap"}


def _check_env_name(name: str) -> None:
    if not _ENV_NAME.fullmatch(name):
        raise SettingError(f"{excerpt(name)} is not an environment variable name")
    if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
        raise SettingError(
            f"{name} is set by Ciao or the operator for every replica; a cell cannot set it"
        )


def read_env_from(text: str) -> EnvFrom:
    """`secret:NAME` or `configMap:NAME`."""
    word, colon, name = text.partition(":")
    kind = _REF_KINDS.get(word.lower())
    if not colon or kind is None:
        raise SettingError(f"expected secret:NAME or configMap:NAME, got {excerpt(text)}")
    _check_subdomain(name, f"a {kind} name")
    return EnvFrom(kind, name)


def read_node_selector(text: str) -> tuple[str, str]:
    """`key=value`: a node label the pods' node must have."""
    key, eq, value = text.partition("=")
    if not eq:
        raise SettingError(
            f"expected label=value like nvidia.com/gpu.product=NVIDIA-A100, got {excerpt(text)}"
        )
    check_label_key(key)
    check_label_value(value)
    return key, value


def read_toleration(text: str) -> Toleration:
    """`key[=value][:Effect]`: tolerate a taint (Exists without a value, Equal with one)."""
    body, colon, written = text.rpartition(":") if ":" in text else (text, "", "")
    effect = next((e for e in EFFECTS if e.lower() == written.lower()), "")
    if colon and not effect:
        raise SettingError(f"unknown taint effect {excerpt(written)}; one of {', '.join(EFFECTS)}")
    key, eq, value = body.partition("=")
    check_label_key(key)
    if eq:
        check_label_value(value)
    return Toleration(key, value, effect, exists=not eq)


def read_subdomain(what: str) -> Callable[[str], str]:
    """A reader of one object name (service account, pull secret, priority class,
    scheduler)."""

    def read(text: str) -> str:
        _check_subdomain(text, what)
        return text

    return read


def read_image(text: str) -> str:
    """An image reference: no blanks, at most 4096 characters (what a registry accepts is
    the registry's to say)."""
    if len(text) > 4096 or not text or any(c.isspace() for c in text) or text != text.strip():
        raise SettingError(f"{excerpt(text)} is not an image reference like pytorch/pytorch:2.5.1")
    return text


def check_label_key(key: str) -> None:
    """A qualified name: `[prefix/]name`, prefix a DNS subdomain, name at most 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > MAX_SUBDOMAIN or not DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SettingError(
            f"{excerpt(key)}: the prefix before / must be a DNS name like example.com"
        )
    if not name or len(name) > MAX_NAME or not _QUALIFIED_NAME.fullmatch(name):
        raise SettingError(
            f"{excerpt(key)} is not a label key (at most 63 letters, digits, -, _ or ., "
            "starting and ending with a letter or digit, after an optional example.com/ prefix)"
        )


def check_label_value(value: str) -> None:
    if len(value) > MAX_NAME or not _LABEL_VALUE.fullmatch(value):
        raise SettingError(
            f"{excerpt(value)} is not a label value (at most 63 letters, digits, -, _ or ., "
            "starting and ending with a letter or digit)"
        )


def _check_subdomain(name: str, what: str) -> None:
    if not name or len(name) > MAX_SUBDOMAIN or not DNS_SUBDOMAIN.fullmatch(name):
        raise SettingError(f"{excerpt(name)} is not {what} (lower-case letters, digits, - and .)")


def _check_quantity(text: str, what: str) -> None:
    problem = check_quantity("memory", text)
    if problem is not None:
        raise SettingError(f"{what}: {problem}")


# --- the table: which magic sets which field, and how it is read ---------------------------


@dataclass(frozen=True)
class Setting:
    """One pod setting: its magic (and config key), the field it sets, how it is read.

    `many`: the magic may be given again (each adds one); otherwise once per scope.
    `cluster_only`: no meaning for local processes (the local backend lists it).
    `per_role`: a role's line may give it for that role alone; otherwise it is the whole
    job's (one image per job).
    """

    magic: str
    field: str
    read: Callable[[str], Any]
    many: bool
    config_key: str
    cluster_only: bool = True
    per_role: bool = True


SETTINGS: tuple[Setting, ...] = (
    Setting("volume", "volumes", read_volume, True, "volumes"),
    Setting("shm", "shm", read_shm, False, "shm"),
    Setting("env", "env", read_env, True, "env", cluster_only=False),
    Setting("envFrom", "env_from", read_env_from, True, "envFrom"),
    Setting("nodeSelector", "node_selector", read_node_selector, True, "nodeSelector"),
    Setting("toleration", "tolerations", read_toleration, True, "tolerations"),
    Setting(
        "serviceAccount",
        "service_account",
        read_subdomain("a service account name"),
        False,
        "serviceAccount",
    ),
    Setting(
        "imagePullSecret",
        "image_pull_secrets",
        read_subdomain("a Secret name"),
        True,
        "imagePullSecrets",
    ),
    Setting(
        "priorityClass",
        "priority_class",
        read_subdomain("a priority class name"),
        False,
        "priorityClass",
    ),
    Setting(
        "schedulerName",
        "scheduler_name",
        read_subdomain("a scheduler name"),
        False,
        "schedulerName",
    ),
    Setting("image", "image", read_image, False, "image", per_role=False),
)
SETTING_BY_MAGIC: dict[str, Setting] = {s.magic: s for s in SETTINGS}
#: Profile and config keys that only the config can set (Kubernetes objects as written).
OBJECT_KEYS = {
    "affinity": "affinity",
    "securityContext": "security_context",
    "labels": "labels",
    "annotations": "annotations",
}
SETTING_OF_FIELD: dict[str, str] = {
    **{s.field: s.magic for s in SETTINGS},
    **{fld: key for key, fld in OBJECT_KEYS.items()},
}


def add_setting(settings: PodSettings, setting: Setting, value: Any, origin: str) -> PodSettings:
    """`settings` with one more value of `setting` (appended, or the one value)."""
    current = getattr(settings, setting.field)
    changes: dict[str, Any] = {setting.field: (*current, value) if setting.many else value}
    item = f"{setting.magic}={_magic_text(value)}"
    changes["origins"] = {
        **settings.origins,
        setting.magic: settings.origins.get(setting.magic, origin),
        item: settings.origins.get(item, origin),
    }
    return replace(settings, **changes)


def settings_from(values: Iterable[tuple[Setting, Any, str]]) -> PodSettings:
    """The settings of (setting, read value, origin) triples, in order (later ones win)."""
    settings = PodSettings()
    for setting, value, origin in values:
        settings = add_setting(settings, setting, value, origin)
    return settings


def as_magics(settings: PodSettings) -> list[tuple[str, str]]:
    """Every value of `settings` as the magic that would give it, `("volume",
    "pvc:datasets:/data:ro")`, in the SETTINGS table's order (then the config-only keys),
    for notes and %dryrun: what a user reads is what they would write."""
    said: list[tuple[str, str]] = []
    for setting in SETTINGS:
        value = getattr(settings, setting.field)
        for item in value if setting.many else ([value] if value else []):
            said.append((setting.magic, _magic_text(item)))
    for key, name in OBJECT_KEYS.items():
        value = getattr(settings, name)
        if value:
            pairs = value.items() if isinstance(value, dict) else value
            said.append((key, ",".join(f"{k}={v}" for k, v in pairs)))
    return said


def _magic_text(item: Any) -> str:
    if isinstance(item, tuple):  # a node label
        return f"{item[0]}={item[1]}"
    describe = getattr(item, "describe", None)
    return describe() if describe else str(item)
