"""The connection file a Jupyter launcher writes for the kernel (every field of it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class ConnectionFileError(ValueError):
    """The connection file is missing, not JSON, or lacks a field the kernel needs."""


@dataclass(frozen=True)
class ConnectionInfo:
    transport: str
    ip: str
    shell_port: int
    iopub_port: int
    stdin_port: int
    control_port: int
    hb_port: int
    key: bytes = b""
    signature_scheme: str = "hmac-sha256"
    kernel_name: str = ""
    curve_publickey: bytes | None = None
    curve_secretkey: bytes | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> ConnectionInfo:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConnectionFileError(f"cannot read connection file {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "connection info") -> ConnectionInfo:
        if not isinstance(data, dict):
            raise ConnectionFileError(f"{source}: expected a JSON object")
        try:
            ports = {f"{name}_port": int(data[f"{name}_port"]) for name in CHANNELS}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectionFileError(f"{source}: missing or bad port field {exc}") from exc
        curve_public = data.get("curve_publickey") or None
        curve_secret = data.get("curve_secretkey") or None
        if bool(curve_public) != bool(curve_secret):
            raise ConnectionFileError(
                f"{source}: curve_publickey and curve_secretkey must be given together"
            )
        return cls(
            transport=str(data.get("transport", "tcp")),
            ip=str(data.get("ip", "127.0.0.1")),
            key=str(data.get("key", "")).encode(),
            signature_scheme=str(data.get("signature_scheme", "hmac-sha256")),
            kernel_name=str(data.get("kernel_name", "")),
            curve_publickey=curve_public.encode() if curve_public else None,
            curve_secretkey=curve_secret.encode() if curve_secret else None,
            **ports,
        )

    @property
    def uses_curve(self) -> bool:
        return self.curve_secretkey is not None

    def url(self, channel: str) -> str:
        port = getattr(self, f"{channel}_port")
        if self.transport == "ipc":
            return f"ipc://{self.ip}-{port}"
        return f"{self.transport}://{self.ip}:{port}"
