"""The session's IOPub, read on a thread of its own, so what the session publishes between
cells (a thread's prints, a widget's update) reaches the notebook when it is published.

While a cell runs, the pump hands every message to the thread that runs the cell (through
an inproc socket that thread polls with the child's other sockets), which publishes it:
the cell's output then leaves in order with the kernel's own messages for the cell
(execute_input before, the reply and idle after). Between cells it publishes itself.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable

import zmq

log = logging.getLogger("ciao.session")


class Pump:
    """Owns the child's IOPub socket from `start` until `stop`."""

    def __init__(
        self, ctx: zmq.Context, iopub: zmq.Socket, publish: Callable[[list[bytes]], None]
    ) -> None:
        self._ctx = ctx
        self._iopub = iopub
        self._publish = publish
        token = uuid.uuid4().hex[:12]
        self._handoff_address = f"inproc://ciao-session-handoff-{token}"
        self._stop_address = f"inproc://ciao-session-stop-{token}"
        #: What the cell's thread polls for the messages handed to it.
        self.handoff = ctx.socket(zmq.PULL)
        self.handoff.bind(self._handoff_address)
        self._stop_pull = ctx.socket(zmq.PULL)
        self._stop_pull.bind(self._stop_address)
        self._stop_push = ctx.socket(zmq.PUSH)
        self._stop_push.connect(self._stop_address)
        self._lock = threading.Lock()
        self._handing = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ciao-session-iopub", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hand_over(self) -> None:
        """From now on, messages go to `handoff` (a cell starts)."""
        with self._lock:
            self._handing = True

    def take_back(self) -> list[list[bytes]]:
        """The pump publishes again (the cell ended); what was handed and not yet read."""
        with self._lock:
            self._handing = False
            left: list[list[bytes]] = []
            while not self._stopped and self.handoff.poll(0):
                left.append(self.handoff.recv_multipart())
            return left

    def _run(self) -> None:
        push = self._ctx.socket(zmq.PUSH)
        push.connect(self._handoff_address)
        poller = zmq.Poller()
        poller.register(self._iopub, zmq.POLLIN)
        poller.register(self._stop_pull, zmq.POLLIN)
        try:
            while True:
                ready = dict(poller.poll())
                if self._stop_pull in ready:
                    return
                frames = self._iopub.recv_multipart()
                if _never_relayed(frames):
                    continue
                with self._lock:
                    if self._handing:  # under the lock: take_back sees it in the pipe
                        push.send_multipart(frames)
                        continue
                try:
                    self._publish(frames)
                except Exception:
                    log.exception("relaying a message of the session failed")
        except zmq.ZMQError as exc:
            log.debug("the session's IOPub pump stopped: %s", exc)
        finally:
            push.close(linger=0)
            self._stop_pull.close(linger=0)

    def stop(self) -> None:
        """End the thread and wait for it (the IOPub socket is the caller's again)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._stop_push.send(b"")
            self._thread.join(5.0)
        else:
            self._stop_pull.close(linger=0)  # never started (closing twice does nothing)
        self._stop_push.close(linger=0)
        self.handoff.close(linger=0)


#: IOPub messages of the child that nothing waits for and the kernel never passes on: it
#: says busy and echoes the code itself (the idle it does wait for).
_DROPPED = frozenset({"execute_input", "iopub_welcome", "shutdown_reply", "debug_event"})


def _never_relayed(frames: list[bytes]) -> bool:
    """Whether a message is one the session would only drop, read from its header alone
    (not verified: dropping is all it decides), so it costs no hand-over nor HMAC."""
    try:
        start = frames.index(b"<IDS|MSG>")
        kind = json.loads(frames[start + 2]).get("msg_type")
        if kind == "status":  # idle ends a request: only busy (and starting) go
            return bool(json.loads(frames[start + 5]).get("execution_state") != "idle")
    except (ValueError, IndexError, AttributeError):
        return False
    return kind in _DROPPED
