"""Reading a config file as data a user wrote by hand, and nothing more.

A YAML alias repeats what its anchor holds: nine levels of nine aliases ("billion
laughs") make gigabytes out of a 350-byte file, and a `./config.yaml` can come with a
cloned repository. A hand-written Ciao config never needs one, so aliases are refused
before any value is built; the file's size and nesting are bounded too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ciao.errors import ConfigError

#: Largest config file read (a real one is a few hundred bytes).
MAX_CONFIG_BYTES = 256 * 1024


def read_yaml(path: Path) -> Any:
    """The file's data ({} when empty); ConfigError naming the file and line otherwise."""
    import yaml  # not at kernel start-up: only when a cell needs the config

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"{path} (line {mark.line + 1}, column {mark.column + 1}): YAML aliases "
                    "(*name) are not allowed in a Ciao config: write the value out"
                )
            return super().compose_node(parent, index)

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config")
    try:
        return yaml.load(data, Loader=_NoAliases) or {}  # noqa: S506 (a SafeLoader)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {str(problem)[:300]}") from None
