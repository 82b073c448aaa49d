"""The session's process: an ipykernel child of the kernel, and a client over its channels.

ipykernel is the well-kept Python kernel: it brings IPython's display formatters (a
DataFrame's HTML table), `display()`, matplotlib inline, tracebacks that name the cell and
line, completion and inspection, `input()`, comms, and the magics and shell escapes people
type (`%timeit`, `!ls`). Ciao starts it with jupyter_client's launcher and talks to it with
jupyter_client's message session over ZeroMQ IPC sockets in a private directory, so nothing
on the network reaches it; the kernel relays what it says.

The child runs the kernel's Python (the one local replicas run) in the kernel's working
directory (the notebook's folder), in a process group of its own: an interrupt is SIGINT
to that group, as Jupyter interrupts a kernel, and what the child started goes with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import deque
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.launcher import launch_kernel

from ciao.session.errors import SessionError, describe_exit

log = logging.getLogger("ciao.session")

#: How soon a client socket retries its connection: the child binds its IPC sockets a
#: few hundred milliseconds after it starts, and zmq's default (100 ms) would add up to
#: that much to the first cell.
RECONNECT_MS = 10
#: Lines of the child's stderr kept, for the error when it cannot start.
STDERR_LINES = 20
#: IPython's history database is off: the kernel keeps the notebook's history (and answers
#: history requests), `In`, `Out`, `_i`, `_1` and `%history` work from memory as before,
#: and a cell costs 0.7 ms less without its SQLite write (nor do sessions of several
#: kernels contend for one file in ~/.ipython). Lost: `%history -g` of earlier sessions.
CHILD_OPTIONS = ("--HistoryManager.enabled=False",)
#: How long a graceful shutdown may take before the child is killed.
SHUTDOWN_WAIT = 1.0


class Child:
    """One ipykernel process and the client sockets to it (used on one thread, but for
    `interrupt` and `alive`, which any thread may call)."""

    def __init__(self, python: str, cwd: str, env: dict[str, str] | None = None) -> None:
        self.python = python
        self.cwd = cwd
        self._dir = tempfile.mkdtemp(prefix="ciao-session-")  # 0700: only this user
        transport = "ipc" if hasattr(socket, "AF_UNIX") else "tcp"
        address = os.path.join(self._dir, "s") if transport == "ipc" else "127.0.0.1"
        self.connection_file, _ = write_connection_file(
            os.path.join(self._dir, "connection.json"),
            transport=transport,
            ip=address,
            key=secrets.token_hex(32).encode("ascii"),
            kernel_name="ciao-session",
        )
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        argv = [python, "-m", "ipykernel_launcher", "-f", self.connection_file, *CHILD_OPTIONS]
        self.process: subprocess.Popen[bytes] = launch_kernel(
            argv, env=child_env, cwd=cwd, stdout=None, stderr=subprocess.PIPE
        )
        self.pid = self.process.pid
        self._parse_lock = threading.Lock()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_reader = threading.Thread(
            target=self._read_stderr, name="ciao-session-stderr", daemon=True
        )
        self._stderr_reader.start()
        self.context = zmq.Context()
        self.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        self.context.setsockopt(zmq.LINGER, 0)
        self.client = BlockingKernelClient(
            connection_file=self.connection_file, context=self.context
        )
        self.client.load_connection_file()
        self.client.start_channels(hb=False)
        self.session = self.client.session
        self.shell = self.client.shell_channel.socket
        self.stdin = self.client.stdin_channel.socket
        self.control = self.client.control_channel.socket
        self.iopub = self.client.iopub_channel.socket
        self.pidfd = _pidfd(self.pid)

    # ---- process -------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        """None while the process runs; how it ended once it has."""
        return self.process.poll()

    @property
    def alive(self) -> bool:
        return self.returncode is None

    def interrupt(self) -> bool:
        """SIGINT to the child's process group (any thread); False if it had ended."""
        if self.process.returncode is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGINT)
            return True
        return False

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def _read_stderr(self) -> None:
        """What the child writes to its stderr (ipykernel's warnings, a crash before it
        could capture output) goes to the kernel's log, its last lines kept."""
        stream = self.process.stderr
        assert stream is not None
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            log.info("session stderr: %s", line)
        stream.close()

    # ---- messages ------------------------------------------------------------------

    def send(self, sock: zmq.Socket, msg_type: str, content: dict[str, Any], **kw: Any) -> str:
        """Send a request on one of the child's sockets; its msg_id."""
        msg = self.session.msg(msg_type, content, **kw)
        self.session.send(sock, msg, buffers=kw.get("buffers"))
        return str(msg["header"]["msg_id"])

    def recv(self, sock: zmq.Socket) -> dict[str, Any] | None:
        """The next message waiting on `sock`, verified and parsed; None if none waits
        (or it was not the child's: unsigned, replayed, malformed)."""
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            msg = self.parse(frames)
            if msg is not None:
                return msg

    def parse(self, frames: list[bytes]) -> dict[str, Any] | None:
        """A message of the child from its frames; None (logged) if it cannot be one.
        Any thread: jupyter_client's Session keeps the signatures it saw, unlocked."""
        try:
            with self._parse_lock:
                _, rest = self.session.feed_identities(frames, copy=True)
                msg: dict[str, Any] = self.session.deserialize(rest, content=True, copy=True)
        except Exception as exc:
            log.warning("dropped a message of the session: %s", exc)
            return None
        return msg

    def wait_ready(self, timeout: float) -> None:
        """Return once the child answers on shell and publishes on IOPub; SessionError if
        it ends, or does not answer within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        replied = published = False
        asked = -1.0
        poller = zmq.Poller()
        poller.register(self.shell, zmq.POLLIN)
        poller.register(self.iopub, zmq.POLLIN)
        if self.pidfd is not None:
            poller.register(self.pidfd, zmq.POLLIN)
        while not (replied and published):
            now = time.monotonic()
            if now > deadline:
                raise SessionError(
                    f"the Python session did not start within {timeout:.0f} s" + self._said()
                )
            if now - asked > 1.0:  # again: a first request may beat the child's sockets
                self.send(self.shell, "kernel_info_request", {})
                asked = now
            ready = dict(poller.poll(100))
            if self.shell in ready:
                while (msg := self.recv(self.shell)) is not None:
                    replied = replied or msg["msg_type"] == "kernel_info_reply"
            if self.iopub in ready:
                while self.recv(self.iopub) is not None:
                    published = True  # iopub_welcome, or a status: subscribed
            if not self.alive:
                how = describe_exit(self.process.wait())
                self._stderr_reader.join(1.0)  # what it said before it ended
                hint = ""
                if "No module named" in self.stderr_tail():
                    hint = (
                        f"\nInstall ipykernel in that Python ({self.python} -m pip install "
                        "ipykernel), or make every cell a job: session: {enabled: false} in "
                        "the config"
                    )
                raise SessionError(
                    f"the Python session could not start: {self.python} -m ipykernel_launcher "
                    f"{how}" + self._said() + hint
                )

    def _said(self) -> str:
        tail = self.stderr_tail()
        return f"; it said:\n{tail}" if tail else ""

    # ---- stopping ------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the child to shut down; kill its process group if it has not within
        SHUTDOWN_WAIT; release the sockets and the directory. Idempotent."""
        if self.alive:
            with contextlib.suppress(zmq.ZMQError):
                self.send(self.control, "shutdown_request", {"restart": False})
            try:
                self.process.wait(SHUTDOWN_WAIT)
            except subprocess.TimeoutExpired:
                log.info("the session did not shut down in %.1f s: killing it", SHUTDOWN_WAIT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # its group: what the session started too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        self.close()

    def close(self) -> None:
        """Release the sockets, the pidfd and the directory (the process has ended)."""
        self.client.stop_channels()
        self.context.destroy(linger=0)
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
        shutil.rmtree(self._dir, ignore_errors=True)


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` ends (Linux 5.3+), so a wait for the
    child's messages also wakes when it dies; None where there is none (then the waits
    check the process between short polls)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None
