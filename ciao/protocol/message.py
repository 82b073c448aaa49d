"""Jupyter messages on the wire: (de)serialisation, HMAC signing, replay protection.

Modelled on jupyter_client's session.py: the signature is a hex HMAC over the four JSON
frames (header, parent_header, metadata, content) with the hash named by
`signature_scheme`; signatures are compared in constant time and remembered in a bounded
history so a replayed message is rejected.

Frames may be given as memoryviews of what zmq received: a message is verified before any
of it is copied or parsed, so an unsigned one costs nothing beyond reading it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DELIM = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.4"

#: A frame as received: bytes, or a memoryview of a zmq frame (not copied).
Buffer = bytes | memoryview


class ProtocolError(ValueError):
    """A message that cannot be accepted: unsigned, replayed, or malformed."""


@dataclass
class Message:
    header: dict[str, Any]
    parent_header: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    content: dict[str, Any] = field(default_factory=dict)
    buffers: list[bytes] = field(default_factory=list)
    identities: list[bytes] = field(default_factory=list)

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))


class Signer:
    """HMAC signatures per `signature_scheme`, with a bounded history of seen digests."""

    def __init__(self, key: bytes, scheme: str = "hmac-sha256", history_size: int = 2**16):
        if not scheme.startswith("hmac-"):
            raise ValueError(f"unsupported signature_scheme {scheme!r}: expected hmac-<hash>")
        digest = scheme[len("hmac-") :]
        if digest not in hashlib.algorithms_available:
            raise ValueError(f"unsupported signature_scheme {scheme!r}: no hash {digest!r}")
        self._key = key
        self._digest = digest
        self._hex_length = 2 * hashlib.new(digest).digest_size
        self._history: OrderedDict[bytes, None] = OrderedDict()
        self._history_size = history_size
        self._lock = threading.Lock()

    def sign(self, frames: Sequence[Buffer]) -> bytes:
        if not self._key:
            return b""
        mac = hmac.new(self._key, digestmod=self._digest)
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode("ascii")

    def verify(self, signature: Buffer, frames: Sequence[Buffer]) -> None:
        """Raise ProtocolError unless `signature` is right and was never seen before; one
        that cannot be a hex digest of this hash is refused before anything is hashed."""
        if not self._key:
            return
        if not signature:
            raise ProtocolError("unsigned message")
        if len(signature) != self._hex_length:
            raise ProtocolError("invalid signature")
        signature = bytes(signature)
        if not hmac.compare_digest(signature, self.sign(frames)):
            raise ProtocolError("invalid signature")
        with self._lock:
            if signature in self._history:
                raise ProtocolError("replayed message (signature already seen)")
            self._history[signature] = None
            while len(self._history) > self._history_size:
                self._history.popitem(last=False)


def reply_type(request_type: str) -> str:
    """`execute_request` -> `execute_reply`."""
    return request_type.rsplit("_", 1)[0] + "_reply"


def error_content(ename: str, evalue: str) -> dict[str, Any]:
    """A reply's content for a request refused or failed."""
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": []}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _dumps(obj: Any) -> bytes:
    text = json.dumps(obj, default=str, ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a client's "\ud800"): send it escaped
        return json.dumps(obj, default=str, allow_nan=False).encode("ascii")


def _no_constant(name: str) -> float:
    """NaN and Infinity are not JSON: accepted, they would make every echo of the header
    (parent_header of busy, reply, idle) fail to serialise."""
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would parse as inf
        raise ValueError(f"{text} is out of range")
    return value


def _loads(frame: Buffer, what: str) -> dict[str, Any]:
    try:
        value = json.loads(bytes(frame), parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ProtocolError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


class Codec:
    """Builds, signs, parses and verifies messages for one kernel session."""

    def __init__(self, signer: Signer, username: str | None = None):
        self.signer = signer
        self.session = uuid.uuid4().hex
        self.username = username or os.environ.get("USER", "ciao")

    def header(self, msg_type: str) -> dict[str, Any]:
        return {
            "msg_id": uuid.uuid4().hex,
            "session": self.session,
            "username": self.username,
            "date": utc_now(),
            "msg_type": msg_type,
            "version": PROTOCOL_VERSION,
        }

    def message(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Message | None = None,
        metadata: dict[str, Any] | None = None,
        identities: list[bytes] | None = None,
    ) -> Message:
        return Message(
            header=self.header(msg_type),
            parent_header=dict(parent.header) if parent else {},
            metadata=metadata or {},
            content=content,
            identities=list(identities or []),
        )

    def serialize(self, msg: Message) -> list[bytes]:
        parts = [
            _dumps(msg.header),
            _dumps(msg.parent_header),
            _dumps(msg.metadata),
            _dumps(msg.content),
        ]
        return [*msg.identities, DELIM, self.signer.sign(parts), *parts, *msg.buffers]

    def deserialize(self, frames: Sequence[Buffer]) -> Message:
        """Verify, then parse, a multipart message; ProtocolError says what was wrong."""
        split = next((i for i, frame in enumerate(frames) if frame == DELIM), None)
        if split is None:
            raise ProtocolError("no <IDS|MSG> delimiter")
        identities, rest = frames[:split], frames[split + 1 :]
        if len(rest) < 5:
            raise ProtocolError(f"expected at least 5 frames after the delimiter, got {len(rest)}")
        signature, parts, buffers = rest[0], rest[1:5], rest[5:]
        self.signer.verify(signature, parts)
        header = _loads(parts[0], "header")
        for key in ("msg_id", "msg_type"):
            if not isinstance(header.get(key), str) or not header[key]:
                raise ProtocolError(f"header has no {key}")
        return Message(
            header=header,
            parent_header=_loads(parts[1], "parent_header"),
            metadata=_loads(parts[2], "metadata"),
            content=_loads(parts[3], "content"),
            buffers=[bytes(buffer) for buffer in buffers],
            identities=[bytes(identity) for identity in identities],
        )
