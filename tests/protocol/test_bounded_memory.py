"""Memory no unauthenticated peer can grow past a fixed bound (issue 19, round two).

Each test starts a fresh kernel and reads its peak RSS (VmHWM) before and after the
attack, so an earlier test's peak cannot hide this one's growth. The attacks are those of
the issue, through the kernel's real sockets: one message of four 50 MB frames; unsigned
messages sent while a cell runs; 20,000 IOPub subscriptions; heartbeat pings whose echoes
are never read. And the two bounds no attack needs: signed requests queue up to a bound,
then are answered "busy"; under CurveZMQ a peer without the key cannot send at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from jupyter_client.session import Session
from kernel_client import running_kernel, streamed_until
from zmq_peers import connect, disconnections, peak_rss

from ciao.protocol.message import DELIM
from ciao.protocol.server import DEFAULT_MAX_MESSAGE_BYTES, MAX_TOPIC_BYTES

pytestmark = pytest.mark.timeout(300)

#: Peak RSS the kernel may gain from any one attack.
GROWTH_BOUND = 64 * 1024 * 1024
MB = 1_000_000


@pytest.fixture
def kernel() -> Iterator:
    """A fresh kernel per test: its VmHWM is this test's alone."""
    with running_kernel() as (km, kc):
        yield km, kc


def growth_mb(km, before: int) -> float:
    return (peak_rss(km) - before) / MB


def signed_request(session: Session, msg_type: str, content: dict | None = None) -> list[bytes]:
    return session.serialize(session.msg(msg_type, content or {}))


def reply_to(sock: zmq.Socket, session: Session, timeout_ms: int = 120_000) -> dict:
    """The next message on `sock` (a DEALER on shell), parsed."""
    assert sock.poll(timeout_ms), "no reply"
    _, rest = session.feed_identities(sock.recv_multipart())
    return session.deserialize(rest)


def unsigned(payload: bytes) -> list[bytes]:
    return [DELIM, b"", b"{}", b"{}", b"{}", b"{}", payload]


# ---- shell: whole messages, and messages sent while a cell runs --------------------------


def test_one_unsigned_message_of_four_50_mb_frames_is_never_held(kernel):
    km, kc = kernel
    before = peak_rss(km)
    sock = connect(km, zmq.DEALER, km.shell_port)
    frame = b"x" * (50 * MB)
    sock.send_multipart([DELIM, b"", b"{}", b"{}", b"{}", b"{}", frame, frame, frame, frame])
    sock.send_multipart(signed_request(kc.session, "kernel_info_request"))
    assert reply_to(sock, kc.session)["msg_type"] == "kernel_info_reply"
    sock.close()
    assert growth_mb(km, before) <= GROWTH_BOUND / MB


def blocked_cell(kc, gate: Path) -> str:
    """Start a cell whose replica waits on the FIFO `gate`; its msg_id, once it waits."""
    os.mkfifo(gate)
    msg_id = kc.execute(f"print('waiting', flush=True)\nopen({str(gate)!r}).read()")
    assert "waiting" in streamed_until(kc, msg_id, "waiting", timeout=120)
    return msg_id


def release(kc, gate: Path, msg_id: str) -> dict:
    """Let the cell end; its execute_reply."""
    with open(gate, "w") as fifo:
        fifo.write("go")
    reply = kc.get_shell_msg(timeout=120)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=120)
    return reply


def sent_in_full(km, messages: list[list[bytes]]) -> None:
    """Send `messages` to shell from a context of their own, and return once every byte
    has been written to the connection (terminating the context waits for that)."""
    ctx = zmq.Context()
    sock = connect(km, zmq.DEALER, km.shell_port, ctx=ctx, sndhwm=0)
    for frames in messages:
        sock.send_multipart(frames)
    sock.close(linger=-1)
    ctx.term()


@pytest.mark.parametrize(
    "size",
    [60 * MB, DEFAULT_MAX_MESSAGE_BYTES - (1 << 20)],
    ids=["60MB-each", "just-under-the-bound"],
)
def test_unsigned_messages_sent_while_a_cell_runs_are_dropped_as_they_come(kernel, tmp_path, size):
    km, kc = kernel
    msg_id = blocked_cell(kc, tmp_path / "gate")
    before = peak_rss(km)
    sent_in_full(km, [unsigned(b"u" * size) for _ in range(8)])
    assert release(kc, tmp_path / "gate", msg_id)["content"]["status"] == "ok"
    kc.kernel_info()
    assert kc.get_shell_msg(timeout=60)["msg_type"] == "kernel_info_reply"
    assert growth_mb(km, before) <= GROWTH_BOUND / MB


def test_signed_requests_queue_up_to_a_bound_then_get_a_busy_error_in_order(tmp_path):
    """The queue for the main thread holds 4 messages at the bound: with a 64 KiB bound,
    60 KB requests beyond the fourth are answered at once, while the cell still runs,
    with a KernelBusy error; the queued ones then run in the order they came."""
    env = dict(os.environ, CIAO_MAX_MESSAGE_BYTES=str(64 * 1024))
    with running_kernel(env=env) as (km, kc):
        msg_id = blocked_cell(kc, tmp_path / "gate")
        padding = "#" * 60_000
        sent = [kc.execute(f"print({i})\n{padding}", silent=True) for i in range(10)]
        busy = []
        while len(busy) < 6:
            reply = kc.get_shell_msg(timeout=60)
            assert reply["parent_header"]["msg_id"] in sent, "answered before the cell ended"
            busy.append(reply)
        assert {r["content"]["ename"] for r in busy} == {"KernelBusy"}
        assert "busy" in busy[0]["content"]["evalue"]
        refused = {r["parent_header"]["msg_id"] for r in busy}
        assert release(kc, tmp_path / "gate", msg_id)["content"]["status"] == "ok"
        ran = [kc.get_shell_msg(timeout=120) for _ in range(4)]
        assert [r["parent_header"]["msg_id"] for r in ran] == [m for m in sent if m not in refused]
        assert {r["content"]["status"] for r in ran} == {"ok"}


# ---- IOPub: subscriptions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic_bytes",
    [256, MAX_TOPIC_BYTES - 16],
    ids=["256-byte-topics", "short-topics"],
)
def test_twenty_thousand_subscriptions_cost_a_bounded_amount(kernel, topic_bytes):
    """20,000 topics (5 MB sent at 256 bytes each); the kernel ends the connection (libzmq,
    for a topic over the frame cap; the kernel, once it holds more than its share), and
    again each time the peer reconnects and sends them all again."""
    km, _ = kernel
    before = peak_rss(km)
    ctx = zmq.Context()
    sub = connect(km, zmq.SUB, km.iopub_port, ctx=ctx, watch=True, sndhwm=0)
    for _ in range(20_000):
        sub.setsockopt(zmq.SUBSCRIBE, os.urandom(topic_bytes).hex().encode()[:topic_bytes])
    dropped = disconnections(sub, 3, timeout_ms=30_000)
    sub.close()
    ctx.term()
    assert growth_mb(km, before) <= GROWTH_BOUND / MB
    assert dropped == 3
    assert welcomed(km), "a normal subscriber is still greeted"


def welcomed(km) -> bool:
    """A SUB subscribing to b"" (as Jupyter clients do) is sent its iopub_welcome."""
    sub = connect(km, zmq.SUB, km.iopub_port)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        while sub.poll(30_000):
            frames = sub.recv_multipart()
            if b"iopub_welcome" in frames[frames.index(DELIM) + 2]:
                return True
        return False
    finally:
        sub.close()


def test_subscribing_and_unsubscribing_within_the_bound_is_never_dropped(kernel):
    """Unsubscriptions are counted: a peer that holds few topics at a time keeps its
    connection however many it has had."""
    km, _ = kernel
    sub = connect(km, zmq.SUB, km.iopub_port, watch=True)
    for round_ in range(50):
        topics = [f"kernel.{round_}.{i}".encode() for i in range(8)]
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        for topic in topics:
            sub.setsockopt(zmq.UNSUBSCRIBE, topic)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    greeted = False
    while not greeted and sub.poll(30_000):
        frames = sub.recv_multipart()
        greeted = b'"subscription": ""' in frames[-1]
    assert greeted
    assert disconnections(sub, 1, timeout_ms=0) == 0, "the connection was dropped"
    sub.close()


# ---- heartbeat -----------------------------------------------------------------------------


def test_heartbeat_pings_whose_echoes_are_never_read_cost_a_bounded_amount(kernel):
    """500 pings of 1 MB (framed as a REQ frames them), their echoes never read; then a
    small one, whose echo says the kernel has been through them all."""
    km, _ = kernel
    before = peak_rss(km)
    sock = connect(km, zmq.DEALER, km.hb_port, reconnect_ivl=1, sndhwm=0, rcvhwm=1, rcvbuf=4096)
    ping = b"p" * MB
    for _ in range(500):
        sock.send_multipart([b"", ping])
    assert echoed_at_last(sock), "the heartbeat stopped echoing"
    sock.close()
    assert growth_mb(km, before) <= GROWTH_BOUND / MB


def echoed_at_last(sock: zmq.Socket, tries: int = 60) -> bool:
    """Send b"last" until it comes back, reading past what comes before it. (A ping the
    kernel refuses ends the connection, and what the peer had already written after it
    on that connection is lost with it: so b"last" may need sending again.)"""
    for _ in range(tries):
        sock.send_multipart([b"", b"last"])
        while sock.poll(2_000):
            if sock.recv_multipart()[-1] == b"last":
                return True
    return False


def test_a_flood_of_small_pings_never_read_does_not_stop_the_heartbeat(kernel):
    """Pings under the size cap, from a peer that never reads its echoes: what waits for
    it is bounded (the rest is dropped) and a well-behaved client is still echoed."""
    km, _ = kernel
    before = peak_rss(km)
    flood = connect(km, zmq.DEALER, km.hb_port, sndhwm=0)
    ping = [b"", b"f" * 900]
    sender = threading.Thread(target=lambda: [flood.send_multipart(ping) for _ in range(100_000)])
    sender.start()
    client = connect(km, zmq.REQ, km.hb_port)  # what jupyter_client's HBChannel is
    for _ in range(3):
        client.send(b"ping")
        assert client.poll(30_000), "the heartbeat stopped echoing"
        assert client.recv() == b"ping"
    sender.join()
    client.send(b"after")
    assert client.poll(60_000) and client.recv() == b"after"
    client.close()
    flood.close()
    assert growth_mb(km, before) <= GROWTH_BOUND / MB


def test_a_ping_is_echoed_whole_and_one_over_the_bound_is_not(kernel):
    km, _ = kernel
    sock = connect(km, zmq.DEALER, km.hb_port)
    sock.send_multipart([b"", b"p" * 900])
    assert sock.poll(30_000) and sock.recv_multipart() == [b"", b"p" * 900]
    sock.send_multipart([b"", *[b"q" * 900] * 10])  # 9 KB in all
    sock.send_multipart([b"", b"after"])
    assert sock.poll(30_000) and sock.recv_multipart() == [b"", b"after"]
    sock.close()


# ---- CurveZMQ: nothing from a peer without the key -----------------------------------------


def test_under_curve_a_peer_without_the_key_cannot_make_the_kernel_hold_anything():
    """A message of 64 frames of 1 MB each is under every per-frame cap, and libzmq
    assembles a message whole before handing over its first frame: only authenticating
    the peer first bounds it. With CurveZMQ (the connection file has keys) the peer's
    handshake fails and the kernel holds none of it."""
    with running_kernel(transport_encryption="required") as (km, _):
        before = peak_rss(km)
        sock = connect(km, zmq.DEALER, km.shell_port, watch=True)  # it retries, as peers do
        frame = b"c" * MB
        sock.send_multipart([DELIM, b"", *[frame] * 64])
        assert disconnections(sock, 1) == 1, "the kernel kept talking to it"
        sock.close()
        assert growth_mb(km, before) <= 8
