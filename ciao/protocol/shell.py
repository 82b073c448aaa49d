"""The shell socket's own thread: it reads every message as it comes, even while the main
thread runs a cell, so nothing a peer sends waits in libzmq's queue (bounded in messages,
not bytes) for the cell to end.

Each message is read frame by frame up to the bound, verified at once (unsigned, badly
signed and replayed ones are dropped there, nothing of them kept), and queued for the main
thread in a queue bounded in bytes; over the bound a request is answered at once with a
KernelBusy error. The main thread's replies come back through an inproc socket and go out
here: this thread is the only one that touches the shell socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq

from ciao.protocol.bounds import RequestQueue, ThrottledLog, read_verified
from ciao.protocol.message import Codec, Message, error_content, reply_type

log = logging.getLogger("ciao.protocol")

#: What the main thread sends through `replies` once it will send nothing more.
STOP = b"ciao-stop"


class ShellReader:
    """Owns the shell ROUTER socket and the inproc PULL the main thread's replies come
    through; `run` on its own thread until STOP comes that way (or the context ends)."""

    def __init__(
        self,
        sock: zmq.Socket,
        replies: zmq.Socket,
        codec: Codec,
        queue: RequestQueue,
        limit: int,
        status: Callable[[str, Message], None],
    ) -> None:
        self.sock = sock
        self.replies = replies
        self.codec = codec
        self.queue = queue
        self.limit = limit
        self.status = status
        self._dropped = ThrottledLog(log)
        self._refused = ThrottledLog(log)

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.replies, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self.replies in ready and not self._send_replies():
                    return
                if self.sock in ready:
                    self._read_safely()
        except zmq.ZMQError as exc:
            log.debug("shell thread stopped: %s", exc)
        finally:
            self.replies.close(linger=0)
            self.sock.close(linger=500)  # the last replies (a shutdown_reply) still go out

    def _send_replies(self) -> bool:
        """Send what the main thread replied, in its order; False once it said STOP."""
        while self.replies.poll(0):
            frames = self.replies.recv_multipart()
            if frames == [STOP]:
                return False
            self.sock.send_multipart(frames)
        return True

    def _read_safely(self) -> None:
        """`_read`; nothing a client sends may end this thread."""
        try:
            self._read()
        except zmq.ZMQError:
            raise
        except Exception:
            log.exception("could not take a message on shell")

    def _read(self) -> None:
        """One message: dropped (over the bound, or not verified), queued, or refused."""
        msg, size = read_verified(self.sock, self.limit, self.codec, self._dropped, "shell")
        if msg is None:
            return
        if not self.queue.put(msg, size):
            self._refuse(msg)

    def _refuse(self, msg: Message) -> None:
        """Answer a request the queue has no room for: busy, the error, idle (a client
        waits for its request's idle), and nothing else is done with it."""
        waiting = self.queue.queued_bytes / 1e6
        self._refused.warning(
            "refused %s on shell: %.1f MB of requests wait already", msg.msg_type, waiting
        )
        if not msg.msg_type.endswith("_request"):
            return
        content = error_content(
            "KernelBusy",
            f"the kernel is busy: {waiting:.1f} MB of requests already wait for it "
            f"(at most {self.queue.max_bytes / 1e6:.1f} MB), so this {msg.msg_type} "
            "was not queued; send it again once the kernel is idle",
        )
        reply = self.codec.message(
            reply_type(msg.msg_type), content, msg, identities=msg.identities
        )
        self.status("busy", msg)
        self.sock.send_multipart(self.codec.serialize(reply))
        self.status("idle", msg)
