"""Fuzzing a running kernel on raw sockets: garbage, truncated, unsigned and mis-signed
requests (each asking to run code that leaves a mark). The kernel keeps answering and no
code from a message without a valid signature ever runs."""

from __future__ import annotations

import json
import uuid

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciao.protocol.message import DELIM

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def target(kernel, tmp_path_factory):
    marker = tmp_path_factory.mktemp("fuzz") / "ran"
    km, kc = kernel
    ctx = zmq.Context.instance()
    sockets = {}
    for channel, port in (("shell", km.shell_port), ("control", km.control_port)):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(f"tcp://{km.ip}:{port}")
        sockets[channel] = sock
    yield km, kc, sockets, marker
    for sock in sockets.values():
        sock.close()


def execute_parts(marker) -> list[bytes]:
    code = f"%backend=local\nopen({str(marker)!r}, 'a').write('ran')"
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": "execute_request",
        "session": "s",
        "username": "u",
        "version": "5.4",
        "date": "",
    }
    content = {"code": code, "silent": False}
    return [json.dumps(x).encode() for x in (header, {}, {}, content)]


signature = st.one_of(
    st.just(b""),
    st.binary(max_size=80),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(str.encode),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    channel=st.sampled_from(["shell", "control"]),
    kind=st.sampled_from(["garbage", "unsigned-execute", "truncated"]),
    signature=signature,
    junk=st.lists(st.binary(max_size=40), max_size=6),
)
def test_no_unsigned_code_runs_and_the_kernel_keeps_answering(
    target, channel, kind, signature, junk
):
    km, kc, sockets, marker = target
    if kind == "garbage":
        frames = junk or [b""]
    elif kind == "unsigned-execute":
        frames = [DELIM, signature, *execute_parts(marker), *junk]
    else:
        frames = [DELIM, signature, *execute_parts(marker)[: len(junk) % 4]]
    sockets[channel].send_multipart(frames)
    assert not marker.exists(), f"code ran from {frames!r}"


def test_after_the_fuzzing_the_kernel_still_answers_and_nothing_ran(target):
    km, kc, sockets, marker = target
    kc.kernel_info()
    assert kc.get_shell_msg(timeout=30)["msg_type"] == "kernel_info_reply"
    reply = kc.execute_interactive("1", timeout=60)
    assert reply["content"]["status"] == "ok"
    assert not marker.exists()
