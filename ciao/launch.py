"""Command lines that run one of Ciao's modules with a Python, whatever the directory.

`python -m ciao ...` puts the working directory first on the import path, so a `ciao/`
folder beside a notebook (a clone of this repository, say) would shadow the installed
package and the kernel could not start. `-P` (Python 3.11+) leaves the directory out;
older Pythons get the same effect by dropping it before running the module.
"""

from __future__ import annotations

import sys

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
