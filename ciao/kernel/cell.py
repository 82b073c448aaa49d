"""Running a cell: a job (submitted, followed, its verdict), a dry run, or a command.

Jupyter's side of a job: events become stream text, the live view and the reply's error.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ciao.backend.record import viewer_of
from ciao.backend.types import JobDone, LogLine
from ciao.config import Config
from ciao.errors import CiaoError, JobCancelled, JobDetached, JobFailed
from ciao.interpreter.types import (
    Command,
    ConfigCommand,
    HelpCommand,
    JobCommand,
    JobsCommand,
    LogsCommand,
    MetricsCommand,
    PipCommand,
    StudyCommand,
)
from ciao.kernel.budget import OutputBudget
from ciao.kernel.carry import NotebookMemory
from ciao.kernel.hints import failure_hint
from ciao.kernel.logstream import LogStream
from ciao.kernel.output import LiveView, Output, readable_yaml
from ciao.kernel.pump import pump
from ciao.kernel.render import JobView
from ciao.manager import ActiveJob, Manager, Prepared

if TYPE_CHECKING:
    from ciao.kernel.study_cell import StudyCell
    from ciao.session import Session

log = logging.getLogger("ciao.kernel")

#: How long one batch of `%logs` may wait for the output budget before it is counted as
#: not shown (it never has to at the default budget: `%logs` is paced).
LOGS_WAIT = 30.0

#: What a cell returns: the execute_reply's payload (the pager for %help).
Payload = list[dict[str, Any]]


class CellRunner:
    """Runs cells through the Manager; `owner(count)` says who submits (for job labels)."""

    def __init__(
        self,
        manager: Manager,
        owner: Callable[[int], dict[str, str]],
        memory: NotebookMemory | None = None,
        session: Callable[[], Session | None] | None = None,
    ) -> None:
        self.manager = manager
        self.owner = owner
        #: The notebook's earlier cells, whose definitions a job cell takes along.
        self.memory = memory
        #: The Python session when the config has it on (%metrics leaves its columns there).
        self.session = session or (lambda: None)
        self._studies: StudyCell | None = None

    @property
    def studies(self) -> StudyCell:
        """`%tune` cells and the commands on studies: made at the first (Optuna and the
        study's modules stay off the kernel's start)."""
        if self._studies is None:
            from ciao.kernel.study_cell import StudyCell

            self._studies = StudyCell(self.manager, self.owner)
        return self._studies

    def run(self, code: str, out: Output, count: int) -> Payload:
        prepared = self.prepare(code)
        return [] if prepared is None else self.run_prepared(prepared, out, count)

    def prepare(self, code: str) -> Prepared | None:
        """The cell read (phase 1), or None for an empty one; from now on an interrupt
        stops it."""
        if not code.strip():
            return None
        self.manager.begin()
        return self.manager.prepare(code)

    def run_prepared(self, prepared: Prepared, out: Output, count: int) -> Payload:
        """A job, a dry run or a command (not a session cell: the kernel runs those)."""
        out.budget = budget_of(prepared.config)
        if prepared.command is not None:
            return self._command(prepared, prepared.command, out, count)
        assert prepared.parameter is not None
        if self.memory is None:
            return self._job(prepared, out, count)
        cap = prepared.config.session.max_value_bytes
        carried = self.memory.carry(prepared.parameter, count, cap)
        parameter = dataclasses.replace(
            prepared.parameter, carried=carried, directory=self.memory.directory
        )
        try:
            return self._job(dataclasses.replace(prepared, parameter=parameter), out, count)
        finally:
            self.memory.forget(parameter.generate_name)  # shipped, or never will be

    def _job(self, prepared: Prepared, out: Output, count: int) -> Payload:
        parameter = prepared.parameter
        assert parameter is not None
        if parameter.tune is not None:  # a study: every trial is this job
            self.studies.run(prepared, out, count)
            return []
        if parameter.dry_run:
            self._dry_run(prepared, out, count)
            return []
        active = self.manager.submit(prepared, self.owner(count), out.progress)
        if parameter.detach:  # submitted, never followed: shutdown leaves it running
            self.manager.finished(active)
            name = active.job.name
            out.stream(
                "stdout",
                f"Submitted job {name} ({active.job.location or active.job.backend}), detached.\n"
                f"  %attach {name}   follow it here\n  %status {name}   its replicas\n"
                f"  %logs {name}     its log so far\n  %delete {name}   stop it\n",
            )
            return []
        self.follow(active, out, prepared.config)
        return []

    def follow(self, active: ActiveJob, out: Output, config: Config) -> None:
        """Stream the job's events into the cell until it ends; raise if it failed.

        The live view goes first (one display_data, then updates in place); the replicas'
        lines stream below it.
        """
        job = active.job
        stream = LogStream(out, job.name, sum(job.replicas.values()), config.output.max_lines)
        view = LiveView(JobView(job), out)
        done: JobDone | None = None
        if job.resumed:
            stream.notice(
                f"[ciao] {job.name}: going on after the last line shown here "
                f"(%logs {job.name} shows the whole log)\n",
                "stdout",
            )
        try:
            done = pump(active, view, stream)
            if job.resumed and not stream.total and done is not None:  # no line came
                stream.notice(f"[ciao] {job.name}: every line was already shown here\n", "stdout")
        finally:
            view.refresh(force=True)  # the final state first: it is what matters most
            stream.close()
            self.manager.finished(active)
        name = active.job.name
        if done is None and active.detached:
            raise JobDetached(
                f"stopped following job {name}; it is still running. "
                f"%attach {name} follows it again, %delete {name} stops it"
            )
        if done is None:
            raise JobFailed(f"job {name} ended without a final status")
        if done.succeeded:
            return
        if active.cancel_requested or done.reason == "Cancelled":
            raise JobCancelled(f"job {name} was cancelled: {done.message}")
        where, seen = done.failed_replica, done.tail  # the backend kept its last lines
        hint = failure_hint(job.backend, seen)
        shown = bool(where) and stream.showed(where, seen)  # then the error points at them
        message = f"job {name} failed: {done.message or done.reason}"
        raise JobFailed(message, where, seen, hint, shown=shown, job=name)

    # ---- commands ----------------------------------------------------------------------

    def _command(self, prepared: Prepared, command: Command, out: Output, count: int) -> Payload:
        if isinstance(command, HelpCommand):
            from ciao.interpreter.docs import help_markdown, help_text

            # Markdown too: JupyterLab shows the pager as the cell's output, and wraps
            # plain text mid-word there; Markdown wraps at words.
            page = {
                "text/plain": help_text(command.topic),
                "text/markdown": help_markdown(command.topic),
            }
            return [{"source": "page", "data": page, "start": 0}]
        if isinstance(command, PipCommand):
            python = self.manager.pip(prepared.config, command.args, out.progress)
            if command.args[:1] in (("install",), ("uninstall",)):
                runs, sees = "", "the next local jobs see"
                if prepared.config.session.enabled:
                    runs, sees = (
                        ", and the session",
                        "the next local jobs and the session's imports see",
                    )
                out.stream(
                    "stdout",
                    f"[ciao] pip ran in {python}, the Python local replicas run{runs}: "
                    f"{sees} the change\n",
                )
            return []
        if isinstance(command, ConfigCommand):
            import yaml

            from ciao.tune.engines import engine_for

            effective = prepared.config.as_dict()
            chosen = self.manager.api_summary(prepared.config)
            if chosen:
                effective["kubeflow"]["chosen"] = chosen
            try:
                config = prepared.config
                engine = engine_for(self.manager.registry, config, config.backend).describe()
            except CiaoError as exc:
                engine = str(exc)
            effective["tune"]["chosen"] = engine
            text = yaml.safe_dump(effective, sort_keys=False).rstrip()
            out.result(count, readable_yaml(text, effective, "config"))
            return []
        if isinstance(command, StudyCommand):
            self.studies.command(prepared.config, command, out, count)
            return []
        self._job_command(prepared, command, out, count)
        return []

    def _job_command(
        self,
        prepared: Prepared,
        command: JobsCommand | JobCommand | LogsCommand | MetricsCommand,
        out: Output,
        count: int,
    ) -> None:
        """%jobs, %status, %logs, %metrics, %attach, %delete: jobs of this kernel or
        earlier ones (a study's name works too: its trials are its)."""
        from ciao.kernel.render import jobs_table, status_view
        from ciao.kernel.study_cell import is_study
        from ciao.tune.studies import study_infos

        config = prepared.config
        if isinstance(command, JobsCommand):
            jobs, problems = self.manager.jobs(config)
            for problem in problems:
                out.stream("stderr", f"[ciao] could not list jobs of {problem}\n")
            # a study's row stands for its trials (%study NAME lists them)
            try:
                found = study_infos(self.manager, config)
            except CiaoError as exc:
                out.stream("stderr", f"[ciao] could not list studies: {exc}\n")
                found = []
            jobs = [job for job in jobs if "study" not in job.owner] + found
            jobs.sort(key=lambda job: job.created, reverse=True)
            owner = self.owner(count)
            out.result(count, jobs_table(jobs, owner, command.everyone, command.limit))
            return
        name = command.job
        if is_study(self.manager, config, name):
            if isinstance(command, MetricsCommand):
                raise CiaoError(
                    f"{name} is a study: each trial is a job with metrics of its own (%study "
                    f"{name} lists them; %metrics TRIAL shows one's)"
                )
            self._study_command(config, command, out, count)
            return
        if isinstance(command, LogsCommand):
            lines = self.manager.logs(config, name, command.replica, command.tail)
            travels = self._travels(config, name)
            if travels:
                out.stream("stdout", f"[ciao] {name} ran with {travels}\n")
            self._logs(lines, out, name)
        elif isinstance(command, MetricsCommand):
            self._metrics(config, command, out, count)
        elif command.action == "status":
            info, events = self.manager.status(config, name)
            out.result(count, status_view(info, events))
            if info.travels:
                out.stream("stdout", f"[ciao] {name} ran with {info.travels}\n")
        elif command.action == "attach":
            viewer = viewer_of(self.owner(count))
            active = self.manager.attach(config, name, viewer)
            if active.job.travels:  # what ran is what the cell carried then, not now
                out.stream("stdout", f"[ciao] {name} ran with {active.job.travels}\n")
            self.follow(active, out, config)
        elif command.action == "delete":
            self.manager.delete(config, name)
            out.stream("stdout", f"Deleted job {name} and what it created.\n")
        else:
            raise CiaoError(f"unknown command %{command.action}")

    def _study_command(
        self, config: Config, command: JobCommand | LogsCommand, out: Output, count: int
    ) -> None:
        """%status, %logs, %attach, %delete of a study."""
        name = command.job
        if isinstance(command, LogsCommand):
            self.studies.logs(config, name, command.replica, command.tail, out)
        elif command.action == "status":
            out.result(count, self.studies.table(config, name))
        elif command.action == "attach":
            self.studies.attach(config, name, out, viewer_of(self.owner(count)))
        else:
            self.studies.delete(config, name, out)

    def _travels(self, config: Config, name: str) -> str:
        """What travelled with the job's code, where its record says ("" where it cannot
        be read: %logs still reads a job whose cluster objects are gone)."""
        try:
            return self.manager.status(config, name)[0].travels
        except CiaoError:
            return ""

    def _logs(self, lines: Iterable[LogLine], out: Output, name: str) -> None:
        """%logs: every line asked for, paced to the output budget (never dropped: they
        were asked for), streamed from the record; an interrupt stops it."""
        stream = LogStream(out, name, 1, wait=LOGS_WAIT)
        for shown, line in enumerate(lines, 1):
            stream.line(line.replica, line.text, line.stream)
            if shown % 1024 == 0 and self.manager.interrupted():
                stream.flush()
                raise JobCancelled(f"%logs {name} interrupted after {shown:,} lines")
            if stream.due_in() <= 0:
                stream.flush()
        stream.close()

    def _metrics(self, config: Config, command: MetricsCommand, out: Output, count: int) -> None:
        """%metrics: the table as the cell's result; with the session on, the history as
        columns in the session's `_` and Out[count] too (its own display of them is not
        shown: the table is)."""
        from ciao.kernel.metrics_table import columns, metrics_table, session_code

        name, wanted = command.job, command.metric
        metrics = self.manager.metrics(config, name)
        if wanted is not None and wanted not in metrics.series:
            known = ", ".join(metrics.names()) or "none"
            raise CiaoError(f"job {name} has no metric {wanted!r} (its metrics: {known})")
        session = self.session()
        keep = session is not None and out.request.field("store_history", bool, True)
        if metrics.series:
            out.result(count, metrics_table(name, metrics, wanted, in_session=keep))
        else:
            out.stream(
                "stdout",
                f"[ciao] job {name} has no metrics: none of its lines is in Katib's "
                "format name=value (like `epoch=3 loss=0.42`)\n",
            )
        if session is not None and keep and not out.silent:
            from ciao.kernel.session_cell import session_value

            data, cut = columns(metrics, wanted)
            if cut:
                out.stream("stdout", f"[ciao] _ holds the latest {len(data['step']):,} rows\n")
            session_value(session, session_code(name, data), out, count)

    def _dry_run(self, prepared: Prepared, out: Output, count: int) -> None:
        """%dryrun: the plan submitting the cell would submit."""
        from ciao.kernel.dryrun import dryrun_text

        text, data = dryrun_text(self.manager.plan(prepared, self.owner(count)))
        out.result(count, readable_yaml(text, data, "plan"))


def budget_of(config: Config) -> OutputBudget:
    return OutputBudget(config.output.max_bytes_per_second, config.output.max_messages_per_second)
