"""What a job of `ciao.run` runs: a script's text, or a function's source and the call,
and what the function takes from its module (the notebook's cells in IPython, the script
in a terminal): the kernel's carrying, over source and an in-process session."""

from __future__ import annotations

import inspect
import sys
import textwrap
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciao.errors import CiaoError
from ciao.interpreter.carry import HistoryCell
from ciao.kernel.carry import NotebookMemory

#: The name the call's keyword arguments travel under (a carried value).
KWARGS = "_ciao_kwargs"


class CodeError(CiaoError, TypeError):
    """What `ciao.run` was given cannot run as a job (a lambda, a closure, no source)."""

    ename = "CodeError"


@dataclass
class JobCode:
    """The training code, and for a function the module's cells and namespace it may
    take definitions and values from."""

    code: str
    history: list[HistoryCell] = field(default_factory=list)
    namespace: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """The job's own 'cell' number: after every cell of its history."""
        return max((cell.count for cell in self.history), default=0) + 1


def script_code(path: str, args: Sequence[str]) -> JobCode:
    """A script runs as it is, with `args` as its command line."""
    file = Path(path)
    if not file.is_file():
        raise CodeError(f"ciao.run: no script {path}")
    argv = [file.name, *map(str, args)]
    return JobCode(f"import sys; sys.argv = {argv!r}\n{file.read_text()}")


def function_code(fn: Callable[..., Any], kwargs: Mapping[str, Any] | None) -> JobCode:
    """The function's source and the call `fn(**kwargs)`; its module's source as history,
    its globals (and the keyword arguments) as the session that hands over values."""
    if not isinstance(fn, types.FunctionType):
        raise CodeError(f"ciao.run: a function or a script's path, not {type(fn).__name__}")
    name = fn.__name__
    if name == "<lambda>":
        raise CodeError(
            "ciao.run: a lambda has no source of its own to travel; define the function with def"
        )
    if fn.__code__.co_freevars:
        raise CodeError(
            f"ciao.run: {name} uses {', '.join(fn.__code__.co_freevars)} of the function "
            "around it, which cannot travel; define it at the top level"
        )
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise CodeError(f"ciao.run: the source of {name} cannot be read: {exc}") from exc
    namespace = dict(fn.__globals__)
    call = f"{name}()"
    if kwargs:
        namespace[KWARGS] = dict(kwargs)
        call = f"{name}(**{KWARGS})"
    return JobCode(f"{source.rstrip()}\n{call}\n", _history(fn), namespace)


def _history(fn: types.FunctionType) -> list[HistoryCell]:
    """The function's module as cells: IPython's inputs in a notebook (`In`), else the
    module's file as one."""
    cells = fn.__globals__.get("In")
    if fn.__module__ == "__main__" and isinstance(cells, list):
        return [HistoryCell(n, code, True) for n, code in enumerate(cells) if n and code]
    module = sys.modules.get(fn.__module__)
    try:
        return [HistoryCell(1, inspect.getsource(module), True)] if module else []
    except (OSError, TypeError):
        return []


class InProcessSession:
    """The session carrying asks for values: here, the caller's own namespace (the probe
    is the kernel's, run in a private namespace seeing `namespace` as the user's)."""

    running = True

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace

    def run_hidden(self, code: str, timeout: float) -> None:
        shell = types.SimpleNamespace(user_ns=self.namespace)
        exec(compile(code, "<ciao probe>", "exec"), {"get_ipython": lambda: shell})


def memory_of(job: JobCode, directory: str) -> NotebookMemory:
    """The kernel's notebook memory over the job's history and namespace."""
    session = InProcessSession(job.namespace)
    memory = NotebookMemory(lambda: session, directory)
    memory.cells = list(job.history)
    return memory
