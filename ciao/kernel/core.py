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
    from ciao.manager import Manager

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

#: What the control channel answers. Anything else there would run on the control thread,
#: beside a running cell (an execute would even read the shell socket to abort the queue).
CONTROL_REQUESTS = frozenset({"kernel_info_request", "shutdown_request", "interrupt_request"})


class CiaoKernel:
    """The meaning of every request; execution of a cell through the Manager."""

    implementation = "ciao"

    def __init__(self, server: KernelServer, manager: Manager, kernel_id: str = "") -> None:
        self.server = server
        self.manager = manager
        self.kernel_id = kernel_id
        self.notebook = notebook_of(os.environ.get("JPY_SESSION_NAME", ""))
        from ciao.kernel.carry import NotebookMemory
        from ciao.kernel.cell import CellRunner

        self.memory = NotebookMemory(lambda: None, os.getcwd())
        self.cells = CellRunner(manager, self._owner, self.memory)
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
                "banner": BANNER if self.server.info.key else BANNER + UNSIGNED_WARNING,
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
        self.memory.close()
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
        out = Output(request, silent)
        if not silent:
            request.publish("execute_input", {"code": code, "execution_count": count})
        reply: dict[str, Any] = {"status": "ok", "execution_count": count}
        try:
            payload = self.cells.run(code, out, count)
            reply.update(payload=payload, user_expressions=self._expressions(expressions))
        except CiaoError as exc:
            reply.update(self._error(exc, out))
        except Exception as exc:  # a bug of ours: still an error reply, never a dead kernel
            log.exception("executing a cell failed")
            reply.update(self._error(exc, out, internal=True))
        if store_history:  # what it defined is there for later job cells, even if it failed
            self.memory.record(count, code, in_session=False)
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
