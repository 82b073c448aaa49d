"""Timestamps in the formats the Kubernetes API and the kubelet use."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ns() -> int:
    """Wall-clock nanoseconds: log lines and sinceTime are compared at this precision."""
    return time.time_ns()


def rfc3339(ns: int | None = None) -> str:
    """Seconds precision, as metav1.Time serialises (creationTimestamp, startedAt, ...)."""
    ns = now_ns() if ns is None else ns
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def rfc3339_micro(ns: int | None = None) -> str:
    """Microsecond precision, as metav1.MicroTime serialises (Event.eventTime)."""
    ns = now_ns() if ns is None else ns
    base = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns // 1000) % 1_000_000:06d}Z"


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano: trailing zeros of the fraction dropped, as the kubelet prints."""
    base = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return base.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def parse_rfc3339(text: str) -> int:
    """RFC 3339 (with or without fraction, Z or offset) to nanoseconds since the epoch."""
    text = text.strip()
    frac_ns = 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        for ch in rest:
            if ch.isdigit():
                digits += ch
            else:
                break
        tz = rest[len(digits) :]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        text = head + tz
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + frac_ns
