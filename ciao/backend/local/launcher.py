"""`python -m ciao.backend.local.launcher N COMMAND...`: N processes of one local replica, as
torchrun starts them on a node (`%procs=N`).

Each process gets the variables torchrun gives its workers: LOCAL_RANK, RANK (node rank x
N + local rank), WORLD_SIZE (nodes x N), LOCAL_WORLD_SIZE, GROUP_RANK, and the replica's
MASTER_ADDR / MASTER_PORT. Their output goes to the replica's stdout and stderr a whole
line at a time, prefixed `[default<local rank>]:` as torchrun's `--tee 3` writes it on a
cluster (without it their writes would interleave mid-line). A progress line (tqdm's `\\r`
rewrites) is live for one process only, the lowest local rank that draws one, so the
node's view shows one steady bar; every process's final progress text comes once, marked.
When one fails the others are stopped and this exits with its code, as torchrun does;
SIGTERM stops them all.
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

from ciao.backend.splitter import MAX_LINE_BYTES

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


class _ProgressOwner:
    """Which process of the node shows its progress live: the lowest local rank that has
    drawn one. Every process's progress line would otherwise take turns in the node's
    single open line, and the live view would flicker between them."""

    def __init__(self) -> None:
        self.owner: int | None = None

    def claim(self, rank: int) -> bool:
        if self.owner is None or rank < self.owner:
            self.owner = rank
        return self.owner == rank


class _Relayed:
    """One child's stream, copied on in whole pieces so processes never cut each other's
    lines: each line with `prefix` at its start, each `\\r` rewrite too (so the final text
    of a progress line keeps its marker); live progress only from the process `progress`
    chose; the others' progress lines come once, as their final text, when they end."""

    def __init__(
        self,
        target: BinaryIO,
        prefix: bytes,
        rank: int = 0,
        progress: _ProgressOwner | None = None,
    ) -> None:
        self.target, self.prefix, self.rank = target, prefix, rank
        self.progress = progress or _ProgressOwner()
        self.pending = b""  # the start of a line (or of a `\r` rewrite) still being written
        self.rewritten = False  # the open line was rewritten with `\r`: a progress line
        self.latest = b""  # its latest non-empty state, its final text if it ends empty
        self.live = b""  # the state written before its `\r` came (not to write it twice)

    def feed(self, data: bytes) -> None:
        data = self.pending + data
        end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        self.pending = data[end:]
        if len(self.pending) >= MAX_LINE_BYTES:  # a line without end goes on in pieces, as
            piece, self.pending = self.pending, b""  # the line splitter cuts it: bounded
            ending = b"\n" if self.prefix else b""  # marked pieces are lines of their own
            data, end = data[:end] + piece + ending, end + len(piece) + len(ending)
        if not self.prefix:
            self._write(data[:end])
        elif b"\r" in data or self.rewritten:
            self._segments(data[:end])
            self._live()
        elif end:
            self._write(self.prefix + data[: end - 1].replace(b"\n", b"\n" + self.prefix) + b"\n")

    def close(self) -> None:
        if not self.prefix:
            self._write(self.pending)
        elif self.pending or self.rewritten:  # the last line, ended so no other joins it
            self._segments(self.pending + b"\n")
        self.pending = b""

    def _segments(self, data: bytes) -> None:
        """Pieces that each end in `\\n` or `\\r`: marked, and written as one."""
        out = []
        for piece in data.replace(b"\r\n", b"\n").splitlines(keepends=True):
            text, end = piece[:-1], piece[-1:]
            if end == b"\n":
                final = (text or self.latest) if self.rewritten else text
                out.append(self.prefix + final + b"\n")
                self.rewritten, self.latest = False, b""
                continue
            self.rewritten = True
            if text:
                self.latest = text
                if text != self.live and self.progress.claim(self.rank):
                    out.append(self.prefix + text + b"\r")
            self.live = b""
        self._write(b"".join(out))

    def _live(self) -> None:
        """The progress state being written, shown now (it ends at the next `\\r`)."""
        if self.rewritten and self.pending and self.progress.claim(self.rank):
            self._write(self.prefix + self.pending + b"\r")
            self.live = self.pending

    def _write(self, data: bytes) -> None:
        if data:
            self.target.write(data)
            self.target.flush()


def _relay(children: list[subprocess.Popen[bytes]], prefixed: bool) -> None:
    """Copy the children's output a whole line at a time, marked by local rank if asked."""
    streams: dict[int, _Relayed] = {}
    progress = _ProgressOwner()
    with selectors.DefaultSelector() as selector:
        for rank, child in enumerate(children):
            prefix = f"[default{rank}]:".encode() if prefixed else b""
            for pipe, target in (
                (child.stdout, sys.stdout.buffer),
                (child.stderr, sys.stderr.buffer),
            ):
                assert pipe is not None
                selector.register(pipe.fileno(), selectors.EVENT_READ)
                streams[pipe.fileno()] = _Relayed(target, prefix, rank, progress)
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
        print("usage: python -m ciao.backend.local.launcher N COMMAND...", file=sys.stderr)
        return 2
    return run(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
