"""Keywords -> the magic cell they stand for: `ciao.run(worker=2, cpu="1")` is the cell
`%worker=2;%cpu=1`, read by the same interpreter, so the rules and messages are the
magics' own, naming the keyword instead of a line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ciao.api.keywords import RESOURCES, ROLES
from ciao.errors import CiaoError, MagicErrors
from ciao.interpreter.docs import MAGICS


class KeywordError(CiaoError, ValueError):
    """A keyword of `ciao.run` that the magic of the same name would refuse."""

    ename = "KeywordError"


def magic_cell(code: str, settings: Mapping[str, Any]) -> str:
    """The cell whose magics say what `settings` (keyword -> value; None: not given) say,
    above `code`."""
    given = {key: value for key, value in settings.items() if value is not None}
    unknown = sorted(key for key in given if key not in MAGICS or MAGICS[key].kind == "command")
    if unknown:
        raise KeywordError(
            f"unknown keyword {', '.join(unknown)}: ciao.run takes the job magics' names "
            "(ciao.run's docstring lists them; %help in the ciao kernel explains each)"
        )
    lines: list[str] = []
    resources = "".join(f";%{k}={_text(k, given[k])}" for k in RESOURCES if k in given)
    roles = [k for k in ROLES if k in given]
    for role in roles:
        lines.append(f"%{role}={_text(role, given[role])}{resources}")
    if resources and not roles:  # no role to carry them: the magic's own error says so
        lines.append(resources[1:])
    for key, value in given.items():
        doc = MAGICS[key]
        if key in ROLES or key in RESOURCES:
            continue
        if doc.kind == "flag":
            if value is True:
                lines.append(f"%{key}")
            elif value is not False:
                raise KeywordError(f"{key}: True or False, not {value!r}")
        elif doc.kind == "pod" and isinstance(value, Mapping):
            lines += [f"%{key}={_text(key, f'{k}={v}')}" for k, v in value.items()]
        elif doc.kind == "pod" and isinstance(value, list | tuple):
            lines += [f"%{key}={_text(key, item)}" for item in value]
        elif isinstance(value, list | tuple):
            lines.append(f"%{key}={','.join(_text(key, item) for item in value)}")
        else:
            lines.append(f"%{key}={_text(key, value)}")
    if not roles and "%job" not in lines:
        lines.append("%job")  # the config's defaults, as a `%job` cell
    return "\n".join([*lines, code])


def keyword_errors(error: MagicErrors) -> KeywordError:
    """The interpreter's errors, each naming its keyword instead of its line."""
    texts = [f"{e.magic.lstrip('%')}: {e.message}" if e.magic else e.message for e in error.errors]
    texts = list(dict.fromkeys(texts))  # a resource is written on each role's line: once
    if len(texts) == 1:
        return KeywordError(texts[0])
    return KeywordError(f"{len(texts)} problems in the keywords: " + "; ".join(texts))


def _text(key: str, value: Any) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise KeywordError(f"{key}: a value cannot hold a line break: {text!r}")
    return text
