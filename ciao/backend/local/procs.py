"""`python -m ciao.backend.local.procs N COMMAND...`: N processes of one local replica, as
torchrun starts them on a node (`%procs=N`).

Each process gets the variables torchrun gives its workers: LOCAL_RANK, RANK (node rank x
N + local rank), WORLD_SIZE (nodes x N), LOCAL_WORLD_SIZE, GROUP_RANK, and the replica's
MASTER_ADDR / MASTER_PORT. Their output goes to the replica's stdout and stderr a whole
line at a time (in a pod their writes would interleave mid-line). When one fails the others
are stopped and this exits with its code, as torchrun does; SIGTERM stops them all.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from typing import BinaryIO

#: How long the others get after one failed (or after SIGTERM) before SIGKILL.
STOP_GRACE = 3.0


def worker_environment(base: dict[str, str], procs: int, local_rank: int) -> dict[str, str]:
    """The variables of worker `local_rank` of a node whose replica has `base`."""
    node_rank = int(base.get("PET_NODE_RANK", base.get("RANK", "0")))
    nodes = int(base.get("PET_NNODES", base.get("WORLD_SIZE", "1")))
    return {
        **base,
        "LOCAL_RANK": str(local_rank),
        "RANK": str(node_rank * procs + local_rank),
        "WORLD_SIZE": str(nodes * procs),
        "LOCAL_WORLD_SIZE": str(procs),
        "GROUP_RANK": str(node_rank),
        "PET_NPROC_PER_NODE": str(procs),
    }


def run(procs: int, command: list[str]) -> int:
    children = [
        subprocess.Popen(
            command,
            env=worker_environment(dict(os.environ), procs, rank),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for rank in range(procs)
    ]
    relay = threading.Thread(target=_relay, args=(children,), daemon=True)
    relay.start()
    stopping = False

    def stop(signum: int = 0, frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    pending = list(children)
    deadline: float | None = None
    while pending:
        for child in list(pending):
            result = child.poll()
            if result is None:
                continue
            pending.remove(child)
            if result != 0 and code == 0:
                code = result if result > 0 else 128 - result
                stop()
        if stopping and deadline is None:
            deadline = time.monotonic() + STOP_GRACE
        if deadline is not None and time.monotonic() > deadline:
            for child in pending:
                child.kill()
        time.sleep(0.02)
    relay.join(STOP_GRACE)
    return code


def _relay(children: list[subprocess.Popen[bytes]]) -> None:
    """Copy the children's output up to each line's end (or `\r`: progress stays live)."""
    targets: dict[int, BinaryIO] = {}
    pending: dict[int, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for child in children:
            for pipe, target in (
                (child.stdout, sys.stdout.buffer),
                (child.stderr, sys.stderr.buffer),
            ):
                assert pipe is not None
                selector.register(pipe.fileno(), selectors.EVENT_READ)
                targets[pipe.fileno()], pending[pipe.fileno()] = target, b""
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                target = targets[key.fd]
                if not data:
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    rest = pending.pop(key.fd)
                    if rest:
                        target.write(rest)
                        target.flush()
                    continue
                data = pending[key.fd] + data
                end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
                pending[key.fd] = data[end:]
                if end:
                    target.write(data[:end])
                    target.flush()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m ciao.backend.local.procs N COMMAND...", file=sys.stderr)
        return 2
    return run(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
