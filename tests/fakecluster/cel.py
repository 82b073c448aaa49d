"""x-kubernetes-validations: the CEL rules the served CRDs carry, checked as the server does.

Not a CEL interpreter: the handful of rule shapes found in the schemas under `schemas/`
(immutability `self == oldSelf`, `self in [...]`, `matches`, `size(...) <= n`, `has(...)`,
`self >= n`, one-of and `exists` checks) are recognised; any other rule passes. A failed
rule reads like the apiextensions server's: `spec.x: Invalid value: "string": <message>`,
`<nil>` for a rule on the object root. Transition rules (those naming `oldSelf`) apply on
update only, to values that existed before; list items are correlated by `name`/`manager`.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .errors import FieldError
from .validation import join_path, json_type

_MISSING = object()
_IN = re.compile(r"^self in (\[.*\])$")
_MATCHES_NAME = re.compile(r"^self\.metadata\.name\.matches\('(.*)'\)$")
_SIZE_NAME = re.compile(r"^size\(self\.metadata\.name\) <= (\d+)$")
_EMPTY_OR_MATCHES = re.compile(r"^self == '' \|\| self\.matches\('(.*)'\)$")
_MATCHES = re.compile(r"^self\.matches\('(.*)'\)$")
_GE = re.compile(r"^self >= (-?\d+)$")
_HAS = re.compile(r"^has\(self\.(\w+)\)$")
_ONE_OF = re.compile(r"^\[(.*)\]\.filter\(x, x\)\.size\(\) <= 1$")
_NOT_EXISTS_EQ = re.compile(r"^!self\.exists\((\w+), \1 == '(.*)'\)$")
_STARTUP = (
    "!(has(self.startupPolicy) && self.startupPolicy.startupPolicyOrder == 'InOrder' && "
    "self.replicatedJobs.exists(x, has(x.dependsOn)))"
)


def _type(schema: dict[str, Any], value: Any) -> str:
    return str(schema.get("type") or json_type(value))


def rule_holds(rule: str, value: Any, old: Any = _MISSING) -> bool | None:
    """True/False for a recognised rule; None when the rule does not apply (or is unknown)."""
    rule = " ".join(rule.split())
    if "oldSelf" in rule:
        if old is _MISSING:
            return None
        if rule == "self == oldSelf":
            return bool(value == old)
        return None
    m = _IN.match(rule)
    if m:
        try:
            return value in ast.literal_eval(m.group(1))
        except (ValueError, SyntaxError):
            return None
    m = _MATCHES_NAME.match(rule)
    if m:
        name = ((value or {}).get("metadata") or {}).get("name", "")
        return re.search(m.group(1), name) is not None
    m = _SIZE_NAME.match(rule)
    if m:
        name = ((value or {}).get("metadata") or {}).get("name", "")
        return len(name) <= int(m.group(1))
    m = _EMPTY_OR_MATCHES.match(rule)
    if m:
        return value == "" or re.search(m.group(1), str(value)) is not None
    m = _MATCHES.match(rule)
    if m:
        return re.search(m.group(1), str(value)) is not None
    m = _GE.match(rule)
    if m and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value >= int(m.group(1))
    m = _HAS.match(rule)
    if m and isinstance(value, dict):
        return m.group(1) in value
    m = _ONE_OF.match(rule)
    if m and isinstance(value, dict):
        fields = re.findall(r"has\(self\.(\w+)\)", m.group(1))
        return sum(1 for f in fields if f in value) <= 1
    m = _NOT_EXISTS_EQ.match(rule)
    if m and isinstance(value, list):
        return m.group(2) not in value
    if rule == _STARTUP and isinstance(value, dict):
        in_order = (value.get("startupPolicy") or {}).get("startupPolicyOrder") == "InOrder"
        depends = any("dependsOn" in (r or {}) for r in value.get("replicatedJobs") or [])
        return not (in_order and depends)
    return None


def _item_key(item: Any) -> Any:
    if isinstance(item, dict):
        for k in ("name", "manager"):
            if k in item:
                return (k, item[k])
    return None


def cel_errors(schema: dict[str, Any], obj: Any, old: Any = _MISSING) -> list[FieldError]:
    """Failed rules of `obj` (and, on update, of its change from `old`), skipping status."""
    out: list[FieldError] = []
    body = {k: v for k, v in obj.items() if k != "status"} if isinstance(obj, dict) else obj
    if isinstance(old, dict):
        old = {k: v for k, v in old.items() if k != "status"}
    _walk(schema, body, old, "", out, root=True)
    return out


def _walk(
    schema: Any, value: Any, old: Any, path: str, out: list[FieldError], root: bool = False
) -> None:
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        ok = rule_holds(rule.get("rule", ""), value, old)
        if ok is False:
            message = rule.get("message") or f"failed rule: {rule.get('rule', '')}"
            out.append(
                FieldError(path or "<nil>", "FieldValueInvalid", _type(schema, value), message)
            )
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for key, sub in value.items():
            if root and key in ("metadata", "apiVersion", "kind"):
                continue
            child = props.get(key) if key in props else addl if isinstance(addl, dict) else None
            if child is None:
                continue
            before = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            where = join_path(path, key) if key in props else f"{path}[{key}]"
            _walk(child, sub, before, where, out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        olds: dict[Any, Any] = {}
        if isinstance(old, list):
            for item in old:
                k = _item_key(item)
                if k is not None:
                    olds[k] = item
        for i, item in enumerate(value):
            k = _item_key(item)
            before = olds.get(k, _MISSING) if k is not None else _MISSING
            _walk(schema["items"], item, before, f"{path}[{i}]", out)
