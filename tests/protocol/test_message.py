"""Signing, verification and replay protection of wire messages."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from jupyter_client.session import Session

from ciao.protocol.message import DELIM, Codec, Message, ProtocolError, Signer

KEY = b"0123456789abcdef"


def codec(key: bytes = KEY, scheme: str = "hmac-sha256") -> Codec:
    return Codec(Signer(key, scheme))


def test_signature_is_hex_hmac_over_the_four_json_frames():
    c = codec()
    frames = c.serialize(c.message("status", {"execution_state": "idle"}))
    signature, parts = frames[1], frames[2:6]
    expected = hmac.new(KEY, b"".join(parts), hashlib.sha256).hexdigest().encode()
    assert frames[0] == DELIM
    assert signature == expected


def test_the_hash_follows_signature_scheme():
    c = codec(scheme="hmac-sha512")
    frames = c.serialize(c.message("status", {}))
    assert frames[1] == hmac.new(KEY, b"".join(frames[2:6]), hashlib.sha512).hexdigest().encode()


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="signature_scheme"):
        Signer(KEY, "md5-plain")
    with pytest.raises(ValueError, match="no hash"):
        Signer(KEY, "hmac-nosuchhash")


def test_header_has_every_field_and_version_5_4():
    header = codec().header("execute_reply")
    assert set(header) == {"msg_id", "session", "username", "date", "msg_type", "version"}
    assert header["version"] == "5.4"


def test_jupyter_client_accepts_what_we_sign_and_we_accept_what_it_signs():
    ours = codec()
    theirs = Session(key=KEY, signature_scheme="hmac-sha256")
    frames = ours.serialize(ours.message("kernel_info_reply", {"status": "ok"}))
    idents, rest = theirs.feed_identities(frames)
    assert theirs.deserialize(rest)["content"] == {"status": "ok"}

    sent = theirs.msg("execute_request", {"code": "1"})
    wire = theirs.serialize(sent, ident=[b"client"])
    msg = ours.deserialize(wire)
    assert msg.msg_type == "execute_request"
    assert msg.identities == [b"client"]
    assert msg.content == {"code": "1"}


def test_bad_missing_and_replayed_signatures_are_rejected():
    sender, receiver = codec(), codec()
    frames = sender.serialize(sender.message("execute_request", {"code": "x"}))
    forged = list(frames)
    forged[1] = b"0" * 64
    with pytest.raises(ProtocolError, match="invalid signature"):
        receiver.deserialize(forged)
    unsigned = list(frames)
    unsigned[1] = b""
    with pytest.raises(ProtocolError, match="unsigned"):
        receiver.deserialize(unsigned)
    receiver.deserialize(frames)
    with pytest.raises(ProtocolError, match="replayed"):
        receiver.deserialize(frames)


def test_a_tampered_content_frame_fails_verification():
    c = codec()
    frames = c.serialize(c.message("execute_request", {"code": "print(1)"}))
    frames[5] = json.dumps({"code": "print(2)"}).encode()
    with pytest.raises(ProtocolError, match="invalid signature"):
        codec().deserialize(frames)


def test_digest_history_is_bounded_oldest_first():
    signer = Signer(KEY, history_size=3)
    c = Codec(signer)
    messages = [c.serialize(c.message("x", {"i": i})) for i in range(5)]
    for frames in messages:
        c.deserialize(frames)
    assert len(signer._history) == 3
    c.deserialize(messages[0])  # forgotten: the history only keeps the newest three
    with pytest.raises(ProtocolError, match="replayed"):
        c.deserialize(messages[4])


def test_empty_key_means_no_signature_and_no_check():
    c = codec(key=b"")
    frames = c.serialize(c.message("status", {}))
    assert frames[1] == b""
    assert c.deserialize(frames).msg_type == "status"


@pytest.mark.parametrize(
    "frames, problem",
    [
        ([b"garbage"], "delimiter"),
        ([DELIM, b"sig", b"{}"], "at least 5 frames"),
    ],
)
def test_malformed_frames_are_protocol_errors(frames, problem):
    with pytest.raises(ProtocolError, match=problem):
        codec(key=b"").deserialize(frames)


def test_bad_json_and_missing_header_fields_are_protocol_errors():
    c = codec(key=b"")
    with pytest.raises(ProtocolError, match="header is not JSON"):
        c.deserialize([DELIM, b"", b"{nope", b"{}", b"{}", b"{}"])
    with pytest.raises(ProtocolError, match="content is not a JSON object"):
        c.deserialize([DELIM, b"", json.dumps(c.header("x")).encode(), b"{}", b"{}", b"[1]"])
    with pytest.raises(ProtocolError, match="no msg_type"):
        c.deserialize([DELIM, b"", b'{"msg_id": "1"}', b"{}", b"{}", b"{}"])


def test_buffers_follow_the_content_unsigned():
    c = codec()
    msg = c.message("comm_msg", {})
    msg.buffers = [b"\x00\x01"]
    parsed = codec().deserialize(c.serialize(msg))
    assert isinstance(parsed, Message)
    assert parsed.buffers == [b"\x00\x01"]


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"1e999"])
def test_numbers_json_has_not_are_protocol_errors(number):
    """Accepted, they would make every echo of the header (busy, reply, idle) unsendable."""
    c = codec(key=b"")
    header = b'{"msg_id": "1", "msg_type": "kernel_info_request", "date": ' + number + b"}"
    with pytest.raises(ProtocolError, match="header is not JSON"):
        c.deserialize([DELIM, b"", header, b"{}", b"{}", b"{}"])


def test_absurdly_deep_nesting_is_a_protocol_error():
    c = codec(key=b"")
    deep = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    with pytest.raises(ProtocolError, match="content is not JSON"):
        c.deserialize([DELIM, b"", json.dumps(c.header("x")).encode(), b"{}", b"{}", deep])


def test_a_lone_surrogate_from_a_client_is_echoed_escaped():
    ours = codec()
    theirs = Session(key=KEY, signature_scheme="hmac-sha256")
    header = json.dumps({"msg_id": "\ud800", "msg_type": "kernel_info_request"}).encode()
    request = ours.deserialize(
        [DELIM, ours.signer.sign([header, b"{}", b"{}", b"{}"]), header, b"{}", b"{}", b"{}"]
    )
    frames = ours.serialize(ours.message("kernel_info_reply", {"status": "ok"}, request))
    _, rest = theirs.feed_identities(frames)
    assert theirs.deserialize(rest)["parent_header"]["msg_id"] == "\ud800"


class Untouchable(list):
    """Frames that fail the test if anything reads them."""

    def __iter__(self):
        raise AssertionError("the frames were read")


def test_a_signature_that_cannot_be_a_digest_is_refused_before_anything_is_hashed():
    signer = Signer(KEY)
    for signature in (b"f" * 63, b"f" * 65, b"x" * (1 << 20)):
        with pytest.raises(ProtocolError, match="invalid signature"):
            signer.verify(signature, Untouchable([b"{}"] * 4))


def test_frames_given_as_memoryviews_are_verified_and_parsed_like_bytes():
    c = codec()
    frames = c.serialize(c.message("kernel_info_request", {"a": 1}, identities=[b"id"]))
    msg = c.deserialize([memoryview(frame) for frame in frames])
    assert msg.content == {"a": 1} and msg.identities == [b"id"]
    assert isinstance(msg.identities[0], bytes)
