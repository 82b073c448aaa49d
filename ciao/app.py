"""The kernel process: wire the server and the kernel, serve until shutdown, clean up."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ciao.kernel.core import CiaoKernel
    from ciao.protocol.server import KernelServer

log = logging.getLogger("ciao")


def run_kernel(connection_file: str) -> int:
    try:
        kernel, server = start_kernel(connection_file)
    except Exception as exc:  # before serving: one line, no traceback, in the server's log
        print(f"ciao kernel: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        server.serve_shell()
    finally:
        _shutdown(kernel, server)
    return 0


def compose(connection_file: str) -> tuple[CiaoKernel, KernelServer]:
    """The composition root: every component built once, here (as the Go kernel's run.go
    did): the config loader and the registry of S2I providers and backends, the Manager
    over them, the server on the connection file's sockets, and the kernel between."""
    from ciao.config import load_config
    from ciao.kernel.core import CiaoKernel
    from ciao.manager import Manager, interpreter_for
    from ciao.protocol.connection import ConnectionInfo
    from ciao.protocol.server import KernelServer
    from ciao.registry import Registry

    registry = Registry(environ=job_environment(os.environ))
    manager = Manager(load_config, registry, interpreter_for)
    server = KernelServer(ConnectionInfo.from_file(connection_file), dispatch=lambda r: None)
    kernel = CiaoKernel(server, manager, kernel_id=_kernel_id(connection_file))
    server.dispatch = kernel.dispatch
    return kernel, server


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What a job inherits of the kernel's environment: all but Jupyter's `JPY_*`
    variables, which describe this kernel (its launcher, its session), not the job."""
    return {key: value for key, value in environ.items() if not key.startswith("JPY_")}


def start_kernel(connection_file: str) -> tuple[CiaoKernel, KernelServer]:
    """The kernel wired to its sockets, its threads started and `starting` published."""
    level = os.environ.get("CIAO_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        level=level if isinstance(logging.getLevelName(level), int) else "WARNING",
        format="[ciao %(levelname)s %(asctime)s %(name)s] %(message)s",
    )
    from ciao.kernel.core import install_signal_handlers

    kernel, server = compose(connection_file)
    install_signal_handlers(kernel)
    server.start_threads()
    threading.Thread(
        target=kernel.manager.prune_records, name="ciao-retention", daemon=True
    ).start()
    _watch_parent(kernel)
    server.status("starting")
    return kernel, server


def _kernel_id(connection_file: str) -> str:
    """The id Jupyter gave this kernel: its connection file is `kernel-<id>.json`."""
    stem = os.path.basename(connection_file).rsplit(".", 1)[0]
    return stem[len("kernel-") :] if stem.startswith("kernel-") else stem


def _watch_parent(kernel: CiaoKernel) -> None:
    """Exit when the process that launched us (JPY_PARENT_PID) is gone: no orphans.

    It need not be our parent (a wrapper such as `conda run` may sit between), so we stop
    when it no longer exists or when we are reparented (our own parent died).
    """
    try:
        launcher = int(os.environ.get("JPY_PARENT_PID", "0"))
    except ValueError:
        launcher = 0
    parent = os.getppid()
    if launcher <= 1 or parent == 1:
        return
    if not _exists(launcher):  # not in our pid namespace: only reparenting tells
        launcher = parent

    def poll() -> None:
        while not kernel.server.stopping:
            if os.getppid() != parent or not _exists(launcher):
                log.warning("the process that launched the kernel is gone; shutting down")
                kernel.stop()
                return
            time.sleep(1.0)

    threading.Thread(target=poll, name="ciao-parent-watch", daemon=True).start()


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as someone else's process
        pass
    return True


def _shutdown(kernel: CiaoKernel, server: KernelServer) -> None:
    """Stop following what still runs (cancelling it unless the cell said to detach),
    deliver the last messages, and leave within ~2 s."""
    killer = threading.Timer(8.0, lambda: os._exit(1))
    killer.daemon = True
    killer.start()
    active = kernel.manager.active
    if active is not None:  # as an interrupt would: cancel, or detach (%onInterrupt=detach,
        active.interrupt()  # %attach), so a job only watched here is never stopped by it
        active.wait_cancelled(5.0)
    try:
        kernel.close()  # the session's process: asked to end, killed if it does not
    except Exception:
        log.exception("stopping the session failed")
    if not server.close(timeout=2.0):
        log.warning("sockets did not close in time")
        os._exit(0)
