"""Ciao: a Jupyter kernel whose cells are distributed training jobs, and the same engine
from Python (`ciao.run`, `ciao.jobs`, `ciao.attach`, `ciao.delete`, `ciao.Job`)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: The public API's names, imported at first use: `import ciao` stays light (the kernel
#: imports this package at its start).
API = ("run", "jobs", "attach", "delete", "Job", "tune")


def __getattr__(name: str) -> Any:
    if name not in API:
        raise AttributeError(f"module 'ciao' has no attribute {name!r}")
    if name == "tune":
        from ciao.api.tune import tune

        return tune
    from ciao.api import calls

    return getattr(calls, name)
