"""A trial's hyperparameters, typed: `ciao.hp.float("lr")`, `ciao.hp.int("layers")`,
`ciao.hp.str("opt")`.

Every trial of a `%tune` cell gets its parameters as environment variables, CIAO_HP_<NAME>
(and, in the spelling of Kubeflow Trainer's OptimizationJob, KUBEFLOW_TRAINER_OPT_<NAME>),
so the same code reads them locally, in Ciao's own engine and under Katib. A default makes
the cell run as a plain job too, outside a study: `ciao.hp.float("lr", 0.01)`.

Standard library only, and never importing the rest of Ciao: where Ciao is not installed (a
cluster's image) this file travels beside the cell's code and the bootstrap (main.py)
provides it as `ciao.hp`.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

#: Where a trial's parameters are: CIAO_HP_<NAME>, else Trainer's KUBEFLOW_TRAINER_OPT_<NAME>.
PREFIX = "CIAO_HP_"
TRAINER_PREFIX = "KUBEFLOW_TRAINER_OPT_"

_MISSING: Any = object()


class HyperparameterError(LookupError):
    """A parameter is not set (the cell runs outside a study) or not of the type asked."""


def env_names(name: builtins.str) -> tuple[builtins.str, builtins.str]:
    """The variables that hold parameter `name`: Ciao's and Kubeflow Trainer's spelling."""
    key = name.upper()
    return PREFIX + key, TRAINER_PREFIX + key


def raw(name: builtins.str) -> builtins.str | None:
    """The parameter's text as the trial got it, None when it is not set."""
    for variable in env_names(name):
        value = os.environ.get(variable)
        if value is not None:
            return value
    return None


def values() -> dict[builtins.str, builtins.str]:
    """Every parameter of this trial (lower-case names), as text: for logging them."""
    return {
        key[len(PREFIX) :].lower(): value
        for key, value in sorted(os.environ.items())
        if key.startswith(PREFIX)
    }


def float(name: builtins.str, default: Any = _MISSING) -> builtins.float:
    """Parameter `name` as a float (`default` outside a study)."""
    text = _text(name, "float", default)
    if text is None:
        return builtins.float(default)
    try:
        return builtins.float(text)
    except ValueError:
        raise _wrong(name, text, "a number") from None


def int(name: builtins.str, default: Any = _MISSING) -> builtins.int:
    """Parameter `name` as an int (`default` outside a study); `64.0` is 64."""
    text = _text(name, "int", default)
    if text is None:
        return builtins.int(default)
    try:
        return builtins.int(text)
    except ValueError:
        pass
    try:
        number = builtins.float(text)
    except ValueError:
        number = builtins.float("nan")
    if not number.is_integer():
        raise _wrong(name, text, "a whole number")
    return builtins.int(number)


def str(name: builtins.str, default: Any = _MISSING) -> builtins.str:
    """Parameter `name` as text (`default` outside a study)."""
    text = _text(name, "str", default)
    return builtins.str(default) if text is None else text


def _text(name: builtins.str, kind: builtins.str, default: Any) -> builtins.str | None:
    text = raw(name)
    if text is None and default is _MISSING:
        variable = env_names(name)[0]
        raise HyperparameterError(
            f"ciao.hp.{kind}({name!r}): {variable} is not set, so this cell runs outside a "
            f"%tune study; give a default to run it as a plain job: "
            f"ciao.hp.{kind}({name!r}, <value>)"
        )
    return text


def _wrong(name: builtins.str, text: builtins.str, what: builtins.str) -> HyperparameterError:
    return HyperparameterError(f"{env_names(name)[0]}={text!r} is not {what}")
