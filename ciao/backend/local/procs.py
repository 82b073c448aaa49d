"""`python -m ciao.backend.local.procs N COMMAND...`: N processes of one local replica, as
torchrun starts them on a node (`%procs=N`).

Each process gets the variables torchrun gives its workers: LOCAL_RANK, RANK (node rank x
N + local rank), WORLD_SIZE (nodes x N), LOCAL_WORLD_SIZE, GROUP_RANK, and the replica's
MASTER_ADDR / MASTER_PORT. Their output goes to the replica's stdout and stderr a whole
line at a time, prefixed `[default<local rank>]:` as torchrun's `--tee 3` writes it on a
cluster (without it their writes would interleave mid-line). When one fails the others are
stopped and this exits with its code, as torchrun does; SIGTERM stops them all.
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
    relay = threading.Thread(target=_relay, args=(children, procs > 1), daemon=True)
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


class _Relayed:
    """One child's stream: copied on at each line's end (or `\r`: progress stays live),
    every line starting with `prefix`."""

    def __init__(self, target: BinaryIO, prefix: bytes) -> None:
        self.target, self.prefix = target, prefix
        self.pending = b""  # the start of a line still being written
        self.at_line_start = True

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        self.pending = data[end:]
        self._write(data[:end])

    def close(self) -> None:
        self._write(self.pending)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.prefix:
            marked = data.replace(b"\n", b"\n" + self.prefix)  # the next line's, after each end
            if self.at_line_start:
                marked = self.prefix + marked
            self.at_line_start = data.endswith(b"\n")
            data = marked[: -len(self.prefix)] if self.at_line_start else marked
        self.target.write(data)
        self.target.flush()


def _relay(children: list[subprocess.Popen[bytes]], prefixed: bool) -> None:
    """Copy the children's output a whole line at a time, marked by local rank if asked."""
    streams: dict[int, _Relayed] = {}
    with selectors.DefaultSelector() as selector:
        for rank, child in enumerate(children):
            prefix = f"[default{rank}]:".encode() if prefixed else b""
            for pipe, target in (
                (child.stdout, sys.stdout.buffer),
                (child.stderr, sys.stderr.buffer),
            ):
                assert pipe is not None
                selector.register(pipe.fileno(), selectors.EVENT_READ)
                streams[pipe.fileno()] = _Relayed(target, prefix)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if data:
                    streams[key.fd].feed(data)
                    continue
                selector.unregister(key.fd)
                os.close(key.fd)
                streams[key.fd].close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m ciao.backend.local.procs N COMMAND...", file=sys.stderr)
        return 2
    return run(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
