"""How the config's errors name a key and quote a value: shared by every part of it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ciao.errors import ConfigError, excerpt
from ciao.secrets import redact


def check_keys(data: dict, allowed: Mapping[str, str], where: str, prefix: str) -> None:
    """Every key of `data` is one of `allowed`; else an error with the closest and all."""
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            known = ", ".join(prefix + k for k in allowed)
            raise ConfigError(f"{where}: unknown key {prefix}{key}{hint} (known keys: {known})")


def shown(value: Any) -> str:
    """A config value as an error quotes it: a command with its build-arg and env values
    masked, and never more than an excerpt (a YAML value can be megabytes)."""
    if isinstance(value, list):
        value = redact([str(item) for item in value])
    return excerpt(value)
