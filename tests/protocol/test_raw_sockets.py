"""The kernel on raw zmq sockets: what it refuses, and that it keeps answering afterwards."""

from __future__ import annotations

import json
import uuid

import pytest
import zmq
from jupyter_client.session import Session

from ciao.protocol.message import DELIM


@pytest.fixture
def wire(kernel, tmp_path):
    """Raw DEALERs on the kernel's shell and control sockets, with the kernel's key at hand."""
    km, kc = kernel
    ctx = zmq.Context.instance()
    sockets = {}
    for channel, port in (("shell", km.shell_port), ("control", km.control_port)):
        sockets[channel] = ctx.socket(zmq.DEALER)
        sockets[channel].linger = 0
        sockets[channel].connect(f"tcp://{km.ip}:{port}")
    session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme)
    yield Wire(sockets, session, tmp_path)
    for sock in sockets.values():
        sock.close()


class Wire:
    def __init__(self, sockets: dict[str, zmq.Socket], session: Session, tmp_path) -> None:
        self.sockets = sockets
        self.shell = sockets["shell"]
        self.session = session
        self.marker = tmp_path / "ran.txt"

    def marker_cell(self) -> str:
        """A cell whose replica appends a line to the marker file each time it runs."""
        return f"with open({str(self.marker)!r}, 'a') as f:\n    f.write('ran\\n')\n"

    def frames(self, msg_type: str, content: dict) -> list[bytes]:
        msg = self.session.msg(msg_type, content)
        return self.session.serialize(msg)

    def reply(self, timeout_ms: int, channel: str = "shell") -> dict | None:
        sock = self.sockets[channel]
        if not sock.poll(timeout_ms):
            return None
        frames = sock.recv_multipart()
        _, rest = self.session.feed_identities(frames)
        return self.session.deserialize(rest)

    def request(self, msg_type: str, content: dict, channel: str = "shell") -> dict:
        """Send a request and return its reply."""
        self.sockets[channel].send_multipart(self.frames(msg_type, content))
        reply = self.reply(60_000, channel)
        assert reply is not None, f"no reply to {msg_type} on {channel}"
        return reply

    def still_answers(self, channel: str = "shell") -> None:
        self.sockets[channel].send_multipart(self.frames("kernel_info_request", {}))
        reply = self.reply(10_000, channel)
        while reply is not None and reply["msg_type"] != "kernel_info_reply":
            reply = self.reply(10_000, channel)  # a reply to the malformed request came first
        assert reply is not None, f"the kernel stopped answering on {channel}"

    def answers_this_next(self) -> None:
        """The next reply on shell answers a kernel_info_request sent now. Shell requests
        from one socket are read, run and answered one at a time, in order: a reply to
        (and the run of) anything sent before would have come first."""
        self.shell.send_multipart(self.frames("kernel_info_request", {}))
        reply = self.reply(60_000)
        assert reply is not None, "the kernel stopped answering on shell"
        assert reply["msg_type"] == "kernel_info_reply", f"a reply came first: {reply}"

    def runs(self) -> int:
        return len(self.marker.read_text().splitlines()) if self.marker.exists() else 0


def test_a_message_with_a_bad_signature_is_not_executed(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell(), "silent": False})
    frames[frames.index(DELIM) + 1] = b"f" * 64
    wire.shell.send_multipart(frames)
    wire.answers_this_next()
    assert wire.runs() == 0


def test_a_message_without_signature_is_not_executed(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell()})
    frames[frames.index(DELIM) + 1] = b""
    wire.shell.send_multipart(frames)
    wire.answers_this_next()
    assert wire.runs() == 0


def test_a_replayed_message_is_executed_once(wire):
    frames = wire.frames("execute_request", {"code": wire.marker_cell()})
    wire.shell.send_multipart(frames)
    first = wire.reply(60_000)
    assert first is not None and first["content"]["status"] == "ok"
    wire.shell.send_multipart(frames)
    wire.answers_this_next()
    assert wire.runs() == 1


def signed(session: Session, parts: list[bytes]) -> list[bytes]:
    return [DELIM, session.sign(parts), *parts]


def raw(session: Session, header: bytes, content: bytes = b"{}") -> list[bytes]:
    """A signed request made of these raw header and content frames."""
    return signed(session, [header, b"{}", b"{}", content])


def header(msg_type: str = "kernel_info_request", extra: bytes = b"") -> bytes:
    """A fresh header; `extra` is raw JSON text added after its fields."""
    return b'{"msg_id": "%s", "msg_type": "%s"%s}' % (
        uuid.uuid4().hex.encode(),
        msg_type.encode(),
        extra,
    )


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
        pytest.param(lambda s: raw(s, header(extra=b', "date": NaN')), id="nan-in-header"),
        pytest.param(lambda s: raw(s, header(extra=b', "x": 1e999')), id="inf-in-header"),
        pytest.param(
            lambda s: raw(s, header(extra=b', "username": "\\ud800"')), id="lone-surrogate"
        ),
        pytest.param(
            lambda s: raw(s, header(), b'{"a": ' * 100_000 + b"1" + b"}" * 100_000),
            id="deep-nesting",
        ),
        pytest.param(lambda s: raw(s, header(), b"[1, 2]"), id="content-is-a-list"),
        pytest.param(lambda s: raw(s, header(), b'{"a": "\xff"}'), id="not-utf8"),
        pytest.param(
            lambda s: raw(s, header("history_request"), b'{"n": "abc"}'), id="history-n-abc"
        ),
    ],
)
@pytest.mark.parametrize("channel", ["shell", "control"])
def test_malformed_messages_are_logged_and_the_kernel_keeps_answering(wire, make_frames, channel):
    wire.sockets[channel].send_multipart(make_frames(wire.session))
    wire.still_answers(channel)


@pytest.mark.parametrize(
    "content, field",
    [
        ({"code": ["print(1)"]}, "code"),
        ({"silent": "no"}, "silent"),
        ({"store_history": 1}, "store_history"),
        ({"user_expressions": ["x"]}, "user_expressions"),
    ],
)
def test_an_execute_with_a_field_of_the_wrong_json_type_is_refused_and_runs_nothing(
    wire, content, field
):
    reply = wire.request("execute_request", {"code": wire.marker_cell(), **content})
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "BadRequest"
    assert field in reply["content"]["evalue"]
    assert wire.runs() == 0


def test_a_history_request_with_n_abc_is_answered_with_an_error_naming_n(wire):
    reply = wire.request("history_request", {"hist_access_type": "tail", "n": "abc"})
    assert reply["content"]["status"] == "error"
    assert "n must be int" in reply["content"]["evalue"]


def test_the_control_channel_runs_no_cell(wire):
    """A cell there would run on the control thread, beside the shell's."""
    reply = wire.request("execute_request", {"code": wire.marker_cell()}, channel="control")
    assert reply["content"]["status"] == "error"
    assert wire.runs() == 0
    wire.still_answers("control")
