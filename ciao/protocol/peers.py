"""Which connection a message came in on, and ending one connection of a bound socket.

libzmq gives a bound socket no way to end one peer's connection, and keeps some state per
connection for as long as it lasts (an XPUB, every topic the peer ever subscribed to).
It does say which file descriptor a message was read from (the connection's metadata:
ZMQ_SRCFD, and Peer-Address). `shutdown()` on that descriptor ends the connection: libzmq
reads the end of the stream, ends the session and frees what it held for it.

A descriptor number is reused once libzmq closes it, and a peer that reconnects may even
get the same one and the same port, so a connection is known by its descriptor *and* its
socket's inode (which no other socket has while it exists), checked again right before it
is ended.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import zmq

T = TypeVar("T")


@dataclass(frozen=True)
class Peer:
    """One connection: libzmq's descriptor for it, its socket's (device, inode), and its
    local and remote addresses ((host, port) for TCP; the socket path and "" for IPC)."""

    fd: int
    inode: tuple[int, int]
    local: Any
    remote: Any

    @property
    def host(self) -> str:
        """The remote address as libzmq's Peer-Address gives it for TCP ("" for IPC)."""
        return str(self.remote[0]) if isinstance(self.remote, tuple) else ""

    def __str__(self) -> str:
        if isinstance(self.remote, tuple):
            return f"{self.remote[0]}:{self.remote[1]}"
        return f"a local peer (fd {self.fd})"


def source(frame: zmq.Frame) -> tuple[int | None, str | None]:
    """The descriptor and Peer-Address a frame was read from; None where libzmq has none
    (inproc, or a message libzmq made itself, such as the unsubscriptions it sends up when
    a connection ends)."""
    try:
        fd = int(frame.get(zmq.SRCFD))
        address = str(frame.get("Peer-Address"))
    except (zmq.ZMQError, ValueError, TypeError):
        return None, None
    return (fd, address) if fd >= 0 else (None, None)


def identify(fd: int) -> Peer | None:
    """The connection on descriptor `fd` now; None if it is no connected socket."""
    return _on_socket(fd, lambda sock: _peer(fd, sock))


class Identities:
    """`identify`, remembered per descriptor for as long as it holds the same socket: one
    fstat() a message instead of six calls (the IOPub thread must keep up with a flood)."""

    def __init__(self) -> None:
        self._known: dict[int, Peer] = {}

    def __call__(self, fd: int) -> Peer | None:
        try:
            inode = _inode(os.fstat(fd))
        except OSError:
            self._known.pop(fd, None)
            return None
        peer = self._known.get(fd)
        if peer is None or peer.inode != inode:
            peer = identify(fd)
            if peer is None:
                self._known.pop(fd, None)
            else:
                self._known[fd] = peer
        return peer


def _peer(fd: int, sock: socket.socket) -> Peer:
    inode = _inode(os.fstat(sock.fileno()))  # the duplicate's is the original's
    return Peer(fd, inode, sock.getsockname(), sock.getpeername())


def _inode(status: os.stat_result) -> tuple[int, int]:
    return (status.st_dev, status.st_ino)


def drop(peer: Peer) -> bool:
    """End the connection `peer`, if its descriptor still is that connection; whether it
    was ended."""

    def shutdown(sock: socket.socket) -> bool:
        if _peer(peer.fd, sock) != peer:
            return False  # libzmq closed it and the number went to another connection
        sock.shutdown(socket.SHUT_RDWR)
        return True

    return bool(_on_socket(peer.fd, shutdown))


def _on_socket(fd: int, action: Callable[[socket.socket], T]) -> T | None:
    """`action` on a duplicate of socket `fd` (closing the duplicate never closes libzmq's
    descriptor; shutdown() through it ends the connection itself); None if `fd` is closed,
    not a socket, or `action` failed."""
    try:
        duplicate = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return None
    with sock:
        try:
            return action(sock)
        except OSError:
            return None
