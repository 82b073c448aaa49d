"""Fuzzing the wire: whatever frames arrive, the codec answers a Message only for a correctly
signed, never-seen message, and refuses everything else with a ProtocolError (never another
exception). Thousands of cases a run; `tests/protocol/test_fuzz_kernel.py` sends some of
them to a running kernel."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciao.protocol.message import DELIM, Codec, ProtocolError, Signer

KEY = b"fuzz-key"
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frame = st.binary(max_size=64) | st.sampled_from([DELIM, b"{}", b"", b"null", b"[]", b"{"])


def fresh_codec() -> Codec:
    return Codec(Signer(KEY))


@FUZZ
@given(st.lists(frame, max_size=10))
def test_arbitrary_frames_are_refused_with_a_protocol_error(frames):
    try:
        fresh_codec().deserialize(frames)
    except ProtocolError:
        return
    raise AssertionError(f"accepted unsigned frames {frames!r}")


@FUZZ
@given(
    header=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    content=json_values,
    msg_type=st.text(min_size=1, max_size=20),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(0, 10_000))),
)
def test_signed_messages_parse_or_are_refused_and_a_changed_byte_is_always_refused(
    header, content, msg_type, flip
):
    codec = fresh_codec()
    header = {**header, "msg_id": "m", "msg_type": msg_type}
    parts = [json.dumps(x, default=str).encode() for x in (header, {}, {}, content)]
    signature = codec.signer.sign(parts)
    if flip is not None:
        index, position = flip
        part = bytearray(parts[index] or b" ")
        part[position % len(part)] ^= 0x01
        parts[index] = bytes(part)
    try:
        message = codec.deserialize([DELIM, signature, *parts])
    except ProtocolError:
        return
    assert flip is None, "a changed byte was accepted"
    assert message.msg_type == msg_type
    assert isinstance(message.content, dict)  # anything else is refused, not passed on


finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(content=st.dictionaries(st.text(max_size=8), finite_json, max_size=4))
def test_a_replay_is_refused(content):
    codec = fresh_codec()
    frames = codec.serialize(codec.message("execute_request", content))
    codec.deserialize(frames)
    try:
        codec.deserialize(frames)
    except ProtocolError as exc:
        assert "replayed" in str(exc)
    else:
        raise AssertionError("a replayed message was accepted")
