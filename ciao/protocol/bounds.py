"""What the kernel holds of what peers send: whole messages read frame by frame up to a
bound, a queue for the main thread bounded in bytes, and warnings that a flood of bad
messages cannot turn into a flood of log lines.

libzmq caps each *frame* (MAXMSGSIZE), counts its receive queues in *messages* (RCVHWM),
and hands a multipart message over only once all of it has arrived. So the bounds here are
on what Ciao itself keeps: a message over its bound is read and let go frame by frame,
never gathered; a queue is counted in bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import zmq

from ciao.protocol.message import Codec, Message, ProtocolError

#: What a frame is counted as beyond its bytes: the objects that hold it. It keeps a
#: message of a million empty frames from passing as small.
FRAME_OVERHEAD = 256


def read_bounded(sock: zmq.Socket, limit: int) -> tuple[list[zmq.Frame] | None, int]:
    """Receive one whole message from `sock`, a frame at a time; its frames (zero-copy)
    and its size as counted against `limit`. Frames None: it was over `limit`, and every
    frame of it was read and let go as it came, so none of it is kept."""
    frames: list[zmq.Frame] | None = []
    size = 0
    while True:
        frame = sock.recv(copy=False)
        size += len(frame) + FRAME_OVERHEAD
        if frames is not None and size <= limit:
            frames.append(frame)
        else:
            frames = None  # over the bound: what was kept is let go, the rest is not kept
        if not frame.more:
            return frames, size


def read_verified(
    sock: zmq.Socket, limit: int, codec: Codec, dropped: ThrottledLog, channel: str
) -> tuple[Message | None, int]:
    """One whole message from `sock`, parsed and verified, and its size; None (said in
    `dropped`) for one over `limit` or not verified: its frames are let go at once."""
    frames, size = read_bounded(sock, limit)
    if frames is None:
        dropped.warning(
            "dropped a message of more than %d bytes on %s (at most %d: $CIAO_MAX_MESSAGE_BYTES)",
            size,
            channel,
            limit,
        )
        return None, size
    try:
        return codec.deserialize([frame.buffer for frame in frames]), size
    except ProtocolError as exc:
        dropped.warning("dropped a message on %s: %s", channel, exc)
        return None, size


def drain(sock: zmq.Socket, most: int = 1024) -> int:
    """Read and drop up to `most` frames waiting on `sock` (one at a time: nothing of a
    multipart message is gathered); how many there were."""
    count = 0
    while count < most and sock.poll(0):
        sock.recv(copy=False)
        count += 1
    return count


class RequestQueue:
    """Verified shell requests waiting for the main thread, in the order they came,
    bounded in bytes (what libzmq's RCVHWM, counted in messages, is not)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[tuple[Message, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._changed = threading.Condition()

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def put(self, msg: Message, size: int) -> bool:
        """Queue `msg` (counted as `size` bytes); False, and not queued, if that would
        take the queue over its bound."""
        with self._changed:
            if self._bytes + size > self.max_bytes:
                return False
            self._items.append((msg, size))
            self._bytes += size
            self._changed.notify()
        return True

    def get(self) -> Message | None:
        """The next request, waiting for one; None once the queue is closed."""
        with self._changed:
            while not self._items and not self._closed:
                self._changed.wait()
            return None if self._closed else self._pop()

    def get_nowait(self) -> Message | None:
        """The next request if one waits (and the queue is open); else None."""
        with self._changed:
            return self._pop() if self._items and not self._closed else None

    def close(self) -> None:
        """Make every `get` return None from now on (any thread)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _pop(self) -> Message:
        msg, size = self._items.popleft()
        self._bytes -= size
        return msg


class ThrottledLog:
    """A warning said at most once per `interval` seconds; the next one says how many
    were held back. Unsigned or oversized messages are logged, and a peer can send
    millions: the log must not be the next thing to grow without bound."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._log = logger
        self._interval = interval
        self._last = -interval
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, fmt: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        if held:
            fmt += f" ({held} more like it not logged)"
        self._log.warning(fmt, *args)
