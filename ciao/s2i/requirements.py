"""The cell's `%requirements` in phase 2: the requirements.txt every provider ships, and the
local backend's check of the kernel's own environment (its replicas run the kernel's Python,
and nothing installs packages for them)."""

from __future__ import annotations

import importlib.metadata
import shlex
import sys
from collections.abc import Callable
from typing import Any

from ciao.interpreter.requirements import requirement_name

#: What a check reports: one line per requirement the environment does not meet.
WARNING = "[ciao] warning: "


def requirements_text(requirements: list[str]) -> str:
    """requirements.txt: one requirement a line ("" for none)."""
    return "".join(f"{item}\n" for item in requirements)


def unmet_requirements(
    requirements: list[str],
    version_of: Callable[[str], str] = importlib.metadata.version,
) -> list[str]:
    """One warning line for each requirement the kernel's environment does not satisfy.

    Versions are compared with `packaging` when it is importable (it usually is: pip,
    setuptools and pytest need it); without it only the presence of each project is checked.
    """
    lines = []
    for item in requirements:
        name, specifier = _parse(item)
        try:
            found = version_of(name)
        except importlib.metadata.PackageNotFoundError:
            lines.append(
                f"{WARNING}{item} is not installed in the kernel's environment; "
                "the local replicas will not have it"
            )
            continue
        if specifier is not None and not _satisfies(specifier, found):
            lines.append(
                f"{WARNING}{item} is not installed in the kernel's environment "
                f"(found {found}); the local replicas will run with {found}"
            )
    if lines:
        command = [sys.executable, "-m", "pip", "install", *requirements]
        lines.append(
            "[ciao] the local backend installs nothing: install them into the kernel's "
            f"environment with `{shlex.join(command)}`"
        )
    return lines


def _parse(item: str) -> tuple[str, Any]:
    """(normalized name, SpecifierSet or None) of a requirement the interpreter accepted."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:
        return requirement_name(item), None
    try:
        requirement = Requirement(item)
    except InvalidRequirement:
        return requirement_name(item), None
    if requirement.url or not requirement.specifier:
        return requirement_name(item), None
    return requirement_name(item), requirement.specifier


def _satisfies(specifier: Any, version: str) -> bool:
    """Whether the installed `version` meets the clauses; an unreadable version passes."""
    from packaging.version import InvalidVersion, Version

    try:
        return bool(specifier.contains(Version(version), prereleases=True))
    except InvalidVersion:
        return True
