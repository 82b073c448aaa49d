"""Reading the connection file: every field, curve keys included."""

from __future__ import annotations

import json

import pytest
import zmq
from jupyter_client.connect import write_connection_file

from ciao.protocol.connection import ConnectionFileError, ConnectionInfo


def test_reads_a_file_written_by_jupyter_client(tmp_path):
    public, secret = zmq.curve_keypair()
    path, cfg = write_connection_file(
        str(tmp_path / "k.json"),
        key=b"secret-key",
        kernel_name="ciao",
        curve_publickey=public,
        curve_secretkey=secret,
    )
    info = ConnectionInfo.from_file(path)
    assert info.key == b"secret-key"
    assert info.kernel_name == "ciao"
    assert info.signature_scheme == "hmac-sha256"
    assert (info.shell_port, info.iopub_port, info.stdin_port) == (
        cfg["shell_port"],
        cfg["iopub_port"],
        cfg["stdin_port"],
    )
    assert (info.control_port, info.hb_port) == (cfg["control_port"], cfg["hb_port"])
    assert info.uses_curve
    assert (info.curve_publickey, info.curve_secretkey) == (public, secret)
    assert info.url("shell") == f"tcp://127.0.0.1:{cfg['shell_port']}"


def test_ipc_urls_use_the_ip_as_a_path_prefix():
    info = ConnectionInfo.from_dict(
        {
            "transport": "ipc",
            "ip": "/tmp/k",
            **{f"{c}_port": 1 for c in ("shell", "iopub", "stdin", "control", "hb")},
        }
    )
    assert info.url("hb") == "ipc:///tmp/k-1"
    assert not info.uses_curve


def test_a_missing_port_or_half_a_curve_pair_is_an_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"shell_port": 1}))
    with pytest.raises(ConnectionFileError, match="port"):
        ConnectionInfo.from_file(path)
    ports = {f"{c}_port": 1 for c in ("shell", "iopub", "stdin", "control", "hb")}
    with pytest.raises(ConnectionFileError, match="together"):
        ConnectionInfo.from_dict({**ports, "curve_publickey": "abc"})
    with pytest.raises(ConnectionFileError, match="cannot read"):
        ConnectionInfo.from_file(tmp_path / "missing.json")
