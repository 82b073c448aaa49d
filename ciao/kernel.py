"""What each Jupyter request means to Ciao: one handler per message type.

Handlers get a `Request` (its content, `reply`, `publish`) and never touch a socket. A job
cell goes through the Manager; its events become IOPub messages here.
"""

from __future__ import annotations

import fnmatch
import logging
import platform
import queue
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from ciao import __version__
from ciao.backend.types import Diagnosis, JobDone, LogLine, ReplicaState
from ciao.display import JobView
from ciao.errors import CiaoError, JobCancelled, JobDetached, JobFailed
from ciao.protocol.message import PROTOCOL_VERSION
from ciao.protocol.server import KernelServer, Request

log = logging.getLogger("ciao.kernel")

LANGUAGE_INFO = {
    "name": "python",
    "version": platform.python_version(),
    "mimetype": "text/x-python",
    "file_extension": ".py",
    "pygments_lexer": "ipython3",
    "codemirror_mode": {"name": "ipython", "version": 3},
    "nbconvert_exporter": "python",
}

BANNER = (
    f"Ciao {__version__}: notebook cells as distributed training jobs.\n"
    "Start a cell with magics such as %framework=pytorch, %master=1, %worker=2;%cpu=1\n"
    "and write the training code below them. %help shows every magic."
)

HELP_LINKS = [
    {"text": "Kubeflow training operator", "url": "https://github.com/kubeflow/training-operator"},
    {
        "text": "PyTorchJob",
        "url": "https://www.kubeflow.org/docs/components/trainer/legacy-v1/user-guides/pytorch/",
    },
    {
        "text": "TFJob",
        "url": "https://www.kubeflow.org/docs/components/trainer/legacy-v1/user-guides/tensorflow/",
    },
]

#: What the control channel answers. Anything else there would run on the control thread,
#: beside a running cell (an execute would even read the shell socket to abort the queue).
CONTROL_REQUESTS = frozenset({"kernel_info_request", "shutdown_request", "interrupt_request"})

#: How long replica output may wait before it is sent (it is coalesced meanwhile).
FLUSH_INTERVAL = 0.05
#: A stream message is sent earlier when this much text is waiting.
FLUSH_BYTES = 64 * 1024
#: The live view is re-rendered at most this often while events arrive...
VIEW_INTERVAL = 0.25
#: ...and this often when nothing happens (its clocks move on).
VIEW_TICK = 2.0
#: Lines of the failing replica repeated in the error, so the cause is next to the verdict.
ERROR_TAIL_LINES = 20


class StreamBuffer:
    """Coalesces replica lines into few `stream` messages, stdout and stderr kept apart
    and in order relative to each other."""

    def __init__(self, send: Callable[[str, str], None]) -> None:
        self._send = send
        self._name: str | None = None
        self._parts: list[str] = []
        self._size = 0
        self._since = 0.0

    def add(self, name: str, text: str) -> None:
        if self._name is not None and name != self._name:
            self.flush()
        if not self._parts:
            self._since = time.monotonic()
        self._name = name
        self._parts.append(text)
        self._size += len(text)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def due_in(self) -> float:
        """Seconds until the waiting text must go out (a long wait when nothing waits)."""
        if not self._parts:
            return 0.5
        return max(0.0, self._since + FLUSH_INTERVAL - time.monotonic())

    def flush(self) -> None:
        if self._parts and self._name:
            self._send(self._name, "".join(self._parts))
        self._parts, self._size, self._name = [], 0, None


class CiaoKernel:
    """The meaning of every request; execution of a cell through the Manager."""

    implementation = "ciao"

    def __init__(self, server: KernelServer, manager=None, kernel_id: str = "") -> None:
        if manager is None:
            from ciao.manager import Manager

            manager = Manager()
        self.server = server
        self.manager = manager
        self.kernel_id = kernel_id
        self.execution_count = 0
        self.history: list[tuple[int, str]] = []
        self.handlers: dict[str, Callable[[Request], None]] = {
            "kernel_info_request": self.kernel_info,
            "execute_request": self.execute,
            "is_complete_request": self.is_complete,
            "complete_request": self.complete,
            "inspect_request": self.inspect,
            "history_request": self.history_request,
            "comm_info_request": self.comm_info,
            "comm_open": self.comm_open,
            "comm_msg": self.comm_ignore,
            "comm_close": self.comm_ignore,
            "shutdown_request": self.shutdown,
            "interrupt_request": self.interrupt_request,
        }

    # ---- dispatch ------------------------------------------------------------------

    def dispatch(self, request: Request) -> None:
        handler = self.handlers.get(request.msg_type)
        if request.channel == "control" and request.msg_type not in CONTROL_REQUESTS:
            handler = None
        if handler is not None:
            handler(request)
            return
        log.warning("unhandled message type %r on %s", request.msg_type, request.channel)
        if request.msg_type.endswith("_request"):
            request.reply_error(
                "UnknownMessageType",
                f"the ciao kernel does not handle {request.msg_type} on {request.channel}",
            )

    # ---- introspection -------------------------------------------------------------

    def kernel_info(self, request: Request) -> None:
        request.reply(
            {
                "status": "ok",
                "protocol_version": PROTOCOL_VERSION,
                "implementation": self.implementation,
                "implementation_version": __version__,
                "language_info": LANGUAGE_INFO,
                "banner": BANNER,
                "help_links": HELP_LINKS,
                "debugger": False,
            }
        )

    def is_complete(self, request: Request) -> None:
        from ciao.interpreter import assist

        status, indent = assist.is_complete(request.field("code", str, ""))
        content: dict[str, Any] = {"status": status}
        if status == "incomplete":
            content["indent"] = indent
        request.reply(content)

    def complete(self, request: Request) -> None:
        from ciao.interpreter import assist

        code = request.field("code", str, "")
        cursor = _cursor(request, code)
        job = assist.job_argument(code, cursor)
        if job is not None:  # %attach ci<Tab>: the jobs this machine knows of
            prefix, start, end = job
            matches = [n for n in self.manager.known_job_names() if n.startswith(prefix)]
        else:
            matches, start, end = assist.complete(code, cursor)
        request.reply(
            {
                "status": "ok",
                "matches": matches,
                "cursor_start": start,
                "cursor_end": end,
                "metadata": {},
            }
        )

    def inspect(self, request: Request) -> None:
        from ciao.interpreter import assist

        code = request.field("code", str, "")
        doc = assist.inspect(code, _cursor(request, code))
        request.reply(
            {
                "status": "ok",
                "found": doc is not None,
                "data": {"text/plain": doc} if doc else {},
                "metadata": {},
            }
        )

    def history_request(self, request: Request) -> None:
        kind = request.field("hist_access_type", str, "tail")
        entries = [(1, line, code) for line, code in self.history]
        if kind == "tail":
            n = request.field("n", int, 10)
            entries = entries[-n:] if n > 0 else []
        elif kind == "range":
            start = request.field("start", int, 0)
            stop = request.field("stop", int)
            entries = [e for e in entries if e[1] >= start and (stop is None or e[1] < stop)]
        elif kind == "search":
            pattern = request.field("pattern", str, "") or "*"
            entries = [e for e in entries if fnmatch.fnmatchcase(e[2], pattern)]
            if request.field("unique", bool, False):
                seen: set[str] = set()
                unique = []
                for entry in reversed(entries):
                    if entry[2] not in seen:
                        seen.add(entry[2])
                        unique.append(entry)
                entries = unique[::-1]
            n = request.field("n", int, 0)
            if n > 0:
                entries = entries[-n:]
        else:
            entries = []
        if request.field("output", bool, False):
            history = [[s, n, [code, None]] for s, n, code in entries]
        else:
            history = [[s, n, code] for s, n, code in entries]
        request.reply({"status": "ok", "history": history})

    def comm_info(self, request: Request) -> None:
        request.reply({"status": "ok", "comms": {}})

    def comm_open(self, request: Request) -> None:
        """Ciao registers no comm targets: close the comm at once, as ipykernel does."""
        comm_id = request.content.get("comm_id", "")
        log.info("no comm target %r; closing comm %s", request.content.get("target_name"), comm_id)
        request.publish("comm_close", {"comm_id": comm_id, "data": {}})

    def comm_ignore(self, request: Request) -> None:
        log.info("ignored %s for unknown comm %s", request.msg_type, request.content.get("comm_id"))

    # ---- lifecycle -----------------------------------------------------------------

    def shutdown(self, request: Request) -> None:
        restart = request.field("restart", bool, False)
        request.reply({"status": "ok", "restart": restart})
        self.stop()

    def stop(self) -> None:
        """Cancel what runs and end the shell loop (from any thread)."""
        self.manager.cancel()
        self.server.stop()

    def interrupt_request(self, request: Request) -> None:
        self.interrupt()
        request.reply({"status": "ok"})

    def interrupt(self) -> None:
        """Cancel the running job, if any; never blocks (control or signal thread)."""
        if self.manager.cancel():
            log.info("interrupt: cancelling the running job")
        else:
            log.info("interrupt while idle: nothing to stop")

    # ---- execute -------------------------------------------------------------------

    def execute(self, request: Request) -> None:
        code = request.field("code", str, "")
        silent = request.field("silent", bool, False)
        store_history = request.field("store_history", bool, True) and not silent
        stop_on_error = request.field("stop_on_error", bool, True)
        expressions = request.field("user_expressions", dict, {})
        if store_history:
            self.execution_count += 1
            self.history.append((self.execution_count, code))
        count = self.execution_count
        out = _Output(request, silent)
        if not silent:
            request.publish("execute_input", {"code": code, "execution_count": count})
        reply: dict[str, Any] = {"status": "ok", "execution_count": count}
        try:
            payload = self._run_cell(code, out, count)
            reply.update(payload=payload, user_expressions=self._expressions(expressions))
        except CiaoError as exc:
            reply.update(self._error(exc, out))
        except Exception as exc:  # a bug of ours: still an error reply, never a dead kernel
            log.exception("executing a cell failed")
            reply.update(self._error(exc, out, internal=True))
        request.reply(reply, metadata={"status": reply["status"]})
        if reply["status"] == "error" and stop_on_error:
            self._abort_queued()

    def _run_cell(self, code: str, out: _Output, count: int) -> list[dict[str, Any]]:
        if not code.strip():
            return []
        self.manager.begin()
        prepared = self.manager.prepare(code)
        if prepared.command is not None:
            return self._command(prepared, out, count)
        parameter = prepared.job
        if parameter.dry_run:
            self._dry_run(prepared, out, count)
            return []
        active = self.manager.submit(prepared, self._owner(count), out.progress)
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
        self._follow(active, out)
        return []

    def _follow(self, active, out: _Output) -> None:
        """Stream the job's events into the cell until it ends; raise if it failed.

        The live view goes first (one display_data, then updates in place); the replicas'
        lines stream below it.
        """
        tails: dict[str, deque[str]] = {}
        buffer = StreamBuffer(out.stream)
        view = LiveView(JobView(active.job), out)
        done: JobDone | None = None
        try:
            while True:
                try:
                    event = active.next_event(timeout=min(buffer.due_in(), view.due_in()))
                except StopIteration:
                    break
                if event is None:
                    buffer.flush()
                    view.refresh()
                    continue
                view.apply(event)
                if isinstance(event, LogLine):
                    buffer.add(event.stream, f"[{event.replica}] {event.text}\n")
                    tail = tails.setdefault(event.replica, deque(maxlen=ERROR_TAIL_LINES))
                    tail.append(event.text)
                elif isinstance(event, Diagnosis):
                    buffer.add("stderr", f"[{event.replica}] {event.reason}: {event.hint}\n")
                elif isinstance(event, ReplicaState):
                    log.debug("%s: %s %s", event.replica, event.phase, event.reason)
                elif isinstance(event, JobDone):
                    done = event
        finally:
            buffer.flush()
            view.refresh(force=True)
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
            raise JobCancelled(f"job {active.job.name} was cancelled: {done.message}")
        where = done.failed_replica
        failure = JobFailed(f"job {active.job.name} failed: {done.message or done.reason}")
        failure.tail = list(tails.get(where, ())) if where else []  # type: ignore[attr-defined]
        failure.replica = where  # type: ignore[attr-defined]
        raise failure

    def _owner(self, count: int) -> dict[str, str]:
        """Who submits a job: this kernel, its session and the cell (for the job's labels)."""
        return {
            "kernel-id": self.kernel_id,
            "session": self.server.codec.session[:16],
            "cell": str(count),
        }

    def _command(self, prepared, out: _Output, count: int) -> list[dict[str, Any]]:
        command = prepared.command
        if command.name == "help":
            from ciao.interpreter.magics import help_text

            text = help_text(command.args.strip() or None)
            return [{"source": "page", "data": {"text/plain": text}, "start": 0}]
        if command.name == "config":
            import json

            import yaml

            effective = prepared.config.as_dict()
            out.result(
                count,
                {
                    "text/plain": yaml.safe_dump(effective, sort_keys=False).rstrip(),
                    "application/json": json.loads(json.dumps(effective)),
                },
            )
            return []
        return self._job_command(prepared, out, count)

    def _job_command(self, prepared, out: _Output, count: int) -> list[dict[str, Any]]:
        """%jobs, %status, %logs, %attach, %delete: jobs of this kernel or earlier ones."""
        from ciao.display import jobs_table, status_view
        from ciao.manager import backend_of

        command, config = prepared.command, prepared.config
        if command.name == "jobs":
            jobs, problems = self.manager.jobs(config)
            for problem in problems:
                out.stream("stderr", f"[ciao] could not list jobs of {problem}\n")
            out.result(count, jobs_table(jobs, self.kernel_id))
            return []
        args = command.args.split()
        name = args[0]
        backend = backend_of(config, name)
        if command.name == "status":
            info, events = backend.describe(name)
            out.result(count, status_view(info, events))
        elif command.name == "logs":
            replica = args[1] if len(args) > 1 and not args[1].startswith("--") else None
            tail = int(args[args.index("--tail") + 1]) if "--tail" in args else None
            buffer = StreamBuffer(out.stream)
            for line in backend.logs(name, replica, tail):
                buffer.add(line.stream, f"[{line.replica}] {line.text}\n")
            buffer.flush()
        elif command.name == "attach":
            self._follow(self.manager.attach(config, name), out)
        elif command.name == "delete":
            backend.delete(name)
            out.stream("stdout", f"Deleted job {name} and what it created.\n")
        else:
            raise CiaoError(f"unknown command %{command.name}")
        return []

    def _dry_run(self, prepared, out: _Output, count: int) -> None:
        """%dryrun: what the cell would submit, built as submitting builds it."""
        import json

        import yaml

        plan = self.manager.dry_run(prepared)
        job = plan["job"]
        documents = [*plan["objects"], job] if plan["objects"] else [job]
        text = "\n---\n".join(yaml.safe_dump(d, sort_keys=False).rstrip() for d in documents)
        note = f"# %dryrun on {plan['backend']}: nothing was built or submitted\n"
        out.result(
            count,
            {
                "text/plain": note + text,
                "application/json": json.loads(
                    json.dumps({"objects": plan["objects"], "job": job})
                ),
            },
        )

    def _expressions(self, expressions: dict[str, Any]) -> dict[str, Any]:
        """Ciao cells run elsewhere: there is no kernel namespace to evaluate in."""
        return {
            name: {
                "status": "error",
                "ename": "NotSupported",
                "evalue": "the ciao kernel has no namespace: cells run as jobs",
                "traceback": [],
            }
            for name in expressions
        }

    def _error(self, exc: Exception, out: _Output, internal: bool = False) -> dict[str, Any]:
        if isinstance(exc, CiaoError):
            ename, evalue = exc.ename, str(exc)
            traceback = exc.lines()
            tail = getattr(exc, "tail", None)
            if tail:
                replica = getattr(exc, "replica", "")
                traceback = [*traceback, f"last lines of {replica}:", *tail]
        else:
            ename, evalue = type(exc).__name__, f"internal error in the ciao kernel: {exc}"
            traceback = [f"{ename}: {evalue}"]
        error = {"ename": ename, "evalue": evalue, "traceback": traceback}
        out.error(error)
        return {"status": "error", **error}

    def _abort_queued(self) -> None:
        """With stop_on_error, executes queued behind a failed one are aborted, not run."""
        while (msg := self.server.pending_shell()) is not None:
            if msg.msg_type != "execute_request":
                self.server.handle_message("shell", msg)
                continue
            request = Request(self.server, "shell", msg)
            self.server.status("busy", msg)
            request.reply(
                {
                    "status": "abort",
                    "ename": "ExecutionAborted",
                    "evalue": "not run: an earlier cell failed (stop_on_error)",
                    "traceback": [],
                    "execution_count": self.execution_count,
                }
            )
            self.server.status("idle", msg)


class LiveView:
    """Publishes a JobView: display_data once, then update_display_data when it changed,
    at most every VIEW_INTERVAL (and every few seconds anyway, for the clocks)."""

    def __init__(self, view: JobView, out: _Output) -> None:
        self.view = view
        self.out = out
        self.display_id = f"ciao-job-{view.job.name}-{uuid.uuid4().hex[:8]}"
        self.dirty = False
        self.shown_at = time.monotonic()
        out.display(view.bundle(), self.display_id, update=False)

    def apply(self, event) -> None:
        self.dirty = self.view.apply(event) or self.dirty
        self.refresh()

    def due_in(self) -> float:
        wait = VIEW_INTERVAL if self.dirty else VIEW_TICK
        return max(0.0, self.shown_at + wait - time.monotonic())

    def refresh(self, force: bool = False) -> None:
        if force or self.due_in() <= 0:
            self.out.display(self.view.bundle(), self.display_id, update=True)
            self.dirty = False
            self.shown_at = time.monotonic()


class _Output:
    """Where a cell's output goes: IOPub, unless the request was silent."""

    def __init__(self, request: Request, silent: bool) -> None:
        self.request = request
        self.silent = silent

    def stream(self, name: str, text: str) -> None:
        if not self.silent:
            self.request.publish("stream", {"name": name, "text": text})

    def progress(self, line: str) -> None:
        """A line of phase 2 (building the image), shown as it comes."""
        self.stream("stdout", line.rstrip("\n") + "\n")

    def display(self, data: dict[str, Any], display_id: str, update: bool) -> None:
        if not self.silent:
            self.request.publish(
                "update_display_data" if update else "display_data",
                {"data": data, "metadata": {}, "transient": {"display_id": display_id}},
            )

    def result(self, count: int, data: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish(
                "execute_result", {"execution_count": count, "data": data, "metadata": {}}
            )

    def error(self, error: dict[str, Any]) -> None:
        if not self.silent:
            self.request.publish("error", error)


def _cursor(request: Request, code: str) -> int:
    return max(0, min(request.field("cursor_pos", int, len(code)), len(code)))


def install_signal_handlers(kernel: CiaoKernel) -> None:
    """SIGINT interrupts the running job (and is harmless while idle); SIGTERM shuts down.

    A handler runs on the main thread between two bytecodes, perhaps inside a `with lock`
    that interrupting would take again (the manager's): so it only queues the signal
    (SimpleQueue.put is safe there) and a thread acts on it.
    """
    received: queue.SimpleQueue[int] = queue.SimpleQueue()

    def act() -> None:
        while True:
            signum = received.get()
            try:
                if signum == signal.SIGINT:
                    kernel.interrupt()
                else:
                    kernel.stop()
            except Exception:
                log.exception("handling signal %d failed", signum)

    threading.Thread(target=act, name="ciao-signals", daemon=True).start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: received.put(signum))
