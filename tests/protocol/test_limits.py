"""What an unsigned peer cannot do to the kernel's memory: huge messages, a flooded stdin,
huge subscription topics. And a kernel started without a key says so."""

from __future__ import annotations

import json
import time

import pytest
import zmq
from zmq_peers import connect, disconnections, peak_rss

from ciao.protocol.server import DEFAULT_MAX_MESSAGE_BYTES, MAX_TOPIC_BYTES

pytestmark = pytest.mark.timeout(180)

#: The kernel idles at ~30 MB; what a peer sends must never be held whole.
PEAK_RSS_BOUND = 100 * 1024 * 1024


def refused_each_time(km, port: int, frames: list[bytes], times: int) -> None:
    """Send `frames` `times` and wait until the kernel ended the connection once for each:
    libzmq does so on a frame over the socket's MAXMSGSIZE having read only its size, and
    the DEALER connects again (at once) for the next."""
    sock = connect(km, zmq.DEALER, port, watch=True, reconnect_ivl=1)
    for _ in range(times):
        sock.send_multipart(frames)
    ended = disconnections(sock, times, timeout_ms=30_000)
    sock.close()
    assert ended == times, f"the kernel ended {ended} of {times} connections"


def answers(kc) -> bool:
    kc.kernel_info()
    return kc.get_shell_msg(timeout=30)["msg_type"] == "kernel_info_reply"


def test_a_message_over_the_limit_is_refused_before_it_is_held(kernel):
    km, kc = kernel
    too_big = b"x" * (DEFAULT_MAX_MESSAGE_BYTES + 1024)
    for port in (km.control_port, km.shell_port):
        refused_each_time(km, port, [b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", too_big], 3)
    assert answers(kc)
    assert peak_rss(km) < PEAK_RSS_BOUND


def test_stdin_is_drained_so_nothing_piles_up_there(kernel):
    km, kc = kernel
    chunk = b"y" * (4 << 20)  # 50 of them: 200 MB in all
    refused_each_time(km, km.stdin_port, [b"<IDS|MSG>", b"", b"{}", b"{}", b"{}", chunk], 50)
    assert answers(kc)
    assert peak_rss(km) < PEAK_RSS_BOUND


def test_a_huge_subscription_topic_is_refused_and_a_normal_one_welcomed(kernel):
    km, _ = kernel
    sub = connect(km, zmq.SUB, km.iopub_port)
    sub.setsockopt(zmq.SUBSCRIBE, b"t" * (MAX_TOPIC_BYTES + 1))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    welcomed = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not welcomed:
        if sub.poll(500):
            frames = sub.recv_multipart()
            header = json.loads(frames[frames.index(b"<IDS|MSG>") + 2])
            if header["msg_type"] == "iopub_welcome":
                welcomed.append(json.loads(frames[-1])["subscription"])
    sub.close()
    assert welcomed == [""], "only the normal subscription is greeted"


def test_a_kernel_without_a_key_warns_in_its_banner(tmp_path):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="ciao")
    km.session.key = b""
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        kc.kernel_info()
        reply = kc.get_shell_msg(timeout=30)
        assert "connection key is empty" in reply["content"]["banner"]
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
