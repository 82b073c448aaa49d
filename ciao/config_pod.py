"""The config's pod settings: `pod:` (every job's) and `profiles:` (`%profile=NAME`).

Each setting is read by the same reader as its magic (ciao.interpreter.pod's SETTINGS), from
the magic's text (`volumes: ["pvc:datasets:/data:ro"]`) or from what a Kubernetes user
writes where that is natural (`env:` as a mapping, tolerations as Kubernetes writes them,
`imagePullSecrets: [{name: regcred}]`); so a value means one thing however it is written,
and every error names the file and the key's path (`profiles.a100.tolerations[1]`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ciao.config_keys import check_keys, shown
from ciao.errors import ConfigError
from ciao.interpreter.pod import (
    EFFECTS,
    OBJECT_KEYS,
    SETTINGS,
    PodSettings,
    Setting,
    SettingError,
    add_setting,
    check_label_key,
    check_label_value,
    identity,
)
from ciao.names import DNS_LABEL

#: The keys of `pod:` and of a profile: each magic's config key, and the Kubernetes
#: objects only the config sets.
POD_KEYS: dict[str, str] = {
    **{s.config_key: f"as %{s.magic}" for s in SETTINGS},
    **{key: "as Kubernetes writes it" for key in OBJECT_KEYS},
}
#: What `affinity:` holds (Kubernetes' Affinity).
AFFINITY_KEYS = {"nodeAffinity": "", "podAffinity": "", "podAntiAffinity": ""}
_TOLERATION_KEYS = {"key": "", "operator": "", "value": "", "effect": ""}
_OPERATORS = ("Exists", "Equal")
#: Kubernetes' env[].valueFrom sources a config may name, and the magic's word for each.
_VALUE_FROM = {"secretKeyRef": "secret", "configMapKeyRef": "configMap"}
_ENV_FROM = {"secretRef": "secret", "configMapRef": "configMap"}


def read_pod(data: Any, where: str, path: str, origin: str) -> PodSettings:
    """One mapping of pod settings (`pod:`, or one profile), every value checked.

    `where` is the file, `path` the key's path (`pod`, `profiles.a100`), `origin` what
    PodSettings.origins says it came from (`config pod`, `profile a100`).
    """
    if data is None:
        return PodSettings()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: {path}: expected a mapping of pod settings like "
            f"{{tolerations: [nvidia.com/gpu:NoSchedule]}}, got {shown(data)}"
        )
    check_keys(data, POD_KEYS, where, f"{path}.")
    settings = PodSettings()
    given = {key: value for key, value in data.items() if value is not None}  # `key:` alone
    for setting in SETTINGS:
        if setting.config_key in given:
            key_path = f"{path}.{setting.config_key}"
            settings = _read_setting(settings, setting, given, where, key_path, origin)
    for key, field_name in OBJECT_KEYS.items():
        if key in given:
            value = _OBJECT_READERS[key](given[key], where, f"{path}.{key}")
            changes: dict[str, Any] = {field_name: value}
            settings = replace(settings, **changes, origins={**settings.origins, key: origin})
    return settings


def read_profiles(data: Any, where: str) -> dict[str, PodSettings]:
    """`profiles: {NAME: settings}`: names are DNS labels (like a100, cpu-only)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: profiles: expected a mapping of names to pod settings like "
            f"{{a100: {{nodeSelector: {{...}}}}}}, got {shown(data)}"
        )
    profiles: dict[str, PodSettings] = {}
    for name, settings in data.items():
        if not isinstance(name, str) or not DNS_LABEL.fullmatch(name):
            raise ConfigError(
                f"{where}: profiles: {shown(name)} is not a profile name (lower-case letters, "
                "digits and -, starting with a letter, like a100 or cpu-only)"
            )
        path = f"profiles.{name}"
        profiles[name] = read_pod(settings, where, path, f"profile {name}")
    return profiles


def pod_as_dict(settings: PodSettings) -> dict[str, Any]:
    """The settings given, by config key, as their magics write them (for `%config`)."""
    shown_settings: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(settings, setting.field)
        if not value:
            continue
        if setting.many:
            shown_settings[setting.config_key] = [_text(item) for item in value]
        else:
            shown_settings[setting.config_key] = _text(value)
    for key, field_name in OBJECT_KEYS.items():
        value = getattr(settings, field_name)
        if value:
            shown_settings[key] = dict(value)
    return shown_settings


def _text(value: Any) -> str:
    """One value as its magic writes it."""
    if isinstance(value, tuple):  # a node label: (key, value)
        return f"{value[0]}={value[1]}"
    return value.describe() if hasattr(value, "describe") else str(value)


# --- one setting: its config value as the magic's texts, each read by the magic's reader ----


def _read_setting(
    settings: PodSettings, setting: Setting, data: dict, where: str, path: str, origin: str
) -> PodSettings:
    """`settings` with the setting at `data[setting.config_key]`; a list item with the
    identity of an earlier one (a variable, a mount path, a node label) is an error."""
    raw = data[setting.config_key]
    if not setting.many:
        value = _read(setting, _scalar(raw, where, path), where, path)
        return add_setting(settings, setting, value, origin)
    first: dict[str, str] = {}
    for item_path, text in _items(setting, raw, where, path):
        value = _read(setting, text, where, item_path)
        known = identity(setting.field, value)
        if known is not None:
            what, which = known
            if which in first:
                raise ConfigError(
                    f"{where}: {item_path}: {what} {which} is given at {first[which]} too; "
                    "give it once"
                )
            first[which] = item_path
        settings = add_setting(settings, setting, value, origin)
    return settings


def _read(setting: Setting, text: str, where: str, path: str) -> Any:
    try:
        return setting.read(text)
    except SettingError as exc:
        raise ConfigError(f"{where}: {path}: {exc}") from None


def _items(setting: Setting, raw: Any, where: str, path: str) -> Iterator[tuple[str, str]]:
    """(the item's path, its text as the magic takes it) for each item of a list setting."""
    if isinstance(raw, dict) and setting.config_key in _MAPPING_FORMS:
        for key, value in raw.items():
            item_path = f"{path}.{key}"
            yield item_path, _MAPPING_FORMS[setting.config_key](key, value, where, item_path)
        return
    if not isinstance(raw, list):
        forms = "a list" + (" or a mapping" if setting.config_key in _MAPPING_FORMS else "")
        raise ConfigError(
            f"{where}: {path}: expected {forms} of %{setting.magic} values, got {shown(raw)}"
        )
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if isinstance(item, dict) and setting.config_key in _OBJECT_FORMS:
            yield item_path, _OBJECT_FORMS[setting.config_key](item, where, item_path)
        else:
            yield item_path, _scalar(item, where, item_path)


def _scalar(value: Any, where: str, path: str) -> str:
    """A string (a number as written). A boolean is refused: YAML reads an unquoted yes,
    on or true as one, and no Kubernetes string field takes it."""
    if value is None:
        raise ConfigError(f"{where}: {path}: missing its value")
    if isinstance(value, bool):
        raise ConfigError(
            f"{where}: {path}: expected a string, got a boolean (YAML reads an unquoted "
            "true, yes or on as one): quote the value"
        )
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where}: {path}: expected a string, got {shown(value)}")
    return str(value)


# --- what a Kubernetes user writes, as the magic's text ----------------------------------


def _env_entry(name: Any, value: Any, where: str, path: str) -> str:
    """`env: {NAME: value}`, `{NAME: secret:NAME/KEY}` or `{NAME: {secretKeyRef: ...}}`."""
    if isinstance(value, dict):
        return f"{name}={_value_from(value, where, path)}"
    return f"{name}={_scalar(value, where, path)}"


def _env_object(item: dict, where: str, path: str) -> str:
    """`env: [{name: NAME, value: V}]` or `[{name: NAME, valueFrom: {secretKeyRef: ...}}]`."""
    check_keys(item, {"name": "", "value": "", "valueFrom": ""}, where, f"{path}.")
    name = _scalar(item.get("name"), where, f"{path}.name")
    if "valueFrom" in item:
        if "value" in item:
            raise ConfigError(f"{where}: {path}: give value or valueFrom, not both")
        return f"{name}={_value_from(item['valueFrom'], where, f'{path}.valueFrom')}"
    return f"{name}={_scalar(item.get('value', ''), where, f'{path}.value')}"


def _value_from(source: Any, where: str, path: str) -> str:
    """`{secretKeyRef: {name, key}}` as `secret:NAME/KEY`."""
    kind, body, ref_path = _one_ref(source, _VALUE_FROM, where, path)
    check_keys(body, {"name": "", "key": ""}, where, f"{ref_path}.")
    name = _scalar(body.get("name"), where, f"{ref_path}.name")
    key = _scalar(body.get("key"), where, f"{ref_path}.key")
    return f"{kind}:{name}/{key}"


def _env_from_object(item: dict, where: str, path: str) -> str:
    """`envFrom: [{secretRef: {name: s3-creds}}]` as `secret:s3-creds`."""
    kind, body, ref_path = _one_ref(item, _ENV_FROM, where, path)
    check_keys(body, {"name": ""}, where, f"{ref_path}.")
    return f"{kind}:{_scalar(body.get('name'), where, f'{ref_path}.name')}"


def _one_ref(source: Any, kinds: dict[str, str], where: str, path: str) -> tuple[str, dict, str]:
    """The one reference a `{secretKeyRef: {...}}`-like mapping holds: (the magic's word
    for its kind, its body, its path)."""
    if not isinstance(source, dict) or len(source) != 1:
        raise ConfigError(
            f"{where}: {path}: expected one of {', '.join(kinds)} with its name, "
            f"got {shown(source)}"
        )
    check_keys(source, dict.fromkeys(kinds, ""), where, f"{path}.")
    ((key, body),) = source.items()
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: {path}.{key}: expected a mapping, got {shown(body)}")
    return kinds[key], body, f"{path}.{key}"


def _node_label(key: Any, value: Any, where: str, path: str) -> str:
    """`nodeSelector: {label: value}`."""
    return f"{key}={_scalar(value, where, path)}"


def _toleration_object(item: dict, where: str, path: str) -> str:
    """A toleration as Kubernetes writes it: {key, operator, value, effect}."""
    check_keys(item, _TOLERATION_KEYS, where, f"{path}.")
    operator = _scalar(item.get("operator", "Equal"), where, f"{path}.operator")
    if operator not in _OPERATORS:
        raise ConfigError(f"{where}: {path}.operator: {shown(operator)} is not Exists or Equal")
    key = _scalar(item.get("key", ""), where, f"{path}.key")
    value = _scalar(item.get("value", ""), where, f"{path}.value")
    effect = _scalar(item.get("effect", ""), where, f"{path}.effect")
    if operator == "Exists" and value:
        raise ConfigError(
            f"{where}: {path}.value: operator Exists tolerates every value: remove the "
            "value, or use operator Equal"
        )
    if effect and effect not in EFFECTS:
        raise ConfigError(
            f"{where}: {path}.effect: {shown(effect)} is not one of {', '.join(EFFECTS)}"
        )
    text = key + (f"={value}" if operator == "Equal" else "")
    return text + (f":{effect}" if effect else "")


def _pull_secret_object(item: dict, where: str, path: str) -> str:
    """`imagePullSecrets: [{name: regcred}]`."""
    check_keys(item, {"name": ""}, where, f"{path}.")
    return _scalar(item.get("name"), where, f"{path}.name")


#: List settings a mapping may give (each key and value one item).
_MAPPING_FORMS = {"env": _env_entry, "nodeSelector": _node_label}
#: List settings whose items may be Kubernetes objects.
_OBJECT_FORMS = {
    "env": _env_object,
    "envFrom": _env_from_object,
    "tolerations": _toleration_object,
    "imagePullSecrets": _pull_secret_object,
}


# --- the Kubernetes objects only the config sets --------------------------------------------


def _mapping(value: Any, where: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"{where}: {path}: expected a mapping, as Kubernetes writes it, got {shown(value)}"
        )
    return value


def _affinity(value: Any, where: str, path: str) -> dict[str, Any]:
    """Kubernetes' Affinity: nodeAffinity, podAffinity, podAntiAffinity (the API server
    checks what is inside)."""
    mapping = _mapping(value, where, path)
    check_keys(mapping, AFFINITY_KEYS, where, f"{path}.")
    return mapping


def _labels(value: Any, where: str, path: str) -> tuple[tuple[str, str], ...]:
    """Pod labels: keys and values as Kubernetes checks them."""
    pairs = []
    for key, text in _mapping(value, where, path).items():
        item = _scalar(text, where, f"{path}.{key}")
        try:
            check_label_key(key)
            check_label_value(item)
        except SettingError as exc:
            raise ConfigError(f"{where}: {path}.{key}: {exc}") from None
        pairs.append((key, item))
    return tuple(pairs)


def _annotations(value: Any, where: str, path: str) -> tuple[tuple[str, str], ...]:
    """Pod annotations: keys as label keys, values free text."""
    pairs = []
    for key, text in _mapping(value, where, path).items():
        try:
            check_label_key(key)
        except SettingError as exc:
            raise ConfigError(f"{where}: {path}.{key}: {exc}") from None
        pairs.append((key, _scalar(text, where, f"{path}.{key}")))
    return tuple(pairs)


_OBJECT_READERS = {
    "affinity": _affinity,
    "securityContext": _mapping,
    "labels": _labels,
    "annotations": _annotations,
}
