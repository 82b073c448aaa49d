"""`%requirements=...`: the job's Python dependencies, as PEP 508 requirements.

Pure text, no imports beyond the standard library: the kernel's runtime dependencies do not
include `packaging`, so the check is written out here from PEP 508 and PEP 440 (the tests
hold it against `packaging` where that is installed). Environment markers cannot be given,
since `;` separates the tokens of a magic line.
"""

from __future__ import annotations

import re

#: PEP 508 names: letters, digits, and `._-` inside.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
#: PEP 440 versions (public and local), as packaging's VERSION_PATTERN reads them.
_VERSION = r"""
    v?
    (?:[0-9]+!)?                                         # epoch
    [0-9]+(?:\.[0-9]+)*                                  # release
    (?:[-_.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_.]?[0-9]*)?     # pre-release
    (?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?        # post-release
    (?:[-_.]?dev[-_.]?[0-9]*)?                           # dev release
"""
_LOCAL = r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)"
_VERSION_RE = re.compile(_VERSION, re.VERBOSE | re.IGNORECASE)
_LOCAL_RE = re.compile(_LOCAL, re.IGNORECASE)
_OPERATORS = ("===", "~=", "==", "!=", "<=", ">=", "<", ">")
_REQUIREMENT = re.compile(
    rf"""
    \s*(?P<name>{_NAME})\s*
    (?:\[\s*(?P<extras>{_NAME}(?:\s*,\s*{_NAME})*)?\s*\])?\s*
    (?:
        @\s*(?P<url>\S+)
      | \(\s*(?P<paren>[^()]*?)\s*\)
      | (?P<specs>[<>=!~].*?)
    )?\s*
    """,
    re.VERBOSE,
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+|file:\S+")


def split_requirements(value: str) -> list[str]:
    """The requirements of a `%requirements` value, split on its commas.

    A comma separates two requirements, except inside the extras' brackets
    (`pandas[sql,excel]`) and before a version clause (`numpy>=1.26,<2` is one requirement:
    a piece that starts with a comparison operator continues the one before it).
    """
    pieces: list[str] = []
    depth = 0
    current = ""
    for char in value:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    pieces.append(current)
    items: list[str] = []
    for piece in (p.strip() for p in pieces):
        if piece and piece[0] in "<>=!~" and items:
            items[-1] = f"{items[-1]},{piece}"
        else:
            items.append(piece)
    return items


def requirement_problem(text: str) -> str | None:
    """Why `text` is not one PEP 508 requirement (without markers), or None when it is."""
    if not text:
        return "an empty requirement (two commas in a row?)"
    if text.startswith("-"):
        return f"{text!r} is a pip option; only requirements are allowed (like pandas==2.2)"
    match = _REQUIREMENT.fullmatch(text)
    if match is None:
        if re.fullmatch(rf"{_NAME}(?:\s+{_NAME})+", text):
            return f"{text!r} is not one requirement: separate requirements with commas"
        if _URL.match(text):
            return f"{text!r} is a URL: name it, as in `mypkg @ {text}`"
        return f"{text!r} is not a valid requirement; write it like pandas==2.2 or numpy>=1.26,<2"
    if match.group("url") is not None:
        if not _URL.fullmatch(match.group("url")):
            return f"{text!r}: after @ comes a URL (https://..., git+https://..., file:...)"
        return None
    specs = match.group("paren")
    if specs is None:
        specs = match.group("specs")
    if specs is not None:
        for spec in (s.strip() for s in specs.split(",")):
            problem = specifier_problem(spec)
            if problem:
                return f"{text!r}: {problem}"
    return None


def specifier_problem(spec: str) -> str | None:
    """Why `spec` (`>=1.26`, `==2.*`, `~=1.4`) is not a PEP 440 version clause, or None."""
    operator = next((op for op in _OPERATORS if spec.startswith(op)), None)
    if operator is None:
        return f"{spec!r} is not a version clause: use ==, !=, <=, >=, <, >, ~= or ==="
    version = spec[len(operator) :].strip()
    if not version:
        return f"{spec!r} has no version after {operator}"
    if operator == "===":
        ok = re.fullmatch(r"[^\s;)]+", version) is not None
    elif operator in ("==", "!=") and version.endswith(".*"):
        ok = _VERSION_RE.fullmatch(version[:-2]) is not None
    else:
        release, plus, local = version.partition("+")
        ok = _VERSION_RE.fullmatch(release) is not None
        if plus:  # a local version only in == and != clauses
            ok = ok and operator in ("==", "!=") and _LOCAL_RE.fullmatch("+" + local) is not None
        if ok and operator == "~=" and not re.match(r"[vV]?(?:[0-9]+!)?[0-9]+\.[0-9]", release):
            return f"~= needs a version of two parts or more, like ~={version}.0"
    if not ok:
        return f"{version!r} is not a valid version for {operator} (PEP 440)"
    return None


def requirement_name(text: str) -> str:
    """The project name of a valid requirement, normalized (PEP 503): `Scikit_Learn` ->
    `scikit-learn`."""
    match = re.match(rf"\s*({_NAME})", text)
    assert match is not None, text
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()
