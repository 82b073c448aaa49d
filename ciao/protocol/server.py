"""The five sockets and their loops: shell on the main thread, control and heartbeat on
their own threads, IOPub owned by a forwarding thread that also greets new subscribers.

Every zmq socket belongs to exactly one thread. Other threads reach IOPub (and the shell
loop's wake-up) through per-thread inproc PUSH sockets, so no socket is shared.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import zmq

from ciao.protocol.connection import ConnectionInfo
from ciao.protocol.message import Codec, Message, ProtocolError, Signer

log = logging.getLogger("ciao.protocol")

Handler = Callable[["Request"], None]


class Request:
    """One incoming request, with the means to answer it on the channel it came in on."""

    def __init__(self, server: KernelServer, channel: str, msg: Message) -> None:
        self.server = server
        self.channel = channel
        self.msg = msg
        self.replied = False

    @property
    def msg_type(self) -> str:
        return self.msg.msg_type

    @property
    def content(self) -> dict[str, Any]:
        return self.msg.content

    def reply(self, content: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        reply_type = self.msg_type.rsplit("_", 1)[0] + "_reply"
        self.server.send(self.channel, reply_type, content, self.msg, metadata)
        self.replied = True

    def publish(self, msg_type: str, content: dict[str, Any], **extra: Any) -> None:
        self.server.publish(msg_type, content, parent=self.msg, **extra)


class _LocalPush:
    """A PUSH socket per thread, connected to one inproc address."""

    def __init__(self, ctx: zmq.Context, address: str) -> None:
        self._ctx = ctx
        self._address = address
        self._local = threading.local()
        self._all: list[zmq.Socket] = []
        self._lock = threading.Lock()

    def send(self, frames: list[bytes]) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.linger = 1000
            sock.connect(self._address)
            self._local.sock = sock
            with self._lock:
                self._all.append(sock)
        sock.send_multipart(frames)

    def close(self) -> None:
        with self._lock:
            for sock in self._all:
                sock.close(linger=0)
            self._all.clear()


class KernelServer:
    """Binds the connection file's sockets and runs their loops.

    `dispatch(request)` is called for every verified request on shell (main thread) and
    control (control thread), between `busy` and `idle` status messages.
    """

    def __init__(self, info: ConnectionInfo, dispatch: Handler) -> None:
        self.info = info
        self.dispatch = dispatch
        self.codec = Codec(Signer(info.key, info.signature_scheme))
        self.ctx = zmq.Context()
        self._stopping = threading.Event()
        self._iopub_flushed: dict[bytes, threading.Event] = {}
        token = os.urandom(4).hex()
        self._iopub_in = f"inproc://ciao-iopub-{token}"
        self._wake_in = f"inproc://ciao-wake-{token}"
        self.shell = self._bind(zmq.ROUTER, "shell")
        self.control = self._bind(zmq.ROUTER, "control")
        self.stdin = self._bind(zmq.ROUTER, "stdin")
        self.iopub = self._bind(zmq.XPUB, "iopub")
        self.iopub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.hb = self._bind(zmq.REP, "hb")
        self._iopub_pull = self.ctx.socket(zmq.PULL)
        self._iopub_pull.bind(self._iopub_in)
        self._wake_pull = self.ctx.socket(zmq.PULL)
        self._wake_pull.bind(self._wake_in)
        self._iopub_push = _LocalPush(self.ctx, self._iopub_in)
        self._wake_push = _LocalPush(self.ctx, self._wake_in)
        self._threads: list[threading.Thread] = []

    def _bind(self, kind: int, channel: str) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 1000
        if self.info.uses_curve:
            sock.curve_secretkey = self.info.curve_secretkey
            sock.curve_publickey = self.info.curve_publickey
            sock.curve_server = True
        sock.bind(self.info.url(channel))
        return sock

    # ---- sending -------------------------------------------------------------------

    def send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        parent: Message,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Send on shell, control or stdin; only from the thread that owns that socket."""
        sock = {"shell": self.shell, "control": self.control, "stdin": self.stdin}[channel]
        msg = self.codec.message(msg_type, content, parent, metadata, parent.identities)
        sock.send_multipart(self.codec.serialize(msg))

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> None:
        """Publish on IOPub from any thread."""
        msg = self.codec.message(msg_type, content, parent, metadata)
        msg.identities = [(topic or f"kernel.{self.codec.session[:8]}.{msg_type}").encode()]
        self._iopub_push.send(self.codec.serialize(msg))

    def flush_iopub(self, timeout: float = 2.0) -> bool:
        """Wait until what this thread published has been handed to the IOPub socket."""
        token = os.urandom(8)
        done = threading.Event()
        self._iopub_flushed[token] = done
        self._iopub_push.send([b"", token])
        return done.wait(timeout)

    def status(self, state: str, parent: Message | None = None) -> None:
        self.publish("status", {"execution_state": state}, parent)

    # ---- loops ---------------------------------------------------------------------

    def start_threads(self) -> None:
        for target, name in (
            (self._heartbeat_loop, "ciao-heartbeat"),
            (self._iopub_loop, "ciao-iopub"),
            (self._control_loop, "ciao-control"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _heartbeat_loop(self) -> None:
        try:
            zmq.proxy(self.hb, self.hb)
        except zmq.ZMQError as exc:
            log.debug("heartbeat stopped: %s", exc)
        finally:
            self.hb.close(linger=0)

    def _iopub_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._iopub_pull, zmq.POLLIN)
        poller.register(self.iopub, zmq.POLLIN)
        try:
            while True:
                for sock, _ in poller.poll():
                    if sock is self.iopub:
                        self._on_subscription(self.iopub.recv())
                        continue
                    frames = self._iopub_pull.recv_multipart()
                    if frames and frames[0] == b"":  # a flush marker
                        event = self._iopub_flushed.pop(frames[1], None)
                        if event:
                            event.set()
                        continue
                    self.iopub.send_multipart(frames)
        except zmq.ZMQError as exc:
            log.debug("iopub loop stopped: %s", exc)
        finally:
            self._iopub_pull.close(linger=0)
            self.iopub.close(linger=1000)

    def _on_subscription(self, frame: bytes) -> None:
        """XPUB tells of each (un)subscription; greet subscribers (JEP 65 iopub_welcome)."""
        if not frame or frame[0] != 1:
            return
        topic = frame[1:].decode("utf-8", "replace")
        msg = self.codec.message("iopub_welcome", {"subscription": topic})
        msg.identities = [frame[1:]]
        self.iopub.send_multipart(self.codec.serialize(msg))

    def _control_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                frames = self.control.recv_multipart(copy=True)
                self._handle("control", frames)
        except zmq.ZMQError as exc:
            if not self._stopping.is_set():
                log.error("control loop stopped: %s", exc)
        finally:
            self.control.close(linger=1000)

    def serve_shell(self) -> None:
        """Run the shell loop on the calling (main) thread until `stop()`."""
        poller = zmq.Poller()
        poller.register(self.shell, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        while not self._stopping.is_set():
            ready = dict(poller.poll())
            if self._wake_pull in ready:
                self._wake_pull.recv_multipart()
            if self.shell in ready and not self._stopping.is_set():
                self._handle("shell", self.shell.recv_multipart(copy=True))

    def pending_shell(self) -> Message | None:
        """The next queued shell request, if one is waiting (to abort it); else None."""
        while self.shell.poll(0):
            msg = self._receive("shell", self.shell.recv_multipart(copy=True))
            if msg is not None:
                return msg
        return None

    def _receive(self, channel: str, frames: list[bytes]) -> Message | None:
        try:
            return self.codec.deserialize(frames)
        except ProtocolError as exc:
            log.warning("dropped a message on %s: %s", channel, exc)
            return None

    def _handle(self, channel: str, frames: list[bytes]) -> None:
        msg = self._receive(channel, frames)
        if msg is not None:
            self.handle_message(channel, msg)

    def handle_message(self, channel: str, msg: Message) -> None:
        """busy, dispatch, idle: around every request, whatever happens inside."""
        request = Request(self, channel, msg)
        self.status("busy", msg)
        try:
            self.dispatch(request)
        except Exception:
            log.exception("error handling %s on %s", msg.msg_type, channel)
            if not request.replied and msg.msg_type.endswith("_request"):
                request.reply(
                    {
                        "status": "error",
                        "ename": "KernelError",
                        "evalue": f"the kernel failed to handle {msg.msg_type}",
                        "traceback": [],
                    }
                )
        finally:
            self.status("idle", msg)

    # ---- stopping ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask the shell loop to return (from any thread)."""
        self._stopping.set()
        self._wake_push.send([b"stop"])

    def close(self, timeout: float = 2.0) -> bool:
        """Deliver what is queued, then end every loop; False if that took too long.

        Called on the main thread after `serve_shell` returned. Each loop thread closes
        its own socket when the context terminates.
        """
        self._stopping.set()
        self.flush_iopub(timeout=timeout / 2)
        self._iopub_push.close()
        self._wake_push.close()
        for sock in (self.shell, self.stdin, self._wake_pull):
            sock.close(linger=500)
        terminator = threading.Thread(target=self.ctx.term, name="ciao-zmq-term", daemon=True)
        terminator.start()
        terminator.join(timeout)
        return not terminator.is_alive()
