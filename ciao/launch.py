"""Command lines that run one of Ciao's modules with a Python, whatever the directory.

`python -m ciao ...` puts the working directory first on the import path, so a `ciao/`
folder beside a notebook (a clone of this repository, say) would shadow the installed
package and the kernel could not start. `-P` (Python 3.11+) leaves the directory out;
older Pythons get the same effect by dropping it before running the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_UNSHADOWED = (
    "import runpy, sys; del sys.path[0]; "
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
)


def module_argv(python: str, module: str, *args: str) -> list[str]:
    """`python -m module args...`, immune to a same-named folder in the working directory.

    `python` is assumed to be of this interpreter's version (Ciao runs its helpers with
    the kernel's own Python)."""
    if sys.version_info >= (3, 11):
        return [python, "-P", "-m", module, *args]
    return [python, "-c", _UNSHADOWED.format(module=module), *args]


def start_detached(
    argv: list[str], log_path: Path, env: Mapping[str, str], what: str
) -> subprocess.Popen[bytes]:
    """A process in a session of its own (it outlives the kernel and its process group's
    signals), its output appended to `log_path`, readable by this user only; `what` names
    it in the error when it cannot start."""
    from ciao.errors import BackendError

    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendError(f"could not start {what}: {exc}") from exc
