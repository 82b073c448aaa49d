"""The five sockets and their loops: shell read on its own thread and answered on the main
thread, control and heartbeat on their own threads, IOPub owned by a forwarding thread that
also greets new subscribers and bounds what they subscribe to.

Every zmq socket belongs to exactly one thread. Other threads reach IOPub, and the main
thread reaches shell, through per-thread inproc PUSH sockets; the socket that wakes the
control loop is only used under a lock, by `stop()`.

What a peer can make the kernel hold is bounded (docs/reliability.md): a frame by
MAXMSGSIZE on every socket, a whole message by reading it frame by frame (`bounds`), what
waits for the main thread in bytes, IOPub topics per connection and in all
(`subscriptions`), heartbeat echoes by a small size cap and send high-water mark. libzmq
assembles a multipart message before handing any of it over, so under the NULL mechanism a
message of many frames, each under the cap, is held whole before it can be refused; only
CurveZMQ (keys in the connection file) keeps a peer that lacks them from sending at all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from ciao.protocol import peers
from ciao.protocol.bounds import RequestQueue, ThrottledLog, drain, read_bounded, read_verified
from ciao.protocol.connection import ConnectionInfo
from ciao.protocol.message import Codec, Message, Signer, error_content, reply_type
from ciao.protocol.shell import STOP, ShellReader
from ciao.protocol.subscriptions import MAX_TOPIC_BYTES, Action, SubscriptionGuard

log = logging.getLogger("ciao.protocol")

Handler = Callable[["Request"], None]

#: Largest shell message (its frames together) the kernel takes; $CIAO_MAX_MESSAGE_BYTES
#: changes it. A websocket from Jupyter Server or Kernel Gateway carries at most 10 MiB
#: (tornado's default), so no request a notebook sends comes near it.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Control answers kernel_info, shutdown and interrupt requests: small messages.
CONTROL_MAX_MESSAGE_BYTES = 1024 * 1024
#: The shell queue for the main thread holds this many messages at the bound, in bytes.
SHELL_QUEUE_MESSAGES = 4
#: Largest frame on stdin: an input_reply carries what a person typed at an input()
#: prompt (a pasted text, at most). What comes there unasked for is dropped.
STDIN_MAX_FRAME_BYTES = 1024 * 1024
#: A whole stdin message as `read_bounded` counts it (an input_reply's few frames).
STDIN_MAX_BYTES = 2 * STDIN_MAX_FRAME_BYTES
#: Input requests asked and not yet answered, at most (older ones are forgotten).
MAX_PENDING_INPUTS = 16
#: Subscriptions are all that comes up IOPub: a frame holds one topic and a 10-byte
#: command header; a longer frame ends its sender's connection before libzmq stores it.
IOPUB_MAX_FRAME_BYTES = MAX_TOPIC_BYTES + 16
#: CurveZMQ's handshake commands (HELLO: 200 bytes, INITIATE: 300 or so) pass through the
#: same cap, so a socket with keys takes frames of this much at least. (Its peers have the
#: key: the cap is there for peers without one, who cannot get past the handshake.)
CURVE_MIN_FRAME_BYTES = 1024
#: What an IOPub peer may have waiting: XPUB takes all of it in at once, so keep it small.
IOPUB_RECEIVE_QUEUE = 4
#: Messages read from IOPub subscribers in one turn of its loop, between forwarded output.
IOPUB_UPSTREAM_BATCH = 64
#: A heartbeat frame (jupyter_client pings b"ping", in REQ's envelope), and a whole ping as
#: `read_bounded` counts it (a few frames, with their overhead).
HEARTBEAT_MAX_FRAME_BYTES = 1024
HEARTBEAT_MAX_BYTES = 4 * HEARTBEAT_MAX_FRAME_BYTES
#: Pings waiting for the heartbeat loop, and echoes waiting for a peer, per peer: a peer
#: that never reads its echoes loses the rest, and holds no more than this.
HEARTBEAT_QUEUE = 16
#: Messages a request socket queues per peer before the peer has to wait.
RECEIVE_QUEUE = 64


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
        self.server.send(self.channel, reply_type(self.msg_type), content, self.msg, metadata)
        self.replied = True

    def reply_error(self, ename: str, evalue: str) -> None:
        self.reply(error_content(ename, evalue))

    def publish(self, msg_type: str, content: dict[str, Any], **extra: Any) -> None:
        self.server.publish(msg_type, content, parent=self.msg, **extra)

    def ask_input(self, content: dict[str, Any]) -> str:
        """Send an input_request (`prompt`, `password`) to the frontend that sent this
        request, on stdin; its id, for `server.input_reply`. Only when the request
        allowed stdin (`allow_stdin`): a frontend that did not will never answer."""
        return self.server.ask_input(self.msg, content)


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

    `dispatch(request)` is called for every verified request on shell (main thread, in
    `serve_shell`) and control (control thread), between `busy` and `idle` status messages.
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
        self.control_max_message = min(self.max_message, CONTROL_MAX_MESSAGE_BYTES)
        self.shell = self._bind(zmq.ROUTER, "shell", self.max_message)
        self.control = self._bind(zmq.ROUTER, "control", self.control_max_message)
        self.stdin = self._bind(zmq.ROUTER, "stdin", STDIN_MAX_FRAME_BYTES)
        self.iopub = self._bind(
            zmq.XPUB, "iopub", IOPUB_MAX_FRAME_BYTES, receive_queue=IOPUB_RECEIVE_QUEUE
        )
        self.iopub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.iopub.setsockopt(zmq.XPUB_MANUAL, 1)  # subscriptions are accepted, or not, here
        self.hb = self._bind(
            zmq.ROUTER,
            "hb",
            HEARTBEAT_MAX_FRAME_BYTES,
            receive_queue=HEARTBEAT_QUEUE,
            send_queue=HEARTBEAT_QUEUE,
        )
        self._iopub_pull = self._inproc(zmq.PULL, "iopub")
        self._iopub_push = _LocalPush(self.ctx, self._address("iopub"))
        self._shell_queue = RequestQueue(SHELL_QUEUE_MESSAGES * self.max_message)
        self._shell_replies = _LocalPush(self.ctx, self._address("shell-replies"))
        self._shell_reader = ShellReader(
            self.shell,
            self._inproc(zmq.PULL, "shell-replies"),
            self.codec,
            self._shell_queue,
            self.max_message,
            self.status,
        )
        self._subscriptions = SubscriptionGuard(
            peers.Identities(), self._is_iopub_connection, max_topic=MAX_TOPIC_BYTES
        )
        self._wake_control_pull = self._inproc(zmq.PULL, "wake-control")
        self._wake_control = self._inproc(zmq.PUSH, "wake-control")
        self._stdin_out_pull = self._inproc(zmq.PULL, "stdin-out")
        self._stdin_out = _LocalPush(self.ctx, self._address("stdin-out"))
        self._inputs = _Inputs()
        self._dropped = {
            name: ThrottledLog(log) for name in ("control", "stdin", "iopub", "iopub-peer")
        }
        self._threads: dict[str, threading.Thread] = {}

    def _bind(
        self,
        kind: int,
        channel: str,
        max_frame: int,
        receive_queue: int = RECEIVE_QUEUE,
        send_queue: int | None = None,
    ) -> zmq.Socket:
        """A socket bound to `channel`'s port: a frame over `max_frame` ends its sender's
        connection inside libzmq, before any of it is held."""
        sock = self.ctx.socket(kind)
        sock.linger = 1000
        if self.info.uses_curve:
            max_frame = max(max_frame, CURVE_MIN_FRAME_BYTES)
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame)
        sock.setsockopt(zmq.RCVHWM, receive_queue)
        if send_queue is not None:
            sock.setsockopt(zmq.SNDHWM, send_queue)
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
        """Send on shell (from any thread but the shell thread: it goes through the shell
        thread, which owns the socket) or control (from the control thread)."""
        msg = self.codec.message(msg_type, content, parent, metadata, parent.identities)
        frames = self.codec.serialize(msg)
        if channel == "shell":
            self._shell_replies.send(frames)
        else:
            self.control.send_multipart(frames)

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        topic: str | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Publish on IOPub from any thread (`buffers`: a comm message's binary parts)."""
        msg = self.codec.message(msg_type, content, parent, metadata)
        msg.identities = [(topic or f"kernel.{self.codec.session[:8]}.{msg_type}").encode()]
        msg.buffers = list(buffers or [])
        self._iopub_push.send(self.codec.serialize(msg))

    def ask_input(self, parent: Message, content: dict[str, Any]) -> str:
        """Send an input_request on stdin to the frontend that sent `parent` (its shell
        identity is its stdin identity too), from any thread; the request's id."""
        msg = self.codec.message("input_request", content, parent, identities=parent.identities)
        self._inputs.ask(msg.msg_id)
        self._stdin_out.send(self.codec.serialize(msg))
        return msg.msg_id

    def input_reply(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """The content of the frontend's input_reply to `request_id`, waiting up to
        `timeout` seconds for it; None if it has not come (yet)."""
        return self._inputs.reply(request_id, timeout)

    def forget_input(self, request_id: str) -> None:
        """No longer wait for an answer to `request_id` (it would be dropped)."""
        self._inputs.forget(request_id)

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
            (self._shell_reader.run, "shell"),
        ):
            thread = threading.Thread(target=target, name=f"ciao-{name}", daemon=True)
            thread.start()
            self._threads[name] = thread

    def _heartbeat_loop(self) -> None:
        """Echo every ping to its sender (a ROUTER, as ipykernel's: REQ and DEALER peers
        alike). A frame over HEARTBEAT_MAX_FRAME_BYTES ends its sender's connection, a ping
        over HEARTBEAT_MAX_BYTES is not echoed, and an echo for a peer with HEARTBEAT_QUEUE
        unread is dropped, never waited for."""
        try:
            while True:
                frames, _ = read_bounded(self.hb, HEARTBEAT_MAX_BYTES)
                if frames is not None:
                    self.hb.send_multipart(frames, zmq.NOBLOCK, copy=False)
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
                        self._read_upstream()
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

    def _read_upstream(self) -> None:
        """What IOPub subscribers sent, a turn's worth (output is forwarded between)."""
        for _ in range(IOPUB_UPSTREAM_BATCH):
            try:
                frame = self.iopub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_upstream(frame)

    def _on_upstream(self, frame: zmq.Frame) -> None:
        """XPUB tells of each (un)subscription (XPUB_MANUAL: it takes effect only here,
        for the connection it came from, right after it is read). The guard says which
        to accept, and which connection holds too many; subscribers are greeted (JEP 65
        iopub_welcome)."""
        fd, address = peers.source(frame)
        verdict = self._subscriptions.on_message(frame.bytes, fd, address)
        if verdict.action is Action.SUBSCRIBE:
            self.iopub.setsockopt(zmq.SUBSCRIBE, verdict.topic)
            self._welcome(verdict.topic)
        elif verdict.action is Action.UNSUBSCRIBE:
            self.iopub.setsockopt(zmq.UNSUBSCRIBE, verdict.topic)
        elif verdict.action is Action.DROP and verdict.peer is not None:
            ended = peers.drop(verdict.peer)
            self._dropped["iopub-peer"].warning(
                "%s the IOPub connection of %s: %s",
                "ended" if ended else "could not end (it had ended)",
                verdict.peer,
                verdict.reason,
            )
        elif verdict.action is Action.REFUSE:
            self._dropped["iopub"].warning("refused an IOPub subscription: %s", verdict.reason)

    def _welcome(self, topic: bytes) -> None:
        msg = self.codec.message(
            "iopub_welcome", {"subscription": topic.decode("utf-8", "replace")}
        )
        msg.identities = [topic]
        self.iopub.send_multipart(self.codec.serialize(msg))

    def _is_iopub_connection(self, peer: peers.Peer) -> bool:
        """Whether `peer` is a connection to the IOPub socket (a descriptor libzmq closed
        may have gone to another of the kernel's connections, or to a file)."""
        if isinstance(peer.local, tuple):
            return bool(peer.local[1] == self.info.iopub_port)
        return self.info.url("iopub") == f"ipc://{peer.local}"

    def _control_loop(self) -> None:
        try:
            self._serve_control()
        except zmq.ZMQError as exc:
            log.error("control loop stopped: %s", exc)
        finally:
            self.control.close(linger=1000)  # a shutdown_reply may still be on its way
            self.stdin.close(linger=0)
            self._wake_control_pull.close()
            self._stdin_out_pull.close(linger=0)

    def _serve_control(self) -> None:
        """Answer requests on control, and carry stdin: input requests out (queued by
        `ask_input`), the answers to them in; anything else that comes on stdin is read
        and dropped, so nothing piles up there."""
        poller = zmq.Poller()
        for sock in (self.control, self._wake_control_pull, self.stdin, self._stdin_out_pull):
            poller.register(sock, zmq.POLLIN)
        while not self._stopping.is_set():
            ready = dict(poller.poll())
            if self._stdin_out_pull in ready:
                while self._stdin_out_pull.poll(0):
                    self.stdin.send_multipart(self._stdin_out_pull.recv_multipart(), zmq.NOBLOCK)
            if self.stdin in ready:
                self._read_stdin()
            if self.control in ready and not self._stopping.is_set():
                self._handle_control()

    def _read_stdin(self) -> None:
        """Take the input_replies that answer a pending input_request; drop the rest."""
        if not self._inputs.waiting():
            if drain(self.stdin):
                self._dropped["stdin"].warning("dropped what came on stdin: no input was asked for")
            return
        for _ in range(RECEIVE_QUEUE):
            if not self.stdin.poll(0):
                return
            msg, _ = read_verified(
                self.stdin, STDIN_MAX_BYTES, self.codec, self._dropped["stdin"], "stdin"
            )
            if msg is None:
                continue
            answered = msg.parent_header.get("msg_id")
            if msg.msg_type != "input_reply" or not self._inputs.answer(answered, msg.content):
                self._dropped["stdin"].warning(
                    "dropped %s on stdin: it answers no pending input request", msg.msg_type
                )

    def _handle_control(self) -> None:
        """Answer one message on control; nothing a client sends may end the loop."""
        msg, _ = read_verified(
            self.control, self.control_max_message, self.codec, self._dropped["control"], "control"
        )
        if msg is None:
            return
        self._answer("control", msg)

    def serve_shell(self) -> None:
        """Answer shell requests on the calling (main) thread, in the order they came,
        until `stop()`. The shell thread reads them (and verifies them) meanwhile."""
        while (msg := self._shell_queue.get()) is not None:
            self._answer("shell", msg)

    @property
    def session(self) -> str:
        """This kernel's session id (the `session` of every message it sends)."""
        return self.codec.session

    def abort_queued(self, reply: dict[str, Any]) -> None:
        """stop_on_error: answer every execute_request already queued on shell with `reply`
        (status "abort") instead of running it; other queued requests are handled as usual.
        Main thread only."""
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
        return self._shell_queue.get_nowait()

    def _answer(self, channel: str, msg: Message) -> None:
        """Answer one verified request; nothing a client sends may end the loop."""
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
            self._shell_queue.close()
            self._wake_control.send(b"")

    def close(self, timeout: float = 2.0) -> bool:
        """Deliver what is queued, then end every loop; False if that took too long.

        Called on the main thread after `serve_shell` returned (and `start_threads`). The
        control thread is let finish first: its last messages (a shutdown_reply, its idle)
        go out, and no socket is closed here while it may still use it. The shell thread
        sends the main thread's last replies, then closes its socket. The heartbeat and
        IOPub threads close their own sockets when the context terminates.
        """
        deadline = time.monotonic() + timeout
        self.stop()
        self._threads["control"].join(timeout / 2)
        if self._threads["control"].is_alive():
            log.warning("the control thread is stuck in a handler")
            return False
        self.flush_iopub(timeout=max(0.0, deadline - time.monotonic()))
        self._shell_replies.send([STOP])  # after the main thread's last reply
        self._threads["shell"].join(max(0.0, deadline - time.monotonic()))
        self._iopub_push.close()
        self._stdin_out.close()
        self._shell_replies.close()
        self._wake_control.close(linger=0)
        terminator = threading.Thread(target=self.ctx.term, name="ciao-zmq-term", daemon=True)
        terminator.start()
        terminator.join(max(0.0, deadline - time.monotonic()))
        return not terminator.is_alive()


class _Inputs:
    """The input requests waiting for an answer and the answers come for them (the
    control thread files them, the thread that asked takes them)."""

    def __init__(self) -> None:
        self._answers: dict[str, dict[str, Any] | None] = {}
        self._changed = threading.Condition()

    def ask(self, request_id: str) -> None:
        with self._changed:
            self._answers[request_id] = None
            while len(self._answers) > MAX_PENDING_INPUTS:
                del self._answers[next(iter(self._answers))]

    def waiting(self) -> bool:
        with self._changed:
            return bool(self._answers)

    def answer(self, request_id: Any, content: dict[str, Any]) -> bool:
        """File the answer to `request_id`; False if no such request waits for one. An
        answer that names no request it answers (jupyter_client's `input()` and older
        frontends send none) answers the one request waiting, if one is."""
        with self._changed:
            unanswered = [key for key, value in self._answers.items() if value is None]
            if not (isinstance(request_id, str) and request_id in self._answers):
                if len(unanswered) != 1:
                    return False  # a stray: it answers nothing asked
                request_id = unanswered[0]
            if request_id not in unanswered:
                return False  # answered already
            self._answers[request_id] = content
            self._changed.notify_all()
            return True

    def reply(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._answers.get(request_id) is not None, timeout)
            content = self._answers.get(request_id)
            if content is not None:
                del self._answers[request_id]
            return content

    def forget(self, request_id: str) -> None:
        with self._changed:
            self._answers.pop(request_id, None)
