"""Reading whole messages up to a bound, the byte-bounded shell queue, throttled warnings,
and telling one connection from another (and ending it) by its descriptor."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import pytest
import zmq

from ciao.protocol import peers
from ciao.protocol.bounds import (
    FRAME_OVERHEAD,
    RequestQueue,
    ThrottledLog,
    drain,
    read_bounded,
)
from ciao.protocol.message import Message


@pytest.fixture
def pair():
    """A PUSH connected to a PULL over inproc."""
    ctx = zmq.Context.instance()
    address = f"inproc://bounds-{uuid.uuid4().hex}"
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind(address)
    push.connect(address)
    yield push, pull
    push.close(linger=0)
    pull.close(linger=0)


def test_a_message_within_the_bound_is_read_whole_without_copies(pair):
    push, pull = pair
    push.send_multipart([b"a", b"bc", b"def"])
    frames, size = read_bounded(pull, 1024)
    assert [f.bytes for f in frames] == [b"a", b"bc", b"def"]
    assert size == 6 + 3 * FRAME_OVERHEAD


def test_a_message_over_the_bound_is_read_to_its_end_and_nothing_kept(pair):
    push, pull = pair
    push.send_multipart([b"x" * 600, b"y" * 600, b"z" * 600])
    push.send_multipart([b"next"])
    frames, size = read_bounded(pull, 1024)
    assert frames is None and size == 1800 + 3 * FRAME_OVERHEAD
    frames, _ = read_bounded(pull, 1024)  # the next message starts where it should
    assert [f.bytes for f in frames] == [b"next"]


def test_many_empty_frames_count_against_the_bound(pair):
    push, pull = pair
    push.send_multipart([b""] * 100)
    frames, _ = read_bounded(pull, 50 * FRAME_OVERHEAD)
    assert frames is None


def test_drain_drops_what_waits_a_frame_at_a_time(pair):
    push, pull = pair
    for _ in range(3):
        push.send_multipart([b"a", b"b"])
    assert pull.poll(1000)
    assert drain(pull) == 6
    assert not pull.poll(0)


def message(n: int) -> Message:
    return Message(header={"msg_id": str(n), "msg_type": "execute_request"})


def test_the_queue_keeps_order_and_refuses_what_would_take_it_over_its_bound():
    queue = RequestQueue(100)
    assert queue.put(message(1), 60) and queue.put(message(2), 40)
    assert not queue.put(message(3), 1)
    assert queue.queued_bytes == 100
    assert queue.get_nowait().msg_id == "1"
    assert queue.put(message(3), 60)
    assert [queue.get().msg_id, queue.get().msg_id] == ["2", "3"]
    assert queue.get_nowait() is None and queue.queued_bytes == 0


def test_closing_the_queue_wakes_a_waiting_get():
    queue = RequestQueue(100)
    got = []
    waiter = threading.Thread(target=lambda: got.append(queue.get()))
    waiter.start()
    queue.close()
    waiter.join(10)
    assert got == [None]
    queue.put(message(1), 1)
    assert queue.get_nowait() is None


def test_a_flood_of_warnings_is_one_line_a_second_that_counts_the_rest(caplog):
    throttled = ThrottledLog(logging.getLogger("ciao.test"), interval=3600)
    with caplog.at_level(logging.WARNING, logger="ciao.test"):
        for i in range(1000):
            throttled.warning("dropped message %d", i)
    assert [r.getMessage() for r in caplog.records] == ["dropped message 0"]
    throttled._last -= 7200  # an hour later
    with caplog.at_level(logging.WARNING, logger="ciao.test"):
        throttled.warning("dropped message %d", 1000)
    assert caplog.records[-1].getMessage() == "dropped message 1000 (999 more like it not logged)"


@pytest.fixture
def connection():
    """A TCP connection: (accepted side, connecting side)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    yield accepted, client
    accepted.close()
    client.close()


def test_a_descriptor_is_known_by_its_socket_and_both_addresses(connection):
    accepted, client = connection
    peer = peers.identify(accepted.fileno())
    assert peer.local == accepted.getsockname() and peer.remote == client.getsockname()
    assert peer.host == "127.0.0.1"
    assert peers.identify(client.fileno()) != peer


def test_dropping_a_peer_ends_its_connection(connection):
    accepted, client = connection
    peer = peers.identify(accepted.fileno())
    assert peers.drop(peer)
    client.settimeout(10)
    assert client.recv(1) == b""  # the end of the stream
    os.fstat(accepted.fileno())  # the descriptor itself stays open, its owner's to close


def test_a_reused_descriptor_is_not_taken_for_the_connection_that_had_it(connection, tmp_path):
    accepted, client = connection
    peer = peers.identify(accepted.fileno())
    fd = accepted.detach()
    socket.close(fd)
    with open(tmp_path / "file", "w") as reused:  # most likely gets the same number
        assert peers.identify(fd) is None or peers.identify(fd) != peer
        assert not peers.drop(peer)
        os.fstat(reused.fileno())  # the file that has the number now was left alone
    assert peers.identify(-1) is None
