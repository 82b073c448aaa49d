"""Where users are: the kernel behind a real Jupyter Server with its default settings, driven
over the kernel channels websocket as JupyterLab drives it.

Jupyter Server drops IOPub messages while a kernel sends more than 1,000,000 bytes/s of
stream output or 1,000 messages/s (averaged over 3 s). Ciao keeps under that with its own
output budget, so nothing it sends is dropped, and it accounts for every line it did not
show: shown + reported as not shown = every line the replicas wrote.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections import Counter

import pytest
import websocket_client
from kernel_client import by_replica
from ports import free_ports

pytestmark = pytest.mark.timeout(240)
TOKEN = uuid.uuid4().hex
REPLICAS = ("master-0", "worker-0", "worker-1", "worker-2")
LINES = 20_000
FLOOD = (
    "%framework=pytorch\n%master=1\n%worker=3\n"
    "import os\n"
    "replica = os.environ['CIAO_REPLICA']\n"
    f"for i in range({LINES}):\n"
    "    print(f'{replica} line {i:05d} ' + 'x' * 52)\n"
    "print(f'{replica} DONE')\n"
)
SERVER_NOTICE = re.compile(r"IOPub (data|message) rate exceeded")
NOT_SHOWN = re.compile(r"^\[ciao\] ([a-z]+-\d+): ([\d,]+) of its ([\d,]+) lines not shown", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`jupyter server` on loopback, nothing configured but its token and port."""
    root = tmp_path_factory.mktemp("notebooks")
    (port,) = free_ports(1)
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",  # CI machines run tests as root; harmless otherwise
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        websocket_client.wait_until_serving(url, TOKEN, process)
        yield url
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture(scope="module")
def kernel(server):
    _, created = websocket_client.call(server, "POST", "/api/kernels", TOKEN, {"name": "ciao"})
    yield created["id"]
    websocket_client.call(server, "DELETE", f"/api/kernels/{created['id']}", TOKEN)


def run(server: str, kernel: str, code: str) -> tuple[dict, list[dict]]:
    return asyncio.run(websocket_client.execute(server, kernel, code, TOKEN))


def streams(outputs: list[dict]) -> str:
    return "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")


def last_view(outputs: list[dict]) -> str:
    views = [
        m["content"]["data"]["text/plain"]
        for m in outputs
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    assert views, "the cell showed no job view"
    return views[-1]


def test_a_flood_of_output_is_never_dropped_by_the_server_and_every_line_is_accounted_for(
    server, kernel
):
    reply, outputs = run(server, kernel, FLOOD)
    text = streams(outputs)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert not SERVER_NOTICE.search(text), "the server dropped output"
    view = last_view(outputs)
    assert "  Succeeded  " in view.split("\n")[0], view
    shown = by_replica(text)
    for replica in REPLICAS:
        assert f"{replica} DONE" in shown[replica]
    not_shown = {m[1]: int(m[2].replace(",", "")) for m in NOT_SHOWN.finditer(text)}
    totals = {m[1]: int(m[3].replace(",", "")) for m in NOT_SHOWN.finditer(text)}
    for replica in REPLICAS:
        assert len(shown[replica]) + not_shown.get(replica, 0) == LINES + 1
        assert totals.get(replica, LINES + 1) == LINES + 1
    assert sum(len(shown[r]) for r in REPLICAS) + sum(not_shown.values()) == 4 * (LINES + 1)
    # what is shown of a replica is in its order, with no line twice
    for replica in REPLICAS:
        numbers = [int(line.split()[2]) for line in shown[replica] if " line " in line]
        assert numbers == sorted(set(numbers))

    name = view.split()[0]
    reply, outputs = run(server, kernel, f"%logs {name}")
    assert reply["content"]["status"] == "ok", reply["content"]
    text = streams(outputs)
    assert not SERVER_NOTICE.search(text), "the server dropped %logs output"
    logged = by_replica(text)
    for replica in REPLICAS:
        expected = [f"{replica} line {i:05d} " + "x" * 52 for i in range(LINES)]
        assert logged[replica] == [*expected, f"{replica} DONE"]


def test_a_progress_bar_updates_the_view_in_place_and_leaves_one_final_line(server, kernel):
    cell = (
        "%framework=pytorch\n%master=1\n"
        "import sys, time\n"
        "for percent in range(0, 101, 4):\n"
        "    sys.stdout.write(f'\\rprogress {percent:3d}%')\n"
        "    sys.stdout.flush()\n"
        "    time.sleep(0.12)\n"
        "print()\n"
        "print('after')\n"
    )
    reply, outputs = run(server, kernel, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    views = [
        m["content"]["data"]["text/plain"]
        for m in outputs
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    progress = {m.group(0) for v in views for m in re.finditer(r"progress +\d+%", v)}
    assert len(progress) >= 3, progress
    text = streams(outputs)
    assert "[master-0] progress 100%\n[master-0] after\n" in text
    assert not re.search(r"\[[a-z]+-\d+\] [^\n]*\r", text), "a \\r after a prefix"
    assert Counter(by_replica(text)["master-0"]) == Counter(["progress 100%", "after"])
