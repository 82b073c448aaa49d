"""`ciao.run`, `ciao.jobs`, `ciao.attach`, `ciao.delete`: a job from Python, read, planned,
shipped, submitted and followed by the Manager as a kernel cell's is."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ciao.api import engine
from ciao.api.cell import KeywordError, keyword_errors, magic_cell
from ciao.api.code import JobCode, function_code, memory_of, script_code
from ciao.api.job import Job, _viewer
from ciao.backend.types import JobInfo
from ciao.errors import MagicErrors
from ciao.kernel.dryrun import dryrun_text
from ciao.manager import CellPlan, Prepared


@dataclasses.dataclass(frozen=True)
class DryRun(CellPlan):
    """The CellPlan of a dry run: its documents, and as text what %dryrun shows."""

    def documents(self) -> list[dict[str, Any]]:
        return self.job.plan.documents()

    def __str__(self) -> str:
        return dryrun_text(self)[0]


def run(
    fn_or_script: Callable[..., Any] | str | os.PathLike[str],
    kwargs: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    *,
    dry_run: bool = False,
    detach: bool = False,
    **magics: Any,
) -> Job | DryRun:
    """Run a function (called with `kwargs` in every replica, with what it uses of its
    module: imports, functions and classes as source, values pickled) or a script (with
    `args`) as a job. The other keywords are the job magics' names and take their values:
    framework, master, worker, chief, ps, evaluator, nodes, cpu, memory, gpu (each
    replica's), backend, procs, runtime, queue, cleanPolicy, onInterrupt, profile,
    requirements and files (lists), the pod settings (volume, toleration: lists; env,
    nodeSelector: dicts; shm, envFrom, serviceAccount, image...). None given: the config's
    defaults, as a `%job` cell.

    Returns the Job once it ended (raising JobFailed / JobCancelled as the kernel's cell
    would; Ctrl-C cancels it and is raised again), with `detach` at once after submitting,
    with `dry_run` the planned cell (`str()` of it is `%dryrun`'s text).
    """
    if dry_run:
        return plan(fn_or_script, kwargs, args, **magics)
    job = submit(fn_or_script, kwargs, args, detach=detach, **magics)
    if not detach:
        job.wait()
    return job


def plan(
    fn_or_script: Callable[..., Any] | str | os.PathLike[str],
    kwargs: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    **magics: Any,
) -> DryRun:
    """What `run` would do, every check made, nothing built or submitted (%dryrun)."""
    prepared, cleanup = prepare(_code(fn_or_script, kwargs, args), {**magics, "dryrun": True})
    try:
        cell = engine.manager().plan(prepared, engine.owner())
    finally:
        cleanup()
    return DryRun(cell.parameter, cell.shipment, cell.job)


def submit(
    fn_or_script: Callable[..., Any] | str | os.PathLike[str],
    kwargs: Mapping[str, Any] | None = None,
    args: Sequence[str] = (),
    *,
    detach: bool = False,
    **magics: Any,
) -> Job:
    """The job submitted and not yet followed: `Job.wait()` follows it (unless `detach`:
    then nothing here reads its events; `wait()` attaches)."""
    code = _code(fn_or_script, kwargs, args)
    prepared, cleanup = prepare(code, {**magics, "detach": detach})
    manager = engine.manager()
    try:
        manager.begin()
        active = manager.submit(prepared, engine.owner(), _progress)
    finally:
        cleanup()
    if detach:
        manager.finished(active)
        return Job(active.job.name)
    return Job(active.job.name, active)


def _progress(line: str) -> None:
    """Shipping's lines (`[build] ...`, what travels, the notes of a local job: resources
    that do not apply, unmet requirements), on stderr as the kernel shows them before the
    job's own lines."""
    print(line.rstrip("\n"), file=sys.stderr, flush=True)


def _code(
    fn_or_script: Callable[..., Any] | str | os.PathLike[str],
    kwargs: Mapping[str, Any] | None,
    args: Sequence[str],
) -> JobCode:
    if isinstance(fn_or_script, str | os.PathLike):
        return script_code(os.fspath(fn_or_script), args)
    if args:
        raise KeywordError("args: a script's command line; a function takes kwargs")
    return function_code(fn_or_script, kwargs)


def prepare(code: JobCode, magics: dict[str, Any]) -> tuple[Prepared, Callable[[], None]]:
    """The keywords read as the cell they stand for, with what the code carries."""
    manager = engine.manager()
    try:
        prepared = manager.prepare(magic_cell(code.code, magics))
    except MagicErrors as exc:
        raise keyword_errors(exc) from None
    assert prepared.parameter is not None
    directory = os.getcwd()
    parameter = dataclasses.replace(prepared.parameter, directory=directory)
    if not code.history and not code.namespace:  # a script: it takes nothing along
        return dataclasses.replace(prepared, parameter=parameter), lambda: None
    memory = memory_of(code, directory)
    cap = prepared.config.session.max_value_bytes
    carried = memory.carry(parameter, code.count, cap)
    parameter = dataclasses.replace(parameter, carried=carried)
    return dataclasses.replace(prepared, parameter=parameter), memory.close


def jobs() -> list[JobInfo]:
    """Every backend's jobs, newest first (as `%jobs --all`)."""
    return engine.manager().jobs(engine.config())[0]


def attach(name: str) -> Job:
    """A job submitted earlier (by a kernel, a script, the CLI), followed here to its end
    from where this process left off; Ctrl-C detaches again."""
    active = engine.manager().attach(engine.config(), name, _viewer())
    job = Job(name, active)
    job.wait(check=False)
    return job


def delete(name: str) -> None:
    """Stop the job if it runs, and delete what it created and its record."""
    engine.manager().delete(engine.config(), name)
