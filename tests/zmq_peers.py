"""Raw zmq peers of the kernel under test (no jupyter_client in between): sockets on its
ports, the times the kernel ended their connections, and the kernel's peak memory."""

from __future__ import annotations

import re
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

#: The monitor socket of each socket `connect` was asked to watch.
MONITORS: dict[zmq.Socket, zmq.Socket] = {}


def peak_rss(km) -> int:
    """The kernel process's peak resident memory (VmHWM), in bytes."""
    status = Path(f"/proc/{km.provisioner.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def connect(
    km, kind: int, port: int, ctx: zmq.Context | None = None, watch: bool = False, **options
) -> zmq.Socket:
    """A socket connected to the kernel's `port`; with `watch`, its disconnections are
    recorded from before it connects (see `disconnections`)."""
    sock = (ctx or zmq.Context.instance()).socket(kind)
    sock.linger = 0
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)
    if watch:
        MONITORS[sock] = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(f"tcp://{km.ip}:{port}")
    return sock


def disconnections(sock: zmq.Socket, count: int, timeout_ms: int = 60_000) -> int:
    """Wait until `sock` (watched by `connect`) was disconnected `count` times, or
    `timeout_ms` passed without an event; how many times it was. `sock` is polled too
    (what comes is dropped), as a peer that goes on using it: libzmq reconnects a socket,
    and a SUB sends its subscriptions again, only as its own thread touches it."""
    monitor = MONITORS.pop(sock)
    poller = zmq.Poller()
    poller.register(monitor, zmq.POLLIN)
    poller.register(sock, zmq.POLLIN)
    seen = 0
    try:
        while seen < count:
            ready = dict(poller.poll(timeout_ms))
            if not ready:
                break
            if sock in ready:
                sock.recv_multipart()
            if monitor in ready and recv_monitor_message(monitor)["event"] == (
                zmq.EVENT_DISCONNECTED
            ):
                seen += 1
    finally:
        sock.disable_monitor()
        monitor.close()
    return seen
