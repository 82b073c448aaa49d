"""Katib's Go types as its webhooks decode and encode them (the CRDs are schemaless, so this
is the only schema an Experiment has).

`decode` is encoding/json's Unmarshal into the Go struct: a value of the wrong JSON type is
refused with Go's text (`json: cannot unmarshal number into Go struct field
FeasibleSpace.spec.parameters.feasibleSpace.min of type string`), unknown fields and nulls
are dropped; `encode` is Marshal with `omitempty` (empty strings, false, nil pointers and
empty lists and maps vanish; structs never do). The defaulting webhook answers with the
difference between the request and the re-encoded object, so what is stored is
`encode(decode(x))` plus the defaults.

`go_v` and `go_sharp_v` render values as fmt's %v and %#v do, for the webhook's messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Json = Any


class GoDecodeError(Exception):
    """encoding/json's error text."""


@dataclass(frozen=True)
class T:
    """A Go type: kind `string|bool|int32|float64|ptr|slice|map|struct|raw|unstructured`."""

    kind: str
    go: str = ""  # its Go spelling, for error texts
    elem: T | None = None
    fields: tuple[tuple[str, T], ...] = ()

    def field(self, name: str) -> T | None:
        return next((t for n, t in self.fields if n == name), None)


STRING = T("string", "string")
BOOL = T("bool", "bool")
INT32 = T("int32", "int32")
FLOAT64 = T("float64", "float64")
RAW = T("raw")  # a type kept as sent (v1.Container, v1.HTTPGetAction, NAS config)
UNSTRUCTURED = T("unstructured", "unstructured.Unstructured")


def ptr(t: T) -> T:
    return T("ptr", "*" + t.go, t)


def slice_of(t: T) -> T:
    return T("slice", "[]" + t.go, t)


def map_of(t: T) -> T:
    return T("map", "map[string]" + t.go, t)


def struct(go: str, *fields: tuple[str, T]) -> T:
    return T("struct", go, fields=fields)


NAME_VALUE = ("name", STRING), ("value", STRING)
PARAMETER_ASSIGNMENT = struct("v1beta1.ParameterAssignment", *NAME_VALUE)
METRIC_STRATEGY = struct("v1beta1.MetricStrategy", *NAME_VALUE)
OBJECTIVE = struct(
    "v1beta1.ObjectiveSpec",
    ("type", STRING),
    ("goal", ptr(FLOAT64)),
    ("objectiveMetricName", STRING),
    ("additionalMetricNames", slice_of(STRING)),
    ("metricStrategies", slice_of(METRIC_STRATEGY)),
)
ALGORITHM = struct(
    "v1beta1.AlgorithmSpec",
    ("algorithmName", STRING),
    ("algorithmSettings", slice_of(struct("v1beta1.AlgorithmSetting", *NAME_VALUE))),
)
EARLY_STOPPING = struct(
    "v1beta1.EarlyStoppingSpec",
    ("algorithmName", STRING),
    ("algorithmSettings", slice_of(struct("v1beta1.EarlyStoppingSetting", *NAME_VALUE))),
)
FEASIBLE_SPACE = struct(
    "v1beta1.FeasibleSpace",
    ("max", STRING),
    ("min", STRING),
    ("list", slice_of(STRING)),
    ("step", STRING),
    ("distribution", STRING),
)
PARAMETER = struct(
    "v1beta1.ParameterSpec",
    ("name", STRING),
    ("parameterType", STRING),
    ("feasibleSpace", FEASIBLE_SPACE),
)
TRIAL_PARAMETER = struct(
    "v1beta1.TrialParameterSpec", ("name", STRING), ("description", STRING), ("reference", STRING)
)
TRIAL_TEMPLATE = struct(
    "v1beta1.TrialTemplate",
    ("retain", BOOL),
    ("trialSpec", ptr(UNSTRUCTURED)),
    (
        "configMap",
        ptr(
            struct(
                "v1beta1.ConfigMapSource",
                ("configMapName", STRING),
                ("configMapNamespace", STRING),
                ("templatePath", STRING),
            )
        ),
    ),
    ("trialParameters", slice_of(TRIAL_PARAMETER)),
    ("primaryPodLabels", map_of(STRING)),
    ("primaryContainerName", STRING),
    ("successCondition", STRING),
    ("failureCondition", STRING),
)
METRICS_COLLECTOR = struct(
    "v1beta1.MetricsCollectorSpec",
    (
        "source",
        ptr(
            struct(
                "v1beta1.SourceSpec",
                ("httpGet", RAW),
                (
                    "fileSystemPath",
                    ptr(
                        struct(
                            "v1beta1.FileSystemPath",
                            ("path", STRING),
                            ("kind", STRING),
                            ("format", STRING),
                        )
                    ),
                ),
                ("filter", ptr(struct("v1beta1.FilterSpec", ("metricsFormat", slice_of(STRING))))),
            )
        ),
    ),
    ("collector", ptr(struct("v1beta1.CollectorSpec", ("kind", STRING), ("customCollector", RAW)))),
)
EXPERIMENT_SPEC = struct(
    "v1beta1.ExperimentSpec",
    ("parameters", slice_of(PARAMETER)),
    ("objective", ptr(OBJECTIVE)),
    ("algorithm", ptr(ALGORITHM)),
    ("earlyStopping", ptr(EARLY_STOPPING)),
    ("trialTemplate", ptr(TRIAL_TEMPLATE)),
    ("parallelTrialCount", ptr(INT32)),
    ("maxTrialCount", ptr(INT32)),
    ("maxFailedTrialCount", ptr(INT32)),
    ("metricsCollectorSpec", ptr(METRICS_COLLECTOR)),
    ("nasConfig", RAW),
    ("resumePolicy", STRING),
)


def _json_kind(value: Json) -> str:
    """How encoding/json names a JSON value in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_json(value: Json) -> str:
    """encoding/json's Marshal: keys sorted, compact, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def decode(value: Json, t: T, struct_name: str = "", path: str = "") -> Json:
    """`value` as `t` holds it; GoDecodeError with encoding/json's text on a type mismatch.
    Nulls and unknown fields vanish (Go's zero values and ignored keys)."""

    def mismatch(what: str) -> GoDecodeError:
        where = f"Go struct field {struct_name}.{path}" if path else "Go value"
        return GoDecodeError(f"json: cannot unmarshal {what} into {where} of type {t.go}")

    if value is None:
        return None
    if t.kind == "ptr":
        assert t.elem is not None
        return decode(value, t.elem, struct_name, path)
    if t.kind == "raw":
        return value
    if t.kind == "string":
        if not isinstance(value, str):
            raise mismatch(_json_kind(value))
        return value
    if t.kind == "bool":
        if not isinstance(value, bool):
            raise mismatch(_json_kind(value))
        return value
    if t.kind in ("int32", "float64"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise mismatch(_json_kind(value))
        if t.kind == "int32" and (isinstance(value, float) or not -(2**31) <= value < 2**31):
            raise mismatch(f"number {value}")
        return value
    if t.kind == "unstructured":
        if not isinstance(value, dict):
            raise GoDecodeError(
                f"json: cannot unmarshal {_json_kind(value)} into Go value of type "
                "map[string]interface {}"
            )
        if not value.get("kind"):
            raise GoDecodeError(f"Object 'Kind' is missing in '{go_json(value)}'")
        return value
    if t.kind == "slice":
        assert t.elem is not None
        if not isinstance(value, list):
            raise mismatch(_json_kind(value))
        return [decode(v, t.elem, struct_name, path) for v in value]
    if t.kind == "map":
        assert t.elem is not None
        if not isinstance(value, dict):
            raise mismatch(_json_kind(value))
        return {k: decode(v, t.elem, struct_name, path) for k, v in value.items()}
    # struct
    if not isinstance(value, dict):
        raise mismatch(_json_kind(value))
    out = {}
    for name, sub in t.fields:
        if name in value:
            decoded = decode(value[name], sub, t.go.split(".")[-1], f"{path}.{name}".lstrip("."))
            if decoded is not None:
                out[name] = decoded
    return out


def _empty(value: Json, t: T) -> bool:
    """omitempty: false, 0, "", nil pointer, empty slice or map (never a struct)."""
    if value is None:
        return True
    if t.kind == "ptr" or t.kind == "raw" or t.kind == "unstructured":
        return False
    if t.kind == "struct":
        return False
    return value in ("", False, 0) or (isinstance(value, (list, dict)) and not value)


def encode(value: Json, t: T) -> Json:
    """Marshal of a decoded value, every field `omitempty` (as all of Katib's spec fields)."""
    if t.kind == "ptr":
        assert t.elem is not None
        return encode(value, t.elem)
    if t.kind == "slice":
        assert t.elem is not None
        return [encode(v, t.elem) for v in value]
    if t.kind == "map":
        assert t.elem is not None
        return {k: encode(v, t.elem) for k, v in value.items()}
    if t.kind == "struct":
        out = {}
        for name, sub in t.fields:
            if name in value and not _empty(value[name], sub):
                out[name] = encode(value[name], sub)
            elif sub.kind == "struct":
                out[name] = encode(value.get(name) or {}, sub)
        return out
    return value


# -- fmt's %v and %#v -------------------------------------------------------------------------
def go_v(value: Json, t: T) -> str:
    """fmt %v: structs as {a b c}, slices as [x y], maps as map[k:v] (sorted)."""
    if t.kind == "ptr":
        assert t.elem is not None
        return "<nil>" if value is None else "&" + go_v(value, t.elem)
    if t.kind == "slice":
        assert t.elem is not None
        return "[" + " ".join(go_v(v, t.elem) for v in value or []) + "]"
    if t.kind == "map":
        assert t.elem is not None
        items = sorted((value or {}).items())
        return "map[" + " ".join(f"{k}:{go_v(v, t.elem)}" for k, v in items) + "]"
    if t.kind == "struct":
        value = value or {}
        return "{" + " ".join(go_v(value.get(n), sub) for n, sub in t.fields) + "}"
    if t.kind == "bool":
        return "true" if value else "false"
    if t.kind in ("int32", "float64"):
        return str(value or 0)
    if t.kind == "string":
        return str(value or "")
    return "map[]" if value is None else str(value)


def go_sharp_v(value: Json, t: T) -> str:
    """fmt %#v: Go syntax (`[]string{"a", "b"}`, `v1beta1.FeasibleSpace{Max:"1", ...}`)."""
    if t.kind == "string":
        return json.dumps(value or "")
    if t.kind == "slice":
        assert t.elem is not None
        if value is None:
            return f"{t.go}(nil)"
        return t.go + "{" + ", ".join(go_sharp_v(v, t.elem) for v in value) + "}"
    if t.kind == "struct":
        value = value or {}
        parts = [f"{n[:1].upper()}{n[1:]}:{go_sharp_v(value.get(n), sub)}" for n, sub in t.fields]
        return t.go + "{" + ", ".join(parts) + "}"
    return go_v(value, t)
