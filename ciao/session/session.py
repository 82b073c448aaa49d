"""The session: a persistent Python namespace for the cells that are not jobs.

`Session` starts its child (child.py) on first use and relays it: requests go to the
child, and what it publishes comes back through a `Relay` the kernel gives, with the
kernel's execution count. It knows Jupyter's messages but not the kernel's sockets: the
kernel (ciao.kernel.session_cell) turns a Relay into IOPub messages and a `Stdin` into
input requests to the frontend.

Threads: every method runs on the thread that runs cells (the kernel's main thread), but
`running`, `interrupt` and `abandon`, which any thread may call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import zmq

from ciao.session.errors import (
    SessionEnded,
    SessionError,
    SessionInterrupted,
    describe_exit,
)

if TYPE_CHECKING:
    from ciao.session.child import Child
    from ciao.session.pump import Pump

log = logging.getLogger("ciao.session")

#: What the child publishes that the kernel does not pass on: it says busy and idle, and
#: echoes the code, itself.
UNRELAYED = frozenset({"status", "execute_input", "iopub_welcome", "shutdown_reply", "debug_event"})
#: Requests of the child whose IOPub messages are still routed (older ones go to the
#: latest cell, as ipykernel sends output it cannot place).
MAX_ROUTES = 256
#: How often a wait checks that the kernel is not stopping (and, without a pidfd, that
#: the child lives); while the frontend is asked for input, how often it looks for the
#: answer.
CHECK_SECONDS = 0.2
INPUT_CHECK_SECONDS = 0.02
#: How long the kernel relays what the session does for a frontend's comm message before
#: it answers the next request (what comes later is published as it comes).
COMM_WAIT = 30.0
#: How long after an interrupt a hidden run that overran may take to stop.
INTERRUPT_GRACE = 5.0


class Relay(Protocol):
    """Where the session's messages for one request go (the kernel publishes them)."""

    def publish(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any], buffers: list[bytes]
    ) -> None: ...


class Stdin(Protocol):
    """The frontend's side of `input()`: ask it (an input_request), then take its answer."""

    def ask(self, content: dict[str, Any]) -> str: ...

    def answer(self, ask_id: str, timeout: float) -> dict[str, Any] | None: ...

    def forget(self, ask_id: str) -> None: ...


@dataclass(frozen=True)
class _Route:
    """Where a request's IOPub messages go: `relay` (None: nowhere, a hidden run), with
    the kernel's execution count for its execute_result."""

    relay: Relay | None
    count: int | None = None


class Session:
    """A Python session in a child process, started by `start` and after a crash again."""

    def __init__(
        self, python: str | None = None, cwd: str | None = None, start_timeout: float = 60.0
    ) -> None:
        #: The Python the child runs: the kernel's (the one local replicas run).
        self.python = python or sys.executable
        #: Its working directory; None: the kernel's when it starts (the notebook's folder).
        self.cwd = cwd
        self.start_timeout = start_timeout
        self._child: Child | None = None
        self._pump: Pump | None = None
        self._routes: OrderedDict[str, _Route] = OrderedDict()
        self._last: _Route | None = None
        self._lock = threading.Lock()
        self._next_count = 1
        self._busy = False
        self._starting = False
        self._interrupted = False
        self._abandoned = threading.Event()
        #: How the last child ended, when it ended on its own: said by the next cell.
        self._ended: str | None = None

    # ---- state -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a session process is alive (never starts one)."""
        child = self._child
        return child is not None and child.alive

    @property
    def pid(self) -> int | None:
        """The session process's id while it runs."""
        child = self._child
        return child.pid if child is not None and child.alive else None

    def start(self) -> str | None:
        """Start the session unless it runs. Returns how the previous one ended when it
        ended on its own (a crash, the out-of-memory killer), for the cell to say that
        its names are gone; None otherwise. SessionError if it cannot start."""
        from ciao.session.child import Child
        from ciao.session.pump import Pump

        child = self._child
        if child is not None and child.alive:
            return None
        if child is not None:  # it ended between requests
            self._ended = describe_exit(child.process.wait())
            self._discard()
        if self._abandoned.is_set():
            raise SessionError("the kernel is shutting down")
        with self._lock:
            self._starting, self._interrupted = True, False
        try:
            try:
                child = Child(self.python, self.cwd or os.getcwd())
            except OSError as exc:
                raise SessionError(
                    f"could not start the Python session ({self.python}): {exc}"
                ) from exc
            try:
                child.wait_ready(self.start_timeout)
            except BaseException:
                child.stop()
                raise
        finally:
            with self._lock:
                self._starting = False
        pump = Pump(child.context, child.iopub, self._publish_frames)
        pump.start()
        self._child, self._pump = child, pump
        self._next_count = 1
        log.info("session started: pid %d in %s", child.pid, child.cwd)
        ended, self._ended = self._ended, None
        return ended

    # ---- cells -------------------------------------------------------------------------

    def execute(
        self,
        code: str,
        relay: Relay,
        stdin: Stdin | None,
        *,
        count: int,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run a cell in the session (started already); its execute_reply content, with
        `count` as its execution count. Output goes to `relay` as it comes; `input()`
        asks through `stdin` (None: the cell may not read input, and gets an error).
        SessionEnded if the session dies meanwhile."""
        child, pump = self._require()
        if store_history and self._next_count != count:  # tracebacks say In [count]
            self._send_hidden(child, f"get_ipython().execution_count = {int(count)}")
        pump.hand_over()  # before the request: its first output comes to this thread
        with self._lock:
            self._busy = True
            interrupted, self._interrupted = self._interrupted, False
        try:
            if interrupted:
                raise SessionInterrupted("the cell was interrupted before its code ran")
            content = {
                "code": code,
                "silent": silent,
                "store_history": store_history,
                "user_expressions": user_expressions or {},
                "allow_stdin": stdin is not None,
                "stop_on_error": False,
            }
            msg_id = child.send(child.shell, "execute_request", content)
            self._remember(msg_id, _Route(relay, count), last=True)
            reply = self._wait(child, msg_id, stdin=stdin, idle=True, what="running this cell")
        finally:
            with self._lock:
                self._busy = False
            for frames in pump.take_back():
                self._publish_frames(frames)
        assert reply is not None  # no deadline
        if store_history:
            self._next_count = count + 1
        return {**reply, "execution_count": count}

    def run_hidden(self, code: str, timeout: float) -> None:
        """Run `code` in the session's user namespace unseen: no output reaches any cell,
        it is not in the history, and the execution count does not move. For the kernel's
        own use (what a job cell needs from the session), on the thread that runs cells.

        Raises SessionError carrying the exception's text (`NameError: name 'x' is not
        defined`) when the code raises; SessionError when no session runs (`running`
        says; this never starts one) or the code has not finished within `timeout`
        seconds (it is then interrupted); SessionEnded if the session dies meanwhile."""
        reply = self._hidden(code, {}, timeout)
        if reply.get("status") != "ok":
            ename = reply.get("ename", "Error")
            raise SessionError(f"{ename}: {reply.get('evalue', '')}".rstrip(": "))

    def evaluate(self, expressions: dict[str, str], timeout: float = 10.0) -> dict[str, Any]:
        """user_expressions evaluated in the running session (its reply's field)."""
        result = self._hidden("", expressions, timeout).get("user_expressions")
        return result if isinstance(result, dict) else {}

    def _hidden(self, code: str, expressions: dict[str, str], timeout: float) -> dict[str, Any]:
        child, _ = self._require()
        content = {
            "code": code,
            "silent": True,
            "store_history": False,
            "user_expressions": expressions,
            "allow_stdin": False,
            "stop_on_error": False,
        }
        msg_id = child.send(child.shell, "execute_request", content)
        self._remember(msg_id, _Route(None))
        with self._lock:
            self._busy = True
        try:
            deadline = time.monotonic() + timeout
            reply = self._wait(child, msg_id, deadline=deadline, what="running hidden code")
            if reply is None:
                child.interrupt()
                grace = time.monotonic() + INTERRUPT_GRACE
                self._wait(child, msg_id, deadline=grace, what="running hidden code")
                raise SessionError(
                    f"the session did not finish the code within {timeout:g} s, so it was "
                    "interrupted"
                )
        finally:
            with self._lock:
                self._busy = False
        return reply

    # ---- requests ----------------------------------------------------------------------

    def request(self, msg_type: str, content: dict[str, Any], timeout: float) -> dict | None:
        """Send a shell request (complete_request, inspect_request, is_complete_request,
        comm_info_request) to the running session; its reply's content, or None when no
        session runs or it does not answer within `timeout` seconds."""
        child = self._child
        if child is None or not child.alive:
            return None
        msg_id = child.send(child.shell, msg_type, content)
        self._remember(msg_id, _Route(None))
        try:
            return self._wait(child, msg_id, deadline=time.monotonic() + timeout, what="answering")
        except Exception as exc:  # the session died: the kernel answers alone
            log.info("the session did not answer %s: %s", msg_type, exc)
            return None

    def forward(
        self,
        msg_type: str,
        content: dict[str, Any],
        metadata: dict[str, Any],
        buffers: list[bytes],
        relay: Relay,
    ) -> bool:
        """Pass a frontend's comm message (comm_open, comm_msg, comm_close) to the running
        session and relay what it publishes in answer (a widget's callback runs there) up
        to its idle, or COMM_WAIT seconds (later messages still reach `relay`). False
        when no session runs."""
        child, pump = self._child, self._pump
        if child is None or pump is None or not child.alive:
            return False
        msg = child.session.msg(msg_type, content, metadata=metadata)
        msg_id = str(msg["header"]["msg_id"])
        pump.hand_over()
        with self._lock:
            self._busy = True
        try:
            self._remember(msg_id, _Route(relay), last=True)
            child.session.send(child.shell, msg, buffers=buffers or None)
            deadline = time.monotonic() + COMM_WAIT
            self._wait(child, msg_id, idle=True, reply=False, deadline=deadline, what=msg_type)
        finally:
            with self._lock:
                self._busy = False
            for frames in pump.take_back():
                self._publish_frames(frames)
        return True

    # ---- interrupting and stopping -----------------------------------------------------

    def interrupt(self) -> bool:
        """Interrupt what the session runs for a cell: KeyboardInterrupt in its code, its
        names kept; while it starts for a cell, the cell will not run its code. Any
        thread; False when the session is doing nothing for a cell."""
        with self._lock:
            child = self._child
            if self._starting:
                self._interrupted = True
                return True
            if not self._busy or child is None:
                return False
        return child.interrupt()

    def abandon(self) -> None:
        """The kernel is stopping: a wait for the session gives up (any thread)."""
        self._abandoned.set()

    def close(self) -> None:
        """Stop the session process and release everything (no orphan). Idempotent."""
        self._discard()

    # ---- inside ------------------------------------------------------------------------

    def _require(self) -> tuple[Child, Pump]:
        child, pump = self._child, self._pump
        if child is None or pump is None or not child.alive:
            raise SessionError("no Python session is running")
        return child, pump

    def _send_hidden(self, child: Child, code: str) -> None:
        """Send code to run unseen without waiting (its reply is let go when it comes):
        the cell sent next runs after it."""
        content = {
            "code": code,
            "silent": True,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": False,
        }
        self._remember(child.send(child.shell, "execute_request", content), _Route(None))

    def _remember(self, msg_id: str, route: _Route, last: bool = False) -> None:
        with self._lock:
            self._routes[msg_id] = route
            while len(self._routes) > MAX_ROUTES:
                self._routes.popitem(last=False)
            if last:
                self._last = route

    def _wait(
        self,
        child: Child,
        msg_id: str,
        *,
        stdin: Stdin | None = None,
        idle: bool = False,
        reply: bool = True,
        deadline: float | None = None,
        what: str,
    ) -> dict[str, Any] | None:
        """Wait for the child's reply to `msg_id` (unless not `reply`: a comm message has
        none) and, with `idle`, for its IOPub idle, relaying what came before it: the
        reply's content ({} without one), None past `deadline`. Input requests go to
        `stdin` and its answers back. SessionEnded if the child dies."""
        pump = self._pump
        poller = zmq.Poller()
        for sock in (child.shell, child.stdin):
            poller.register(sock, zmq.POLLIN)
        if idle and pump is not None:
            poller.register(pump.handoff, zmq.POLLIN)
        if child.pidfd is not None:
            poller.register(child.pidfd, zmq.POLLIN)
        answer: dict[str, Any] | None = None if reply else {}
        idle_seen = not idle
        asked: tuple[str, dict[str, Any]] | None = None  # (our id, the child's request)
        try:
            while answer is None or not idle_seen:
                if self._abandoned.is_set():
                    raise SessionError(f"the kernel is shutting down: it stopped {what}")
                wait = INPUT_CHECK_SECONDS if asked else CHECK_SECONDS
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return None
                ready = dict(poller.poll(int(wait * 1000) + 1))
                if pump is not None and pump.handoff in ready:
                    while pump.handoff.poll(0):
                        msg = self._parse(pump.handoff.recv_multipart())
                        if msg is None:
                            continue
                        if _is_idle_of(msg, msg_id):
                            idle_seen = True
                        else:
                            self._relay(msg)
                if child.shell in ready:
                    while (msg := child.recv(child.shell)) is not None:
                        if msg["parent_header"].get("msg_id") == msg_id:
                            answer = msg["content"]
                if child.stdin in ready:
                    while (msg := child.recv(child.stdin)) is not None:
                        asked = self._ask(child, msg, stdin) or asked
                if asked is not None and stdin is not None:
                    answer = stdin.answer(asked[0], 0)
                    if answer is not None:
                        child.send(child.stdin, "input_reply", answer, parent=asked[1])
                        asked = None
                if (child.pidfd is not None and child.pidfd in ready) or (
                    not ready and not child.alive
                ):
                    self._died(child, what)
        finally:
            if asked is not None and stdin is not None:
                stdin.forget(asked[0])
        return answer

    def _ask(
        self, child: Child, msg: dict[str, Any], stdin: Stdin | None
    ) -> tuple[str, dict[str, Any]] | None:
        """An input_request of the child: asked of the frontend; when the cell may not
        read input (ipykernel does not ask then), answered empty at once."""
        if msg["msg_type"] != "input_request":
            return None
        if stdin is None:
            child.send(child.stdin, "input_reply", {"value": ""}, parent=msg)
            return None
        return stdin.ask(dict(msg["content"])), msg

    def _died(self, child: Child, what: str) -> None:
        how = describe_exit(child.process.wait())
        self._discard()
        self._ended = how
        raise SessionEnded(
            f"the Python session {how} while {what}: the names it held are lost. The next "
            "cell without job magics starts a fresh session."
        )

    def _parse(self, frames: list[bytes]) -> dict[str, Any] | None:
        child = self._child
        if child is None:
            return None
        return child.parse(frames)

    def _publish_frames(self, frames: list[bytes]) -> None:
        msg = self._parse(frames)
        if msg is not None:
            self._relay(msg)

    def _relay(self, msg: dict[str, Any]) -> None:
        """Pass one IOPub message of the child to the relay of its request."""
        msg_type = msg["msg_type"]
        if msg_type in UNRELAYED:
            return
        parent = msg["parent_header"].get("msg_id")
        with self._lock:
            route = self._routes.get(parent, self._last) if parent else self._last
        if route is None or route.relay is None:
            return
        content = msg["content"]
        if msg_type == "execute_result" and route.count is not None:
            content = {**content, "execution_count": route.count}
        buffers = [bytes(b) for b in msg.get("buffers") or []]
        route.relay.publish(msg_type, content, msg.get("metadata") or {}, buffers)

    def _discard(self) -> None:
        """Stop the pump and the child (if it still runs), forget its requests."""
        pump, child = self._pump, self._child
        self._pump = self._child = None
        if pump is not None:
            pump.stop()
        if child is not None:
            child.stop()
        with self._lock:
            self._routes.clear()
            self._last = None


def _is_idle_of(msg: dict[str, Any], msg_id: str) -> bool:
    return bool(
        msg["msg_type"] == "status"
        and msg["content"].get("execution_state") == "idle"
        and msg["parent_header"].get("msg_id") == msg_id
    )
