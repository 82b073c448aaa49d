"""Build arguments that may be secrets: never on a command line, never echoed.

`--build-arg NAME=VALUE` (and `-e`/`--env NAME=VALUE`) from the config reaches the build
tool as `--build-arg NAME` with NAME=VALUE in the tool's environment (docker, podman and
buildah read it from there), so the value
is not in the process list; everything Ciao shows (the `[build]` line, %config, %dryrun,
logs) has `NAME=***`. BuildKit's `--secret id=...,src=FILE|env=VAR` names a secret without
holding it, and is passed as written.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Options whose value is NAME=VALUE: the value is hidden.
VALUE_OPTIONS = ("--build-arg", "-e", "--env")
MASK = "***"


def redact(argv: Sequence[str]) -> list[str]:
    """`argv` as it may be shown: every `NAME=VALUE` of a build argument as `NAME=***`."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append(_masked(arg))
            hide_next = False
            continue
        option, equals, value = arg.partition("=")
        if option in VALUE_OPTIONS and equals:
            shown.append(f"{option}={_masked(value)}")
        elif _attached(arg):  # -eNAME=VALUE
            shown.append(f"-e{_masked(arg[2:])}")
        else:
            shown.append(arg)
            hide_next = arg in VALUE_OPTIONS
    return shown


def values_to_environment(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """`--build-arg NAME=VALUE` (also `-e`/`--env NAME=VALUE`, and the `--opt=NAME=VALUE`
    forms) → the option with NAME alone, and {NAME: VALUE} for the tool's environment, from
    which docker, podman and buildah take a value given by name; other options untouched."""
    out: list[str] = []
    env: dict[str, str] = {}
    pending = False
    for arg in argv:
        if pending:
            pending = False
            out.append(_to_environment(arg, env))
            continue
        option, equals, rest = arg.partition("=")
        if option in VALUE_OPTIONS and equals:
            out.append(f"{option}={_to_environment(rest, env)}")
            continue
        if _attached(arg):  # -eNAME=VALUE
            out.append(f"-e{_to_environment(arg[2:], env)}")
            continue
        out.append(arg)
        pending = arg in VALUE_OPTIONS
    return out, env


def _to_environment(assignment: str, env: dict[str, str]) -> str:
    """NAME for `NAME=VALUE` (VALUE moved into `env`); anything else as it is."""
    name, equals, value = assignment.partition("=")
    if not equals:
        return assignment
    env[name] = value
    return name


def _attached(arg: str) -> bool:
    """`-eNAME=VALUE`: the short option with its assignment attached."""
    return arg.startswith("-e") and not arg.startswith("--") and "=" in arg[2:]


def _masked(assignment: str) -> str:
    name, equals, _ = assignment.partition("=")
    return f"{name}={MASK}" if equals else assignment
