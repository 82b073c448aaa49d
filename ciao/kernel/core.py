"""What each Jupyter request means to Ciao: one handler per message type.

Handlers get a `Request` (its content, `reply`, `publish`) and never touch a socket. Cells
are run by cell.py (through the Manager), their output shaped by output.py.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import platform
import queue
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ciao import __version__
from ciao.errors import CiaoError
from ciao.kernel.output import Output
from ciao.protocol.message import PROTOCOL_VERSION
from ciao.protocol.server import KernelServer, Request

if TYPE_CHECKING:
    from ciao.interpreter.magics import MagicInterpreter
    from ciao.manager import Manager
    from ciao.session import Session

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
    "A plain cell runs in this notebook's Python session; a cell that starts with magics\n"
    "such as %framework=pytorch, %master=1, %worker=2;%cpu=1 runs as a job.\n"
    "%help shows every magic."
)

UNSIGNED_WARNING = (
    "\nWARNING: this kernel's connection key is empty, so its messages are not signed: "
    "anyone who can reach its ports can run code as this user."
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

#: How long the kernel waits for the session to answer an editor's request (completion,
#: inspection): past it, the kernel answers with what it knows itself.
SESSION_ANSWER_SECONDS = 2.0

#: What the control channel answers. Anything else there would run on the control thread,
#: beside a running cell (an execute would even read the shell socket to abort the queue).
CONTROL_REQUESTS = frozenset({"kernel_info_request", "shutdown_request", "interrupt_request"})


class CiaoKernel:
    """The meaning of every request; execution of a cell through the Manager."""

    implementation = "ciao"

    def __init__(
        self,
        server: KernelServer,
        manager: Manager,
        kernel_id: str = "",
        session: Session | None = None,
    ) -> None:
        self.server = server
        self.manager = manager
        self.kernel_id = kernel_id
        self._session = session
        self.notebook = notebook_of(os.environ.get("JPY_SESSION_NAME", ""))
        from ciao.kernel.carry import NotebookMemory
        from ciao.kernel.cell import CellRunner

        self.memory = NotebookMemory(self._carry_session, os.getcwd())
        self.cells = CellRunner(manager, self._owner, self.memory, self._carry_session)
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
            "comm_msg": self.comm_forward,
            "comm_close": self.comm_forward,
            "shutdown_request": self.shutdown,
            "interrupt_request": self.interrupt_request,
        }

    @property
    def session(self) -> Session:
        """The Python session of cells without job magics: made (not started: its
        process starts with the first such cell) when first needed, not at start-up."""
        if self._session is None:
            from ciao.session import Session

            self._session = Session()
        return self._session

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
                "banner": BANNER if self.server.info.key else BANNER + UNSIGNED_WARNING,
                "help_links": HELP_LINKS,
                "debugger": False,
            }
        )

    def is_complete(self, request: Request) -> None:
        from ciao.interpreter import assist
        from ciao.interpreter.route import runs_in_session

        code = request.field("code", str, "")
        if runs_in_session(code) and self.manager.session_enabled():
            answer = self.session.request(
                "is_complete_request", {"code": code}, SESSION_ANSWER_SECONDS
            )
            if answer is not None and answer.get("status") in ("complete", "incomplete", "invalid"):
                request.reply(answer)
                return
            status, indent = assist.is_complete_python(code)
        else:
            status, indent = assist.is_complete(code, self._editor_interpreter())
        content: dict[str, Any] = {"status": status}
        if status == "incomplete":
            content["indent"] = indent
        request.reply(content)

    def complete(self, request: Request) -> None:
        """Ciao's magics (and job names after %attach...) with the session's names and
        attributes, when it runs: one list over one span of the cell."""
        from ciao.interpreter import assist
        from ciao.interpreter.route import on_ciao_line

        code = request.field("code", str, "")
        cursor = _cursor(request, code)
        job = assist.job_argument(code, cursor)
        studies_only = job is None
        if job is None:  # %best ci<Tab>: the studies
            job = assist.study_argument(code, cursor)
        if job is not None:  # %attach ci<Tab>: the jobs this machine knows of
            prefix, start, end = job
            names = self.manager.known_job_names(studies_only=studies_only)
            matches = [n for n in names if n.startswith(prefix)]
            metadata: dict[str, Any] = {}
        else:
            matches, start, end = assist.complete(code, cursor, self._editor_interpreter())
            metadata = {}
            if not on_ciao_line(code, cursor):
                answer = self.session.request(
                    "complete_request",
                    {"code": code, "cursor_pos": cursor},
                    SESSION_ANSWER_SECONDS,
                )
                ours = (matches, start, end)
                matches, start, end, metadata = merge_completions(code, ours, answer)
        request.reply(
            {
                "status": "ok",
                "matches": matches,
                "cursor_start": start,
                "cursor_end": end,
                "metadata": metadata,
            }
        )

    def _editor_interpreter(self) -> MagicInterpreter | None:
        """The interpreter cells are read with now, for is_complete and completion (the
        config's framework and profiles: `%profile=<Tab>`); None: the defaults'."""
        from ciao.interpreter.magics import MagicInterpreter

        interpreter = self.manager.cell_interpreter()
        return interpreter if isinstance(interpreter, MagicInterpreter) else None

    def inspect(self, request: Request) -> None:
        """The doc of the Ciao magic under the cursor, else the session's (a name's
        signature and docstring)."""
        from ciao.interpreter import assist

        code = request.field("code", str, "")
        cursor = _cursor(request, code)
        doc = assist.inspect(code, cursor)
        if doc is None:
            answer = self.session.request(
                "inspect_request",
                {
                    "code": code,
                    "cursor_pos": cursor,
                    "detail_level": request.field("detail_level", int, 0),
                },
                SESSION_ANSWER_SECONDS,
            )
            if answer is not None and answer.get("status") == "ok" and answer.get("found"):
                request.reply(
                    {
                        "status": "ok",
                        "found": True,
                        "data": answer.get("data") or {},
                        "metadata": answer.get("metadata") or {},
                    }
                )
                return
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
        """The session's comms (ipywidgets), when it runs; Ciao itself has none."""
        content = {"target_name": request.field("target_name", str, None)}
        answer = self.session.request(
            "comm_info_request",
            {k: v for k, v in content.items() if v is not None},
            SESSION_ANSWER_SECONDS,
        )
        comms = answer.get("comms") if answer is not None else None
        request.reply({"status": "ok", "comms": comms if isinstance(comms, dict) else {}})

    def comm_open(self, request: Request) -> None:
        """To the session when it runs (its comm targets: ipywidgets); else no target:
        the comm is closed at once, as ipykernel does."""
        if self._forward(request):
            return
        comm_id = request.content.get("comm_id", "")
        log.info("no comm target %r; closing comm %s", request.content.get("target_name"), comm_id)
        request.publish("comm_close", {"comm_id": comm_id, "data": {}})

    def comm_forward(self, request: Request) -> None:
        if not self._forward(request):
            log.info(
                "ignored %s for unknown comm %s", request.msg_type, request.content.get("comm_id")
            )

    def _forward(self, request: Request) -> bool:
        from ciao.kernel.session_cell import CommRelay

        return self.session.forward(
            request.msg_type,
            request.content,
            request.msg.metadata,
            request.msg.buffers,
            CommRelay(request),
        )

    # ---- lifecycle -----------------------------------------------------------------

    def shutdown(self, request: Request) -> None:
        restart = request.field("restart", bool, False)
        request.reply({"status": "ok", "restart": restart})
        self.stop()

    def stop(self) -> None:
        """Cancel what runs and end the shell loop (from any thread); the session's
        process stops in `close`, on the main thread, once the loop has ended."""
        self.manager.cancel()
        self.memory.close()
        if self._session is not None:
            self._session.abandon()
        self.server.stop()

    def close(self) -> None:
        """Stop the session's process (no orphan survives the kernel). Main thread."""
        if self._session is not None:
            self._session.close()

    def interrupt_request(self, request: Request) -> None:
        self.interrupt()
        request.reply({"status": "ok"})

    def interrupt(self) -> None:
        """Interrupt the session's cell (KeyboardInterrupt there), or cancel the running
        job; never blocks (control or signal thread)."""
        if self._session is not None and self._session.interrupt():
            log.info("interrupt: KeyboardInterrupt in the session")
        elif self.manager.cancel():
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
        out = Output(request, silent)
        if not silent:
            request.publish("execute_input", {"code": code, "execution_count": count})
        reply: dict[str, Any] = {"status": "ok", "execution_count": count}
        in_session = False
        try:
            prepared = self.cells.prepare(code)
            in_session = prepared is not None and prepared.session
            if prepared is not None and prepared.session:
                from ciao.kernel.cell import budget_of
                from ciao.kernel.session_cell import run_session_cell

                out.budget = budget_of(prepared.config)
                reply.update(
                    run_session_cell(self.session, code, request, out, count, store_history)
                )
            else:
                payload = [] if prepared is None else self.cells.run_prepared(prepared, out, count)
                reply.update(payload=payload, user_expressions=self._expressions(expressions))
        except CiaoError as exc:
            reply.update(self._error(exc, out))
        except Exception as exc:  # a bug of ours: still an error reply, never a dead kernel
            log.exception("executing a cell failed")
            reply.update(self._error(exc, out, internal=True))
        if store_history:  # what it defined is there for later job cells, even if it failed
            self.memory.record(count, code, in_session=in_session)
        request.reply(reply, metadata={"status": reply["status"]})
        if reply["status"] == "error" and stop_on_error:
            self.server.abort_queued(
                {
                    "status": "abort",
                    "ename": "ExecutionAborted",
                    "evalue": "not run: an earlier cell failed (stop_on_error)",
                    "traceback": [],
                    "execution_count": self.execution_count,
                }
            )

    def _carry_session(self) -> Session | None:
        """The session job cells take values from; None when the config turns it off."""
        return self.session if self.manager.session_enabled() else None

    def _owner(self, count: int) -> dict[str, str]:
        """Who submits a job: this kernel, its session, the cell, and the notebook when
        the frontend names it (for the job's labels, `%jobs`, and "shown" marks)."""
        owner = {
            "kernel-id": self.kernel_id,
            "session": self.server.session[:16],
            "cell": str(count),
        }
        owner.update(self.notebook)
        return owner

    def _expressions(self, expressions: dict[str, Any]) -> dict[str, Any]:
        """Evaluated in the session when it runs; a job cell has no namespace here."""
        if not expressions:
            return {}
        if self._session is not None and self._session.running:
            try:
                return self.session.evaluate(expressions)
            except CiaoError as exc:
                why = str(exc)
        else:
            why = "no Python session runs (the first cell without job magics starts it)"
        return {
            name: {"status": "error", "ename": "NotSupported", "evalue": why, "traceback": []}
            for name in expressions
        }

    def _error(self, exc: Exception, out: Output, internal: bool = False) -> dict[str, Any]:
        if isinstance(exc, CiaoError):
            ename, evalue, traceback = exc.ename, str(exc), exc.lines()
        else:
            ename, evalue = type(exc).__name__, f"internal error in the ciao kernel: {exc}"
            traceback = [f"{ename}: {evalue}"]
        error = {"ename": ename, "evalue": evalue, "traceback": traceback}
        out.error(error)
        return {"status": "error", **error}


def notebook_of(path: str) -> dict[str, str]:
    """The notebook this kernel runs, from its path as Jupyter Server names it to its
    kernels (JPY_SESSION_NAME): `notebook`, its file name, which a person recognises, and
    `notebook-id`, which tells it from every other notebook of that name (another folder,
    another user in a shared namespace). Both fit a Kubernetes label value (they label the
    notebook's jobs), so they read back the same from every backend. {} without a path."""
    path = path.strip().rstrip("/")
    if not path:
        return {}
    name = os.path.basename(path)
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in name)
    user = os.environ.get("USER", "") or str(os.getuid())
    digest = hashlib.sha256(f"{user}:{os.path.abspath(path)}".encode()).hexdigest()
    return {"notebook": safe[:63].strip("._-") or "notebook", "notebook-id": digest[:16]}


def merge_completions(
    code: str, ours: tuple[list[str], int, int], answer: dict[str, Any] | None
) -> tuple[list[str], int, int, dict[str, Any]]:
    """Ciao's matches and the session's complete_reply as one answer: both replace a span
    of the cell, so each match is widened to the span both cover. Ciao's come first on a
    line starting with %, the session's first elsewhere; each match once."""
    matches, start, end = ours
    if answer is None or answer.get("status") != "ok" or not answer.get("matches"):
        return matches, start, end, {}
    theirs = [m for m in answer["matches"] if isinstance(m, str)]
    their_start = answer.get("cursor_start")
    their_end = answer.get("cursor_end")
    if not isinstance(their_start, int) or not isinstance(their_end, int):
        return matches, start, end, {}
    if not matches:
        start, end = their_start, their_end
    span_start, span_end = min(start, their_start), max(end, their_end)

    def widen(text: str, s: int, e: int) -> str:
        return code[span_start:s] + text + code[e:span_end]

    ciao = [widen(m, start, end) for m in matches]
    session = [widen(m, their_start, their_end) for m in theirs]
    line_start = code.rfind("\n", 0, span_start) + 1
    first, second = (
        (ciao, session) if code[line_start:].lstrip().startswith("%") else (session, ciao)
    )
    merged = list(dict.fromkeys(first + second))
    metadata: dict[str, Any] = {}
    types = (answer.get("metadata") or {}).get("_jupyter_types_experimental")
    if isinstance(types, list) and not matches:
        metadata = {"_jupyter_types_experimental": types}
    return merged, span_start, span_end, metadata


def _cursor(request: Request, code: str) -> int:
    position: int = request.field("cursor_pos", int, len(code))
    return max(0, min(position, len(code)))


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
