"""Admission checks: CRD schema (strict about unknown fields), operator webhook, core types.

Order and shapes follow the real request path: decoding reports unknown fields (400
`strict decoding error`), the strategy validates the schema (422 Invalid), then the
validating webhook decides (403, `admission webhook "..." denied the request: ...`).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from kubernetes.utils import parse_quantity

from . import errors as E
from .crds import crd_for_kind, crd_schema
from .errors import FieldError

DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)


def _name_reasons(name: str, max_len: int, pattern: re.Pattern[str], message: str) -> list[str]:
    """apimachinery's IsDNS1035Label and the like: the reasons a name is not one."""
    out = []
    if len(name) > max_len:
        out.append(f"must be no more than {max_len} characters")
    if not pattern.match(name):
        out.append(message)
    return out


def dns1035_label(name: str) -> list[str]:
    return _name_reasons(name, 63, _DNS1035, DNS1035_MSG)


def dns1123_label(name: str) -> list[str]:
    return _name_reasons(name, 63, _DNS1123_LABEL, DNS1123_LABEL_MSG)


def dns1123_subdomain(name: str) -> list[str]:
    return _name_reasons(name, 253, _DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MSG)


# -- structural schema: unknown fields, pruning, defaults ---------------------------------
def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _child_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None | bool:
    props = schema.get("properties")
    if props is not None and key in props:
        child: dict[str, Any] = props[key]
        return child
    addl = schema.get("additionalProperties")
    if isinstance(addl, dict):
        return addl
    if addl is True or schema.get("x-kubernetes-preserve-unknown-fields"):
        return True
    return None


def unknown_fields(
    schema: dict[str, Any], value: Any, path: str = "", prune: bool = False
) -> list[str]:
    """Paths the schema does not declare (the real server prunes them; Strict rejects them)."""
    found: list[str] = []
    if not isinstance(schema, dict):
        return found
    if isinstance(value, dict):
        for key in list(value):
            if path == "" and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = _child_schema(schema, key)
            if sub is None:
                found.append(join_path(path, key))
                if prune:
                    del value[key]
            elif isinstance(sub, dict):
                found += unknown_fields(sub, value[key], join_path(path, key), prune)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += unknown_fields(schema["items"], item, f"{path}[{i}]", prune)
    return found


def apply_defaults(schema: dict[str, Any], value: Any) -> None:
    """Structural defaulting: missing properties that declare `default` get it."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and isinstance(sub, dict) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = _child_schema(schema, key)
            if isinstance(sub, dict):
                apply_defaults(sub, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out = f"{out}[{p}]" if isinstance(p, int) else join_path(out, str(p))
    return out


@functools.lru_cache(maxsize=16)
def _validator(schema_json: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(schema_json))


def schema_errors(schema: dict[str, Any], obj: dict[str, Any]) -> list[FieldError]:
    """openAPIV3Schema violations as the apiextensions server words them."""
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    validator = _validator(
        json.dumps(
            {
                **schema,
                "properties": {
                    k: v
                    for k, v in schema.get("properties", {}).items()
                    if k not in ("metadata", "status")
                },
            },
            sort_keys=True,
        )
    )
    out: list[FieldError] = []
    for err in validator.iter_errors(body):
        path = _path(err.absolute_path)
        if err.validator == "required":
            m = re.match(r"^'(.+)' is a required property$", err.message)
            out.append(E.required(join_path(path, m.group(1) if m else "?")))
        elif err.validator == "type":
            actual = json_type(err.instance)
            out.append(
                FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    actual,
                    f'{path} in body must be of type {err.validator_value}: "{actual}"',
                )
            )
        elif err.validator == "enum":
            out.append(E.not_supported(path, err.instance, [str(v) for v in err.validator_value]))
        elif err.validator == "pattern":
            out.append(
                E.invalid(
                    path, err.instance, f"{path} in body should match '{err.validator_value}'"
                )
            )
        elif err.validator in ("minimum", "maximum"):
            word = "greater" if err.validator == "minimum" else "less"
            out.append(
                E.invalid(
                    path,
                    err.instance,
                    f"{path} in body should be {word} than or equal to {err.validator_value}",
                )
            )
        else:
            out.append(
                E.invalid(
                    path,
                    err.instance if _scalar(err.instance) else json_type(err.instance),
                    err.message,
                )
            )
    out.sort(key=lambda e: e.path)
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# -- the training operator's validating webhook (v1.9) -------------------------------------
WEBHOOK_NAMES = {
    "PyTorchJob": "validator.pytorchjob.training-operator.kubeflow.org",
    "TFJob": "validator.tfjob.training-operator.kubeflow.org",
}
REPLICA_FIELD = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs"}
DEFAULT_CONTAINER = {"PyTorchJob": "pytorch", "TFJob": "tensorflow"}
MANAGED_BY = ["kubeflow.org/training-operator", "kueue.x-k8s.io/multikueue"]


def webhook_errors(obj: dict[str, Any]) -> list[FieldError]:
    """The operator's ValidateCreate: field errors in the order Go would find them."""
    kind = obj.get("kind", "")
    if kind not in WEBHOOK_NAMES:
        return []
    out: list[FieldError] = []
    name = (obj.get("metadata") or {}).get("name", "")
    reasons = dns1035_label(name)
    if reasons:
        out.append(E.invalid("metadata.name", name, "should match: " + ",".join(reasons)))
    spec = obj.get("spec") or {}
    managed_by = (spec.get("runPolicy") or {}).get("managedBy")
    if managed_by is not None and managed_by not in MANAGED_BY:
        out.append(E.not_supported("spec.runPolicy.managedBy", managed_by, MANAGED_BY))
    field = REPLICA_FIELD[kind]
    base = f"spec.{field}"
    if kind == "PyTorchJob":
        elastic = spec.get("elasticPolicy")
        if elastic is not None:
            if "Worker" not in (spec.get(field) or {}):
                out.append(
                    E.required(f"{base}[Worker]", "must be configured if elastic policy is used")
                )
            if elastic.get("nProcPerNode") is not None and spec.get("nprocPerNode") is not None:
                out.append(
                    E.forbidden(
                        "spec.elasticPolicy.nProcPerNode", "must not be used with spec.nprocPerNode"
                    )
                )
    replicas = spec.get(field)
    if replicas is None:
        out.append(E.required(base, "must be required"))
        return out
    container_name = DEFAULT_CONTAINER[kind]
    valid_types = ["Master", "Worker"] if kind == "PyTorchJob" else None
    for rtype, rspec in replicas.items():
        role = f"{base}[{rtype}]"
        containers_path = f"{role}.template.spec.containers"
        if valid_types is not None and rtype not in valid_types:
            out.append(E.not_supported(role, rtype, valid_types))
        containers = (((rspec or {}).get("template") or {}).get("spec") or {}).get("containers")
        containers = containers or []
        if not containers:
            out.append(E.required(containers_path, "must be specified"))
        present = False
        for i, c in enumerate(containers):
            if not c.get("image"):
                out.append(E.required(f"{containers_path}[{i}].image", "must be required"))
            if c.get("name") == container_name:
                present = True
        if not present:
            out.append(
                E.required(
                    containers_path, f"must have at least one container with name {container_name}"
                )
            )
        count = (rspec or {}).get("replicas")
        if not isinstance(count, int) or isinstance(count, bool):
            count = None
        if kind == "PyTorchJob":
            if rtype == "Master":
                if count is None or count != 1:
                    out.append(E.forbidden(f"{role}.replicas", "must be 1"))
            elif count is not None and count < 1:
                out.append(E.forbidden(f"{role}.replicas", "must be at least 1"))
    if kind == "TFJob" and sum(1 for t in replicas if t in ("Chief", "Master")) > 1:
        out.append(E.forbidden(base, "must not have more than 1 Chief or Master role"))
    return out


def webhook_denial(obj: dict[str, Any]) -> E.StatusError | None:
    """The API server's rendering of a webhook denial (controller-runtime Denied: 403)."""
    errs = webhook_errors(obj)
    if not errs:
        return None
    hook = WEBHOOK_NAMES[obj["kind"]]
    message = f'admission webhook "{hook}" denied the request: ' + E.aggregate(
        [str(e) for e in errs]
    )
    return E.StatusError(403, "Forbidden", message)


def strict_decoding_error(kind: str, version: str, paths: list[str]) -> E.StatusError:
    """fieldValidation=Strict: 400 BadRequest, every unknown field listed."""
    fields = ", ".join(f'unknown field "{p}"' for p in paths)
    return E.bad_request(
        f'{kind} in version "{version}" cannot be handled as a {kind}: '
        f"strict decoding error: {fields}"
    )


def validate_job(obj: dict[str, Any], crds_dir: Path | None = None) -> list[str]:
    """Every problem the fake API server would reject a TFJob/PyTorchJob for, as text.

    Unknown fields (`unknown field "spec.x"`), schema violations and webhook denials, so a
    manifest unit test can assert `validate_job(m) == []` without starting a cluster.
    """
    problems: list[str] = []
    kind = obj.get("kind")
    if kind not in WEBHOOK_NAMES:
        return [
            f'kind: Unsupported value: {json.dumps(kind)}: supported values: "PyTorchJob", "TFJob"'
        ]
    if obj.get("apiVersion") != "kubeflow.org/v1":
        problems.append(
            f"apiVersion: Invalid value: {json.dumps(obj.get('apiVersion'))}: "
            'must be "kubeflow.org/v1"'
        )
    crd = crd_for_kind(kind, crds_dir)
    assert crd is not None, f"no CRD for {kind}"
    schema = crd_schema(crd)
    body = copy.deepcopy(obj)
    body.pop("status", None)
    problems += [f'unknown field "{p}"' for p in unknown_fields(schema, body)]
    meta = body.get("metadata") or {}
    if not meta.get("name") and not meta.get("generateName"):
        problems.append("metadata.name: Required value: name or generateName is required")
    apply_defaults(schema, body)
    problems += [str(e) for e in schema_errors(schema, body)]
    if meta.get("name"):
        problems += [str(e) for e in webhook_errors(body)]
    return problems


# -- core types: the subset of apiserver validation the project can trip on ----------------
def _quantity(value: Any) -> bool:
    try:
        parse_quantity(value)
    except (ValueError, TypeError):
        return False
    return True


VOLUME_SOURCES_REQUIRED = {
    "persistentVolumeClaim": "claimName",
    "secret": "secretName",
    "configMap": "name",
}
TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def name_errors(path: str, name: str, seen: set[str]) -> list[FieldError]:
    """A volume's or container's name: given, a DNS-1123 label, one of its kind (`seen`
    collects them)."""
    errors: list[FieldError] = []
    if not name:
        errors.append(E.required(f"{path}.name"))
    elif dns1123_label(name):
        errors.append(E.invalid(f"{path}.name", name, dns1123_label(name)[-1]))
    elif name in seen:
        errors.append(FieldError(f"{path}.name", "FieldValueDuplicate", name))
    seen.add(name)
    return errors


def volume_errors(volumes: list[dict[str, Any]]) -> list[FieldError]:
    """ValidateVolumes, the rules a pod's settings trip on: names, one source, the source's
    required name, an emptyDir's sizeLimit."""
    out: list[FieldError] = []
    seen: set[str] = set()
    for i, vol in enumerate(volumes):
        p = f"spec.volumes[{i}]"
        out += name_errors(p, vol.get("name") or "", seen)
        sources = [k for k in vol if k != "name"]
        if len(sources) > 1:
            out.append(E.forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
        for source, key in VOLUME_SOURCES_REQUIRED.items():
            if isinstance(vol.get(source), dict) and not vol[source].get(key):
                out.append(E.required(f"{p}.{source}.{key}"))
        size = (
            (vol.get("emptyDir") or {}).get("sizeLimit")
            if isinstance(vol.get("emptyDir"), dict)
            else None
        )
        if size is not None and not _quantity(size):
            out.append(
                E.invalid(
                    f"{p}.emptyDir.sizeLimit",
                    size,
                    "quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )
            )
    return out


def env_errors(prefix: str, env: list[dict[str, Any]]) -> list[FieldError]:
    """validateEnv: a name, and one valueFrom source naming its object and key."""
    out: list[FieldError] = []
    for i, var in enumerate(env):
        p = f"{prefix}.env[{i}]"
        if not var.get("name"):
            out.append(E.required(f"{p}.name"))
        source = var.get("valueFrom")
        if not isinstance(source, dict):
            continue
        if "value" in var and var["value"] != "":
            out.append(
                E.invalid(
                    f"{p}.valueFrom",
                    "",
                    "may not be specified when `value` is not empty",
                )
            )
        kinds = [k for k in source if source[k] is not None]
        if len(kinds) > 1:
            out.append(
                E.invalid(
                    f"{p}.valueFrom",
                    "",
                    "may not have more than one field specified at a time",
                )
            )
        for kind in ("secretKeyRef", "configMapKeyRef"):
            ref = source.get(kind)
            if isinstance(ref, dict):
                for key in ("key", "name"):
                    if not ref.get(key):
                        out.append(E.required(f"{p}.valueFrom.{kind}.{key}"))
    return out


def toleration_errors(tolerations: list[dict[str, Any]]) -> list[FieldError]:
    """ValidateTolerations."""
    out: list[FieldError] = []
    for i, t in enumerate(tolerations):
        p = f"spec.tolerations[{i}]"
        operator = t.get("operator") or "Equal"
        if not t.get("key") and operator != "Exists":
            out.append(
                E.invalid(
                    f"{p}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all '
                    'values and all keys"',
                )
            )
        if operator == "Exists" and t.get("value"):
            out.append(
                E.invalid(
                    f"{p}.operator",
                    t.get("value"),
                    "value must be empty when `operator` is 'Exists'",
                )
            )
        elif operator not in ("Equal", "Exists"):
            out.append(E.not_supported(f"{p}.operator", operator, ["Equal", "Exists"]))
        effect = t.get("effect")
        if effect and effect not in TOLERATION_EFFECTS:
            out.append(E.not_supported(f"{p}.effect", effect, TOLERATION_EFFECTS))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            out.append(
                E.invalid(
                    f"{p}.effect",
                    effect or "",
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
    return out


def pod_errors(pod: dict[str, Any]) -> list[FieldError]:
    """A few ValidatePod rules: containers, names, images, restartPolicy, volumes, mounts,
    env sources, resources, tolerations."""
    out: list[FieldError] = []
    spec = pod.get("spec") or {}
    out += volume_errors(spec.get("volumes") or [])
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    containers = spec.get("containers") or []
    if not containers:
        out.append(E.required("spec.containers"))
    for group, items in (
        ("initContainers", spec.get("initContainers") or []),
        ("containers", containers),
    ):
        seen: set[str] = set()
        for i, c in enumerate(items):
            p = f"spec.{group}[{i}]"
            out += name_errors(p, c.get("name") or "", seen)
            if not c.get("image"):
                out.append(E.required(f"{p}.image"))
            out += env_errors(p, c.get("env") or [])
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") not in volumes:
                    out.append(
                        FieldError(
                            f"{p}.volumeMounts[{j}].name", "FieldValueNotFound", m.get("name")
                        )
                    )
            res = c.get("resources") or {}
            for section in ("limits", "requests"):
                for rname, q in (res.get(section) or {}).items():
                    if not _quantity(q):
                        out.append(
                            E.invalid(
                                f"{p}.resources.{section}[{rname}]",
                                q,
                                "quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                            )
                        )
            for rname, q in (res.get("requests") or {}).items():
                lim = (res.get("limits") or {}).get(rname)
                if (
                    lim is not None
                    and _quantity(q)
                    and _quantity(lim)
                    and parse_quantity(q) > parse_quantity(lim)
                ):
                    out.append(
                        E.invalid(
                            f"{p}.resources.requests",
                            q,
                            f"must be less than or equal to {rname} limit of {lim}",
                        )
                    )
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        out.append(E.not_supported("spec.restartPolicy", policy, ["Always", "OnFailure", "Never"]))
    out += toleration_errors(spec.get("tolerations") or [])
    return out
