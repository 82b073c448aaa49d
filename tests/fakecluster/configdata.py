"""ConfigMaps and Secrets: what the API server accepts as their data, and the Secret's
encoding (v1.31).

A Secret's `stringData` is merged into `data` (base64) at write and never stored, `type`
defaults to Opaque and cannot change, keys are config keys, data and binaryData hold at
most 1 MiB together; kubernetes.io/dockerconfigjson and kubernetes.io/dockercfg Secrets
need their `.dockerconfigjson` / `.dockercfg` key holding JSON (the kubelet reads pull
credentials only from those two types).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from . import errors as E
from .store import Obj

#: core.MaxSecretSize: what a ConfigMap's data and binaryData, or a Secret's data, may hold.
MAX_CONFIGMAP_BYTES = 1024 * 1024
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
DOCKER_CONFIG_KEYS = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}


def config_key_errors(key: str) -> list[str]:
    """validation.IsConfigMapKey."""
    errors = []
    if len(key) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(key):
        errors.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def configmap_errors(obj: Obj) -> list[E.FieldError]:
    """ValidateConfigMap (pkg/apis/core/validation): keys, keys in both bags, and the total
    size of data plus decoded binaryData."""
    errs: list[E.FieldError] = []
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    total = 0
    for key, value in data.items():
        errs += [E.invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
        if key in binary:
            errs.append(E.invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(str(value).encode("utf-8"))
    for key, value in binary.items():
        errs += [E.invalid(f"binaryData[{key}]", key, m) for m in config_key_errors(key)]
        try:
            total += len(base64.b64decode(str(value), validate=True))
        except ValueError:
            errs.append(E.invalid(f"binaryData[{key}]", "<binary>", "illegal base64 data"))
    if total > MAX_CONFIGMAP_BYTES:
        errs.append(
            E.FieldError(
                "[]", "FieldValueTooLong", None, f"must have at most {MAX_CONFIGMAP_BYTES} bytes"
            )
        )
    return errs


def configmap_data(cm: Obj) -> dict[str, bytes]:
    """A ConfigMap's keys and their bytes (data as UTF-8, binaryData decoded)."""
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for key, value in (cm.get("binaryData") or {}).items():
        out[key] = base64.b64decode(value)
    return out


# -- Secrets ---------------------------------------------------------------------------------
def _decode(value: Any) -> bytes:
    """A []byte field's JSON: base64; the API server refuses anything else at decoding."""
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise E.bad_request(
            f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data: {exc}'
        ) from exc


def default_secret(secret: Obj, old: Obj | None) -> None:
    """stringData into data; type Opaque unless given."""
    secret.setdefault("type", "Opaque")
    data = secret.get("data") or {}
    for value in data.values():
        _decode(value)
    string_data = secret.pop("stringData", None) or {}
    if not isinstance(string_data, dict):
        raise E.bad_request("stringData must be an object of strings")
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data or "data" in secret:
        secret["data"] = data


def secret_errors(secret: Obj, old: Obj | None) -> list[E.FieldError]:
    """ValidateSecret(Update)."""
    errs: list[E.FieldError] = []
    data = secret.get("data") or {}
    total = 0
    for key, value in data.items():
        errs += [E.invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
        total += len(_decode(value))
    if total > MAX_CONFIGMAP_BYTES:
        errs.append(
            E.FieldError(
                "data", "FieldValueTooLong", None, f"must have at most {MAX_CONFIGMAP_BYTES} bytes"
            )
        )
    kind = secret.get("type")
    key = DOCKER_CONFIG_KEYS.get(str(kind))
    if key is not None:
        if key not in data:
            errs.append(E.required(f"data[{key}]"))
        else:
            try:
                json.loads(_decode(data[key]))
            except ValueError as exc:
                errs.append(
                    E.invalid(f"data[{key}]", "<secret contents redacted>", str(exc).split(":")[0])
                )
    if old is not None and old.get("type") != kind:
        errs.append(E.invalid("type", kind, "field is immutable"))
    if old is not None and old.get("immutable"):
        frozen = "field is immutable when `immutable` is set"
        if not secret.get("immutable"):
            errs.append(E.forbidden("immutable", frozen))
        if (old.get("data") or {}) != data:
            errs.append(E.forbidden("data", frozen))
    return errs


def secret_data(secret: Obj) -> dict[str, bytes]:
    """A Secret's keys and their decoded bytes."""
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def gives_pull_credentials(secret: Obj) -> bool:
    """The kubelet's keyring reads only dockerconfigjson and dockercfg Secrets."""
    key = DOCKER_CONFIG_KEYS.get(str(secret.get("type")))
    return key is not None and key in (secret.get("data") or {})


def docker_config_secret(
    name: str, registry: str, username: str = "user", password: str = "pass"
) -> Obj:
    """A kubernetes.io/dockerconfigjson Secret, as `kubectl create secret docker-registry`
    makes it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
