"""Control while busy, interrupts, shutdown, restart, parent death, CurveZMQ."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.connect import write_connection_file
from kernel_client import execute, iopub_until_idle, running_kernel, stream_text

LONG_JOB = """%framework=pytorch
%master=1
%worker=2
import os, time
print("pid", os.getpid(), flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_for_pids(kc, msg_id: str, count: int, timeout: float = 30) -> list[int]:
    """Read IOPub until `count` replicas printed their pid."""
    pids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(pids) < count and time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            pids += [int(p) for p in re.findall(r"pid (\d+)", msg["content"]["text"])]
    assert len(pids) == count, f"only {pids} started"
    return pids


def test_control_is_answered_while_a_cell_runs():
    with running_kernel() as (km, kc):
        msg_id = kc.execute(LONG_JOB)
        wait_for_pids(kc, msg_id, 3)
        started = time.monotonic()
        request = kc.session.msg("kernel_info_request", {})
        kc.control_channel.send(request)
        reply = kc.get_control_msg(timeout=5)
        assert reply["msg_type"] == "kernel_info_reply"
        assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert time.monotonic() - started < 5
        km.interrupt_kernel()
        assert kc.get_shell_msg(timeout=30)["content"]["status"] == "error"


@pytest.mark.parametrize("how", ["message", "signal"])
def test_interrupt_stops_every_replica_and_ends_the_cell_with_an_error(how):
    with running_kernel() as (km, kc):
        msg_id = kc.execute(LONG_JOB)
        pids = wait_for_pids(kc, msg_id, 3)
        if how == "message":
            km.interrupt_kernel()
        else:
            km.signal_kernel(signal.SIGINT)
        reply = kc.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert "cancel" in reply["content"]["evalue"]
        iopub_until_idle(kc, msg_id)
        assert not [pid for pid in pids if alive(pid)]
        again, messages = execute(kc, "print('still here')")
        assert again["content"]["status"] == "ok"
        assert "still here" in stream_text(messages)


@pytest.mark.parametrize("how", ["message", "signal"])
def test_an_idle_kernel_survives_an_interrupt(how):
    with running_kernel() as (km, kc):
        if how == "message":
            km.interrupt_kernel()
        else:
            km.signal_kernel(signal.SIGINT)
        time.sleep(0.3)
        assert km.is_alive()
        assert execute(kc, "print(1)")[0]["content"]["status"] == "ok"


@pytest.mark.parametrize("channel", ["shell", "control"])
def test_shutdown_is_answered_on_its_channel_and_the_kernel_exits(channel):
    with running_kernel() as (km, kc):
        request = kc.session.msg("shutdown_request", {"restart": False})
        if channel == "shell":
            kc.shell_channel.send(request)
            reply = kc.get_shell_msg(timeout=10)
        else:
            kc.control_channel.send(request)
            reply = kc.get_control_msg(timeout=10)
        assert reply["msg_type"] == "shutdown_reply"
        assert reply["content"] == {"status": "ok", "restart": False}
        deadline = time.monotonic() + 5
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not km.is_alive()


def test_shutdown_while_a_job_runs_stops_its_replicas():
    with running_kernel() as (km, kc):
        msg_id = kc.execute(LONG_JOB)
        pids = wait_for_pids(kc, msg_id, 3)
        km.shutdown_kernel(now=False)
        assert not km.is_alive()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)]


def test_restart_gives_a_fresh_kernel_on_the_same_connection():
    with running_kernel() as (km, kc):
        execute(kc, "pass")
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=30)
        reply, messages = execute(kc, "print('after restart')")
        assert reply["content"]["execution_count"] == 1
        assert "after restart" in stream_text(messages)


def test_curve_encrypted_transport():
    with running_kernel(transport_encryption="required") as (km, kc):
        assert km.connection_file and "curve_secretkey" in Path(km.connection_file).read_text()
        reply, messages = execute(kc, "print('secret hello')")
        assert reply["content"]["status"] == "ok"
        assert "secret hello" in stream_text(messages)


def test_the_kernel_exits_when_its_parent_dies(tmp_path):
    connection_file, _ = write_connection_file(str(tmp_path / "k.json"), key=b"k")
    launcher = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'ciao', 'kernel', '-f', {connection_file!r}],"
        " env=env)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    kernel_pid = int(parent.stdout.readline())
    time.sleep(1.0)
    assert alive(kernel_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(kernel_pid)
