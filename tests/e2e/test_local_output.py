"""Output that would break a notebook, on the local backend: huge lines, binary, millions of
lines. The kernel's memory stays bounded and the record keeps every byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kernel_client import execute, kernel_with_runs, stream_text

from ciao.backend.record import RunDir
from ciao.backend.types import LogLine, one_per_line

pytestmark = pytest.mark.timeout(300)

#: Peak resident memory the kernel may reach in these tests (measured: 34-36 MB, 2026-12).
#: It idles at ~30 MB; what it holds of a job's output is one chunk of the record and the
#: lines kept for the end of the cell (at most 1 MiB), so 80 MB leaves room for the
#: allocator, never for a 32 MB line or a list of 2 million.
KERNEL_PEAK_RSS_BYTES = 80 * 1024 * 1024


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with kernel_with_runs(runs) as (km, kc, _):
        yield km, kc, runs


def peak_rss(km) -> int:
    status = Path(f"/proc/{km.provisioner.process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def job_lines(runs: Path, text: str) -> list[LogLine]:
    name = re.search(r"`%logs (ciao-[a-z]+)", text) or re.search(r"(ciao-[a-z]{5})", text)
    assert name, text[-2000:]
    run = RunDir(runs, name.group(1))
    return [e for e in one_per_line(e for e, _ in run.read_events()) if isinstance(e, LogLine)]


def test_a_10_mb_line_a_32_mb_line_without_newline_and_binary_keep_every_byte(kernel):
    km, kc, runs = kernel
    cell = (
        "%framework=pytorch\n%master=1\n"
        "import os, sys\n"
        "sys.stderr.buffer.write(bytes(b for b in range(256) if b not in b'\\r\\n') * 4)\n"
        "sys.stderr.flush()\n"
        "sys.stdout.buffer.write(b'a' * (10 << 20) + b'\\n')\n"
        "sys.stdout.buffer.write(b'b' * (32 << 20))\n"
    )
    reply, messages = execute(kc, cell, timeout=240)
    assert reply["content"]["status"] == "ok", reply["content"]
    text = stream_text(messages) + stream_text(messages, "stderr")
    assert "LongLine" in text  # said once that lines come in pieces
    lines = job_lines(runs, text + str(messages))
    out = [line.text for line in lines if line.stream == "stdout"]
    assert "".join(out) == "a" * (10 << 20) + "b" * (32 << 20)
    assert max(len(piece) for piece in out) <= 64 * 1024
    err = "".join(line.text for line in lines if line.stream == "stderr")
    binary = bytes(b for b in range(256) if b not in b"\r\n") * 4
    assert err == binary.decode("utf-8", "replace")
    assert peak_rss(km) < KERNEL_PEAK_RSS_BYTES


def test_two_million_short_lines_are_all_recorded_and_the_cell_stays_small(kernel):
    km, kc, runs = kernel
    cell = (
        "%framework=pytorch\n%master=1\n%worker=1\n"
        "import sys\n"
        "write = sys.stdout.write\n"
        "for i in range(1_000_000):\n"
        "    write(f'{i}\\n')\n"
    )
    reply, messages = execute(kc, cell, timeout=240)
    assert reply["content"]["status"] == "ok", reply["content"]
    text = stream_text(messages) + stream_text(messages, "stderr")
    assert len(text) < 1 << 20, "the notebook holds a capped few lines, not 2 million"
    lines = job_lines(runs, text)
    for replica in ("master-0", "worker-0"):
        mine = [line.text for line in lines if line.replica == replica]
        assert mine == [str(i) for i in range(1_000_000)]
    assert peak_rss(km) < KERNEL_PEAK_RSS_BYTES
