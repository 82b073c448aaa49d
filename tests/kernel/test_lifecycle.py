"""Control while busy, interrupts and signals, shutdown, restart, parent death, CurveZMQ."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from kernel_client import execute, iopub_until_idle, running_kernel, stream_text

from ciao.kernel.core import CiaoKernel, install_signal_handlers
from ciao.protocol.connection import ConnectionInfo
from ciao.protocol.server import KernelServer

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
        request = kc.session.msg("kernel_info_request", {})
        kc.control_channel.send(request)
        reply = kc.get_control_msg(timeout=10)  # answered while the cell still runs
        assert reply["msg_type"] == "kernel_info_reply"
        assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]
        assert kc.shell_channel.msg_ready() is False  # the cell has not finished
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


def test_shutdown_delivers_the_control_threads_last_messages(tmp_path):
    """The shell loop returns as soon as shutdown is asked for; the control handler that
    asked may finish later. Its reply and output still go out, and no socket is closed
    while its thread may use it."""
    path, _ = write_connection_file(str(tmp_path / "k.json"), key=b"k")

    def dispatch(request):
        request.server.stop()
        time.sleep(0.5)  # the main thread is closing meanwhile
        request.publish("stream", {"name": "stdout", "text": "last words"})
        request.reply({"status": "ok", "restart": False})

    server = KernelServer(ConnectionInfo.from_file(path), dispatch)
    server.start_threads()
    kc = BlockingKernelClient(connection_file=path)
    kc.load_connection_file()
    kc.start_channels()
    try:
        assert kc.get_iopub_msg(timeout=10)["msg_type"] == "iopub_welcome"
        request = kc.session.msg("shutdown_request", {"restart": False})
        kc.control_channel.send(request)
        server.serve_shell()
        assert server.close()
        assert kc.get_control_msg(timeout=5)["msg_type"] == "shutdown_reply"
        kinds = [m["msg_type"] for m in iopub_until_idle(kc, request["header"]["msg_id"], 5)]
        assert kinds == ["status", "stream", "status"]
    finally:
        kc.stop_channels()


def test_a_signal_handler_never_waits_for_a_lock_the_interrupted_code_holds():
    """A handler runs on the main thread between two bytecodes, maybe inside the manager's
    `with lock`: were it to take that lock too, the kernel would hang for good."""

    class Manager:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.cancelled = threading.Event()

        def cancel(self) -> bool:
            with self.lock:
                self.cancelled.set()
            return False

    manager = Manager()
    kernel = CiaoKernel(SimpleNamespace(stop=lambda: None), manager=manager)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        install_signal_handlers(kernel)
        handler = signal.getsignal(signal.SIGINT)

        def interrupted_inside_the_lock() -> None:
            with manager.lock:
                handler(signal.SIGINT, None)

        thread = threading.Thread(target=interrupted_inside_the_lock, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the handler waited for the lock"
        assert manager.cancelled.wait(10), "the interrupt was lost"
    finally:
        for signum, previous_handler in previous.items():
            signal.signal(signum, previous_handler)


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


def launched(connection_file: str, through_a_wrapper: bool = False):
    """A launcher that starts the kernel with JPY_PARENT_PID set to itself, as jupyter_client
    does, directly or through a shell that does not exec it (as `conda run` does); the
    launcher and the pid of its child."""
    kernel = [sys.executable, "-m", "ciao", "kernel", "-f", connection_file]
    command = ["sh", "-c", '"$@"; exit 0', "sh", *kernel] if through_a_wrapper else kernel
    launcher = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, JPY_PARENT_PID=str(os.getpid()))\n"
        f"p = subprocess.Popen({command!r}, env=env)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    return parent, int(parent.stdout.readline())


def test_the_kernel_exits_when_its_parent_dies(tmp_path):
    connection_file, _ = write_connection_file(str(tmp_path / "k.json"), key=b"k")
    parent, kernel_pid = launched(connection_file)
    time.sleep(1.0)
    assert alive(kernel_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(kernel_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(kernel_pid)


def test_a_wrapper_between_launcher_and_kernel_is_no_reason_to_exit(tmp_path):
    connection_file, _ = write_connection_file(str(tmp_path / "k.json"), key=b"k")
    parent, wrapper = launched(connection_file, through_a_wrapper=True)
    kc = BlockingKernelClient(connection_file=connection_file)
    kc.load_connection_file()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        time.sleep(2.5)  # the watcher looks every second
        kc.kernel_info()
        assert kc.get_shell_msg(timeout=10)["msg_type"] == "kernel_info_reply"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(wrapper) and time.monotonic() < deadline:  # it ends with the kernel
            time.sleep(0.1)
        assert not alive(wrapper)
    finally:
        kc.stop_channels()
        parent.kill()


def test_an_unknown_log_level_does_not_stop_the_kernel_from_starting():
    with running_kernel(env={**os.environ, "CIAO_LOG_LEVEL": "chatty"}) as (km, kc):
        assert execute(kc, "pass")[0]["content"]["status"] == "ok"


def test_a_ciao_folder_beside_the_notebook_does_not_shadow_the_kernel(tmp_path):
    """`python -m` would import ./ciao first: a clone of Ciao beside the notebook (a
    `ciao/` package without what the kernel needs) must not stop the kernel, its local
    jobs' supervisors, or the %procs launcher."""
    shadow = tmp_path / "ciao"
    (shadow / "backend" / "local").mkdir(parents=True)
    for package in (shadow, shadow / "backend", shadow / "backend" / "local"):
        (package / "__init__.py").write_text("raise ImportError('the shadow was imported')\n")
    with running_kernel(cwd=str(tmp_path)) as (_, kc):
        reply, messages = execute(
            kc,
            "%framework=pytorch\n%master=1\n%procs=2\nimport os\nprint('rank', os.environ['RANK'])",
        )
    assert reply["content"]["status"] == "ok", reply["content"]
    text = stream_text(messages)
    assert "rank 0" in text and "rank 1" in text


def test_a_kernel_that_cannot_start_says_why_in_one_line(tmp_path):
    missing = tmp_path / "kernel-nothing.json"
    done = subprocess.run(
        [sys.executable, "-P", "-m", "ciao", "kernel", "-f", str(missing)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ciao kernel: cannot start:"), done.stderr
    assert str(missing) in lines[0]


def test_the_kernelspec_runs_the_kernel_unshadowed():
    from ciao.install import kernelspec

    argv = kernelspec()["argv"]
    assert argv[0] == sys.executable and argv[-3:] == ["kernel", "-f", "{connection_file}"]
    assert argv[1:4] == ["-P", "-m", "ciao"] if sys.version_info >= (3, 11) else argv[1] == "-c"


def test_composing_the_kernel_imports_nothing_heavy(tmp_path):
    """Fast start: the composition root builds every component without the kubernetes
    client, YAML or dateutil (they load when a cell needs them), and without the session's
    libraries (IPython, ipykernel, jupyter_client, ciao.session: the first session cell
    loads them)."""
    connection = tmp_path / "kernel-x.json"
    connection.write_text(
        '{"ip": "127.0.0.1", "transport": "tcp", "key": "k", "signature_scheme": "hmac-sha256",'
        ' "shell_port": 0, "iopub_port": 0, "stdin_port": 0, "control_port": 0, "hb_port": 0}'
    )
    code = (
        "import sys\nfrom ciao.app import compose\n"
        f"kernel, server = compose({str(connection)!r})\n"
        "heavy = [m for m in ('kubernetes', 'yaml', 'dateutil', 'IPython', 'ipykernel',"
        " 'jupyter_client', 'ciao.session') if m in sys.modules]\n"
        "assert heavy == [], heavy\nimport os\nos._exit(0)  # its sockets go with it\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
