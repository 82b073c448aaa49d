"""Label and field selectors, with the grammar and field sets of the real API server."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import StatusError, bad_request


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !exists, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "in":
            return has and value in self.values
        if self.op == "notin":
            return not has or value not in self.values
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        try:
            number, bound = int(value or ""), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == "gt" else number < bound


_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")
_KEY = re.compile(
    r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise bad_request(f"unable to parse requirement: unexpected input at {text[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse_label_selector(text: str | None) -> list[Requirement]:
    """labels.Parse: `a=b,c!=d,e in (x,y),f notin (z),g,!h,n>3`; errors are 400s."""
    if not text or not text.strip():
        return []
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def fail(msg: str) -> StatusError:
        return bad_request(f"unable to parse requirement: {msg}")

    def check_key(key: str) -> str:
        if not _KEY.match(key):
            raise fail(
                f'key: Invalid value: "{key}": name part must consist of alphanumeric '
                "characters, '-', '_' or '.'"
            )
        return key

    def check_value(v: str) -> str:
        if not _VALUE.match(v) or len(v) > 63:
            raise fail(
                f'values[0][{key}]: Invalid value: "{v}": a valid label must be an '
                "empty string or consist of alphanumeric characters, '-', '_' or '.'"
            )
        return v

    while i < len(toks):
        if toks[i] == "!":
            if i + 1 >= len(toks):
                raise fail("found '', expected: identifier")
            key = check_key(toks[i + 1])
            reqs.append(Requirement(key, "!exists"))
            i += 2
        else:
            key = check_key(toks[i])
            i += 1
            op = toks[i] if i < len(toks) else ","
            if op == ",":
                reqs.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                value = ""
                if i + 1 < len(toks) and toks[i + 1] != ",":
                    value = check_value(toks[i + 1])
                    i += 1
                reqs.append(Requirement(key, "notin" if op == "!=" else "in", (value,)))
                i += 1
            elif op in (">", "<"):
                if i + 1 >= len(toks) or not toks[i + 1].lstrip("-").isdigit():
                    raise fail("for 'gt', 'lt' operators, exactly one value is required")
                reqs.append(Requirement(key, "gt" if op == ">" else "lt", (toks[i + 1],)))
                i += 2
            elif op in ("in", "notin"):
                if i + 1 >= len(toks) or toks[i + 1] != "(":
                    raise fail(f"found '{toks[i + 1] if i + 1 < len(toks) else ''}', expected: '('")
                i += 2
                values: list[str] = []
                expect_value = True
                while i < len(toks) and toks[i] != ")":
                    if toks[i] == ",":
                        if expect_value:
                            values.append("")
                        expect_value = True
                    else:
                        values.append(check_value(toks[i]))
                        expect_value = False
                    i += 1
                if i >= len(toks):
                    raise fail("found '', expected: ')'")
                if expect_value and values:
                    values.append("")
                if not values:
                    raise fail("for 'in', 'notin' operators, values set can't be empty")
                reqs.append(Requirement(key, op, tuple(values)))
                i += 1
            else:
                raise fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i] != ",":
                raise fail(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(toks):
                raise fail("found '', expected: identifier")
    return reqs


def labels_match(reqs: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldTerm:
    field: str
    value: str
    negate: bool


def _get(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_COMMON = ("metadata.name", "metadata.namespace")
FIELDS: dict[str, tuple[str, ...]] = {
    "pods": _COMMON
    + (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": _COMMON
    + (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "services": _COMMON + ("spec.clusterIP", "spec.type"),
    "namespaces": ("metadata.name", "status.phase"),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "secrets": _COMMON + ("type",),
    "priorityclasses": ("metadata.name",),
}


def _field_value(resource: str, obj: dict[str, Any], name: str) -> str:
    if resource == "events" and name == "source":
        return _text((obj.get("source") or {}).get("component"))
    if name == "spec.hostNetwork":
        return _text(bool(_get(obj, name)))
    return _text(_get(obj, name))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, esc = [], "", False
    for ch in text:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(resource: str, text: str | None) -> list[FieldTerm]:
    """fields.ParseSelector plus the per-resource field label conversion (400 if unknown)."""
    if not text or not text.strip():
        return []
    terms: list[FieldTerm] = []
    allowed = FIELDS.get(resource, _COMMON)
    for part in _split_unescaped(text, ","):
        m = re.match(r"^(.*?)(!=|==|=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
        if name not in allowed:
            raise bad_request(f"field label not supported: {name}")
        terms.append(FieldTerm(name, value, op == "!="))
    return terms


def fields_match(resource: str, terms: list[FieldTerm], obj: dict[str, Any]) -> bool:
    for t in terms:
        equal = _field_value(resource, obj, t.field) == t.value
        if equal == t.negate:
            return False
    return True


def compile_selectors(
    resource: str, label_selector: str | None, field_selector: str | None
) -> Callable[[dict[str, Any]], bool]:
    """One predicate for both selectors; parse errors raise 400 before anything is listed."""
    labels = parse_label_selector(label_selector)
    fields = parse_field_selector(resource, field_selector)

    def predicate(obj: dict[str, Any]) -> bool:
        return labels_match(labels, obj) and fields_match(resource, fields, obj)

    return predicate
