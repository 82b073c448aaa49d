"""The kernel process: wire the server and the kernel, serve until shutdown, clean up."""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger("ciao")


def run_kernel(connection_file: str) -> int:
    logging.basicConfig(
        level=os.environ.get("CIAO_LOG_LEVEL", "WARNING").upper(),
        format="[ciao %(levelname)s %(asctime)s %(name)s] %(message)s",
    )
    from ciao.kernel import CiaoKernel, install_signal_handlers
    from ciao.protocol.connection import ConnectionInfo
    from ciao.protocol.server import KernelServer

    info = ConnectionInfo.from_file(connection_file)
    server = KernelServer(info, dispatch=lambda request: None)
    kernel = CiaoKernel(server)
    server.dispatch = kernel.dispatch
    install_signal_handlers(kernel)
    server.start_threads()
    _watch_parent(kernel)
    server.status("starting")
    try:
        server.serve_shell()
    finally:
        _shutdown(kernel, server)
    return 0


def _watch_parent(kernel) -> None:
    """Exit when the process that launched us (JPY_PARENT_PID) is gone: no orphans."""
    try:
        parent = int(os.environ.get("JPY_PARENT_PID", "0"))
    except ValueError:
        parent = 0
    if parent <= 1:
        return

    def poll() -> None:
        while not kernel.server.stopping:
            if os.getppid() != parent:
                log.warning("parent process %d is gone; shutting down", parent)
                kernel.stop()
                return
            time.sleep(1.0)

    threading.Thread(target=poll, name="ciao-parent-watch", daemon=True).start()


def _shutdown(kernel, server) -> None:
    """Cancel what still runs, deliver the last messages, and leave within ~2 s."""
    killer = threading.Timer(8.0, lambda: os._exit(1))
    killer.daemon = True
    killer.start()
    active = kernel.manager.active
    if active is not None:
        active.cancel()
        active.wait_cancelled(5.0)
    if not server.close(timeout=2.0):
        log.warning("sockets did not close in time")
        os._exit(0)
