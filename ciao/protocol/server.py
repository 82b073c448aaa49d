"""The five sockets and their loops: shell on the main thread, control and heartbeat on
their own threads, IOPub owned by a forwarding thread that also greets new subscribers.

Every zmq socket belongs to exactly one thread. Other threads reach IOPub through per-thread
inproc PUSH sockets; the two sockets that wake the shell and control loops are only used
under a lock, by `stop()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from ciao.protocol.connection import ConnectionInfo
from ciao.protocol.message import Codec, Message, ProtocolError, Signer

log = logging.getLogger("ciao.protocol")

Handler = Callable[["Request"], None]

#: The channels with a request loop: shell on the main thread, control on its own.
LOOPS = ("shell", "control")
#: Largest message a socket accepts (a bigger one drops its sender's connection before
#: any of it is held); $CIAO_MAX_MESSAGE_BYTES changes it.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Messages a request socket queues per peer before the peer has to wait.
RECEIVE_QUEUE = 64
#: Longest IOPub subscription topic accepted (Jupyter clients subscribe to "").
MAX_TOPIC_BYTES = 256


def max_message_bytes(env: dict[str, str] | None = None) -> int:
    """$CIAO_MAX_MESSAGE_BYTES, else the default; a bad value is the default, said once."""
    value = (os.environ if env is None else env).get("CIAO_MAX_MESSAGE_BYTES", "")
    if value.isdigit() and int(value) >= 1024:
        return int(value)
    if value:
        log.warning("CIAO_MAX_MESSAGE_BYTES=%r is not a number >= 1024: ignored", value)
    return DEFAULT_MAX_MESSAGE_BYTES


class BadRequest(ValueError):
    """A request whose content lacks the JSON types the messaging spec gives it."""


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

    def field(self, name: str, kind: type, default: Any = None) -> Any:
        """content[name] (`default` if absent or null), checked against its JSON type: a
        list as `code` or "false" as `silent` is refused (BadRequest), never guessed at."""
        value = self.msg.content.get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise BadRequest(
                f"{self.msg_type}: {name} must be {kind.__name__}, not {type(value).__name__}"
            )
        return value

    def reply(self, content: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        reply_type = self.msg_type.rsplit("_", 1)[0] + "_reply"
        self.server.send(self.channel, reply_type, content, self.msg, metadata)
        self.replied = True

    def reply_error(self, ename: str, evalue: str) -> None:
        self.reply({"status": "error", "ename": ename, "evalue": evalue, "traceback": []})

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

    def __init__(
        self, info: ConnectionInfo, dispatch: Handler, max_message: int | None = None
    ) -> None:
        self.info = info
        self.dispatch = dispatch
        self.max_message = max_message or max_message_bytes()
        if not info.key:
            log.warning(
                "the connection file has an empty key: messages are not signed, and anyone "
                "who can reach these ports can run code as this user"
            )
        self.codec = Codec(Signer(info.key, info.signature_scheme))
        self.ctx = zmq.Context()
        self._stopping = threading.Event()
        self._stop_lock = threading.Lock()
        self._iopub_flushed: dict[bytes, threading.Event] = {}
        self._token = os.urandom(4).hex()
        self.shell = self._bind(zmq.ROUTER, "shell")
        self.control = self._bind(zmq.ROUTER, "control")
        self.stdin = self._bind(zmq.ROUTER, "stdin")
        self.iopub = self._bind(zmq.XPUB, "iopub")
        self.iopub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.iopub.setsockopt(zmq.XPUB_MANUAL, 1)  # subscriptions are accepted, or not, here
        self.hb = self._bind(zmq.REP, "hb")
        self._iopub_pull = self._inproc(zmq.PULL, "iopub")
        self._iopub_push = _LocalPush(self.ctx, self._address("iopub"))
        self._wake_pull = {loop: self._inproc(zmq.PULL, f"wake-{loop}") for loop in LOOPS}
        self._wake_push = {loop: self._inproc(zmq.PUSH, f"wake-{loop}") for loop in LOOPS}
        self._threads: dict[str, threading.Thread] = {}

    def _bind(self, kind: int, channel: str) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 1000
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message)
        sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        if self.info.uses_curve:
            sock.curve_secretkey = self.info.curve_secretkey
            sock.curve_publickey = self.info.curve_publickey
            sock.curve_server = True
        sock.bind(self.info.url(channel))
        return sock

    def _address(self, name: str) -> str:
        return f"inproc://ciao-{name}-{self._token}"

    def _inproc(self, kind: int, name: str) -> zmq.Socket:
        """An inproc socket: PULLs bind, PUSHes connect (created here, on the main thread)."""
        sock = self.ctx.socket(kind)
        if kind == zmq.PULL:
            sock.bind(self._address(name))
        else:
            sock.connect(self._address(name))
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
        """Send on shell or control; only from the thread that owns that socket."""
        sock = {"shell": self.shell, "control": self.control}[channel]
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
        """Wait until what this thread (and any thread before it) published has been
        handed to the IOPub socket."""
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
            (self._heartbeat_loop, "heartbeat"),
            (self._iopub_loop, "iopub"),
            (self._control_loop, "control"),
        ):
            thread = threading.Thread(target=target, name=f"ciao-{name}", daemon=True)
            thread.start()
            self._threads[name] = thread

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
                    else:
                        self._forward(self._iopub_pull.recv_multipart())
        except zmq.ZMQError as exc:
            log.debug("iopub loop stopped: %s", exc)
        finally:
            self._iopub_pull.close(linger=0)
            self.iopub.close(linger=1000)

    def _forward(self, frames: list[bytes]) -> None:
        """Publish what a thread queued. A flush marker is answered only once everything
        other threads queued is out too: PULL takes turns between its pipes, so what the
        control thread sent may still wait behind the main thread's marker."""
        if frames[0] != b"":
            self.iopub.send_multipart(frames)
            return
        tokens = [frames[1]]
        while True:
            try:
                frames = self._iopub_pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frames[0] == b"":
                tokens.append(frames[1])
            else:
                self.iopub.send_multipart(frames)
        for token in tokens:
            event = self._iopub_flushed.pop(token, None)
            if event:
                event.set()

    def _on_subscription(self, frame: bytes) -> None:
        """XPUB tells of each (un)subscription (XPUB_MANUAL: it takes effect only here);
        a topic longer than MAX_TOPIC_BYTES is refused; subscribers are greeted (JEP 65
        iopub_welcome)."""
        if not frame or frame[0] not in (0, 1):
            return
        if len(frame) - 1 > MAX_TOPIC_BYTES:
            log.warning("refused an IOPub subscription of %d bytes", len(frame) - 1)
            return
        if frame[0] == 0:
            self.iopub.setsockopt(zmq.UNSUBSCRIBE, frame[1:])
            return
        self.iopub.setsockopt(zmq.SUBSCRIBE, frame[1:])
        topic = frame[1:].decode("utf-8", "replace")
        msg = self.codec.message("iopub_welcome", {"subscription": topic})
        msg.identities = [frame[1:]]
        self.iopub.send_multipart(self.codec.serialize(msg))

    def _control_loop(self) -> None:
        try:
            self._serve("control", self.control, drain=self.stdin)
        except zmq.ZMQError as exc:
            log.error("control loop stopped: %s", exc)
        finally:
            self.control.close(linger=1000)  # a shutdown_reply may still be on its way
            self.stdin.close(linger=0)
            self._wake_pull["control"].close()

    def serve_shell(self) -> None:
        """Run the shell loop on the calling (main) thread until `stop()`."""
        self._serve("shell", self.shell)

    def _serve(self, channel: str, sock: zmq.Socket, drain: zmq.Socket | None = None) -> None:
        """Answer requests on `sock`; what arrives on `drain` (stdin: Ciao never asks for
        input) is read and dropped, so nothing piles up there."""
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_pull[channel], zmq.POLLIN)
        if drain is not None:
            poller.register(drain, zmq.POLLIN)
        while not self._stopping.is_set():
            ready = dict(poller.poll())
            if drain is not None and drain in ready:
                while drain.poll(0):
                    drain.recv_multipart(copy=False)
                log.debug("dropped a message on stdin: this kernel never asks for input")
            if sock in ready and not self._stopping.is_set():
                self._handle(channel, sock.recv_multipart())

    @property
    def session(self) -> str:
        """This kernel's session id (the `session` of every message it sends)."""
        return self.codec.session

    def abort_queued(self, reply: dict[str, Any]) -> None:
        """stop_on_error: answer every execute_request already queued on shell with `reply`
        (status "abort") instead of running it; other queued requests are handled as usual.
        Shell thread only."""
        while (msg := self._pending_shell()) is not None:
            if msg.msg_type != "execute_request":
                self.handle_message("shell", msg)
                continue
            request = Request(self, "shell", msg)
            self.status("busy", msg)
            request.reply(reply)
            self.status("idle", msg)

    def _pending_shell(self) -> Message | None:
        """The next queued shell request, if one is waiting; else None."""
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
        """Answer one message; nothing a client sends may end the loop."""
        msg = self._receive(channel, frames)
        if msg is None:
            return
        try:
            self.handle_message(channel, msg)
        except zmq.ZMQError:
            raise
        except Exception:
            log.exception("could not answer %s on %s", msg.msg_type, channel)

    def handle_message(self, channel: str, msg: Message) -> None:
        """busy, dispatch, idle: around every request, whatever happens inside."""
        request = Request(self, channel, msg)
        self.status("busy", msg)
        try:
            self.dispatch(request)
        except Exception as exc:
            if isinstance(exc, BadRequest):
                log.warning("refused %s on %s: %s", msg.msg_type, channel, exc)
                ename, evalue = "BadRequest", str(exc)
            else:
                log.exception("error handling %s on %s", msg.msg_type, channel)
                ename, evalue = "KernelError", f"the kernel failed to handle {msg.msg_type}"
            if not request.replied and msg.msg_type.endswith("_request"):
                request.reply_error(ename, evalue)
        finally:
            self.status("idle", msg)

    # ---- stopping ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask the shell and control loops to return (from any thread; only the first call
        does anything, so no wake-up socket is used after `close`)."""
        with self._stop_lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            for push in self._wake_push.values():
                push.send(b"")

    def close(self, timeout: float = 2.0) -> bool:
        """Deliver what is queued, then end every loop; False if that took too long.

        Called on the main thread after `serve_shell` returned (and `start_threads`). The
        control thread is let finish first: its last messages (a shutdown_reply, its idle)
        go out, and no socket is closed here while it may still use it. The heartbeat and
        IOPub threads close their own sockets when the context terminates.
        """
        deadline = time.monotonic() + timeout
        self.stop()
        self._threads["control"].join(timeout / 2)
        if self._threads["control"].is_alive():
            log.warning("the control thread is stuck in a handler")
            return False
        self.flush_iopub(timeout=max(0.0, deadline - time.monotonic()))
        self._iopub_push.close()
        for sock in (*self._wake_push.values(), self._wake_pull["shell"]):
            sock.close(linger=0)
        self.shell.close(linger=500)
        terminator = threading.Thread(target=self.ctx.term, name="ciao-zmq-term", daemon=True)
        terminator.start()
        terminator.join(max(0.0, deadline - time.monotonic()))
        return not terminator.is_alive()
