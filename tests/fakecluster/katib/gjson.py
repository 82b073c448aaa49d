"""The part of GJSON (github.com/tidwall/gjson) a trial's success and failure conditions use.

`status.conditions.#(type=="Complete")#|#(status=="True")#`: dotted keys, array queries
`#(key OP value)` (the first match) and `#(key OP value)#` (every match; keys after it are
taken from each match), `#` (an array's length), and `|` (the path after it applies to the
result as a whole). OP is ==, !=, <, <=, >, >=; values are JSON strings, numbers, true,
false. Anything else (modifiers, wildcards, multipaths) matches nothing here.
"""

from __future__ import annotations

import json
import re
from typing import Any

_QUERY = re.compile(
    r"^#\((?P<key>[^=!<>]+?)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>.+)\)(?P<all>#?)$"
)


def _split(path: str, sep: str) -> list[str]:
    """Split at `sep` outside parentheses and quotes."""
    parts, depth, quoted, current = [], 0, False, ""
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "\\" and i + 1 < len(path):
            current += path[i : i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return bool({"==": left == right, "!=": left != right}.get(op, False))
    if type(left) is not type(right) and not (
        isinstance(left, (int, float)) and isinstance(right, (int, float))
    ):
        return op == "!="
    try:
        return bool(
            {
                "==": left == right,
                "!=": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[op]
        )
    except TypeError:
        return False


_MISSING = object()


def _step(value: Any, component: str, mapped: bool) -> tuple[Any, bool]:
    """One path component; `mapped`: the value is the result of an all-matches query."""
    if mapped and isinstance(value, list) and not component.startswith("#"):
        out = [v[component] for v in value if isinstance(v, dict) and component in v]
        return out, True
    if component == "#":
        return (len(value), False) if isinstance(value, list) else (_MISSING, False)
    m = _QUERY.match(component)
    if m:
        if not isinstance(value, list):
            return _MISSING, False
        try:
            wanted = json.loads(m.group("value"))
        except ValueError:
            return _MISSING, False
        key = m.group("key").strip()
        hits = [
            v
            for v in value
            if isinstance(v, dict) and key in v and _compare(v[key], m.group("op"), wanted)
        ]
        if m.group("all"):
            return hits, True
        return (hits[0] if hits else _MISSING), False
    if isinstance(value, dict):
        return value.get(component.replace("\\.", "."), _MISSING), False
    if isinstance(value, list) and component.isdigit():
        i = int(component)
        return (value[i] if i < len(value) else _MISSING), False
    return _MISSING, False


def get(document: Any, path: str) -> Any:
    """gjson.Get: the value at `path`, or None when nothing matches."""
    value = document
    for segment in _split(path, "|"):
        mapped = False
        for component in _split(segment, "."):
            if component == "":
                continue
            value, mapped = _step(value, component, mapped)
            if value is _MISSING:
                return None
    return value


def matched(document: Any, path: str) -> Any:
    """The condition Katib reads: an object, or an array's first element; None otherwise."""
    found = get(document, path)
    if isinstance(found, dict):
        return found
    if isinstance(found, list) and found:
        return found[0]
    return None
