"""The kernel on raw zmq sockets: what it refuses, and that it keeps answering afterwards."""

from __future__ import annotations

import json
import uuid

import pytest
import zmq
from jupyter_client.session import Session
from kernel_client import running_kernel

from ciao.protocol.message import DELIM


@pytest.fixture(scope="module")
def kernel():
    with running_kernel() as (km, kc):
        yield km, kc


@pytest.fixture
def wire(kernel, tmp_path):
    """A raw DEALER on the kernel's shell socket, with the kernel's key at hand."""
    km, kc = kernel
    ctx = zmq.Context.instance()
    shell = ctx.socket(zmq.DEALER)
    shell.linger = 0
    shell.connect(f"tcp://{km.ip}:{km.shell_port}")
    session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme)
    yield Wire(shell, session, tmp_path)
    shell.close()


class Wire:
    def __init__(self, shell: zmq.Socket, session: Session, tmp_path) -> None:
        self.shell = shell
        self.session = session
        self.marker = tmp_path / "ran.txt"

    def marker_cell(self) -> str:
        """A cell whose replica appends a line to the marker file each time it runs."""
        return f"with open({str(self.marker)!r}, 'a') as f:\n    f.write('ran\\n')\n"

    def frames(self, msg_type: str, content: dict) -> list[bytes]:
        msg = self.session.msg(msg_type, content)
        return self.session.serialize(msg)

    def reply(self, timeout_ms: int) -> dict | None:
        if not self.shell.poll(timeout_ms):
            return None
        frames = self.shell.recv_multipart()
        _, rest = self.session.feed_identities(frames)
        return self.session.deserialize(rest)

    def still_answers(self) -> None:
        self.shell.send_multipart(self.frames("kernel_info_request", {}))
        reply = self.reply(10_000)
        assert reply is not None and reply["msg_type"] == "kernel_info_reply"

    def runs(self) -> int:
        return len(self.marker.read_text().splitlines()) if self.marker.exists() else 0


def test_a_message_with_a_bad_signature_is_not_executed(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell(), "silent": False})
    frames[frames.index(DELIM) + 1] = b"f" * 64
    wire.shell.send_multipart(frames)
    assert wire.reply(2000) is None
    wire.still_answers()
    assert wire.runs() == 0


def test_a_message_without_signature_is_not_executed(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell()})
    frames[frames.index(DELIM) + 1] = b""
    wire.shell.send_multipart(frames)
    assert wire.reply(2000) is None
    wire.still_answers()
    assert wire.runs() == 0


def test_a_replayed_message_is_executed_once(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell()})
    wire.shell.send_multipart(frames)
    first = wire.reply(60_000)
    assert first is not None and first["content"]["status"] == "ok"
    wire.shell.send_multipart(frames)
    assert wire.reply(2000) is None
    wire.still_answers()
    assert wire.runs() == 1


def signed(session: Session, parts: list[bytes]) -> list[bytes]:
    return [DELIM, session.sign(parts), *parts]


@pytest.mark.parametrize(
    "make_frames",
    [
        pytest.param(lambda s: [b"garbage"], id="garbage"),
        pytest.param(lambda s: [b"a", b"b", b"c"], id="no-delimiter"),
        pytest.param(lambda s: [DELIM, b"sig"], id="too-few-frames"),
        pytest.param(
            lambda s: signed(s, [b"{not json", b"{}", b"{}", b"{}"]), id="bad-json-header"
        ),
        pytest.param(
            lambda s: signed(
                s,
                [
                    json.dumps(s.msg_header("execute_request"), default=str).encode(),
                    b"{}",
                    b"{}",
                ],
            ),
            id="missing-content-frame",
        ),
        pytest.param(
            lambda s: signed(
                s,
                [
                    json.dumps(
                        {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request"}
                    ).encode(),
                    b"{}",
                    b"{}",
                    b"{}",
                ],
            ),
            id="content-without-code",
        ),
        pytest.param(
            lambda s: signed(
                s,
                [
                    json.dumps(
                        {"msg_id": uuid.uuid4().hex, "msg_type": "complete_request"}
                    ).encode(),
                    b"{}",
                    b"{}",
                    json.dumps({"code": 5, "cursor_pos": "x"}).encode(),
                ],
            ),
            id="wrong-field-types",
        ),
    ],
)
def test_malformed_messages_are_logged_and_the_kernel_keeps_answering(wire, make_frames):
    wire.shell.send_multipart(make_frames(wire.session))
    wire.reply(500)  # a well-formed but empty request may be answered; nothing else is
    wire.still_answers()
