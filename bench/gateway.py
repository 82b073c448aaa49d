"""Execute round trips through Jupyter Kernel Gateway, with and without ciao.gateway's
NoDelayConnection (measured, not asserted).

Anchor (docs/jupyter-protocol.md): ~48 ms through the stock gateway, of
which ~45 ms is Nagle's algorithm; ~4 ms with TCP_NODELAY on the server's websocket.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import time
import urllib.request
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from ciao.gateway import gateway_argv

TOKEN = uuid.uuid4().hex
ROUNDS = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(nodelay: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        gateway_argv("127.0.0.1", port, nodelay=nodelay),
        env=dict(os.environ, KG_AUTH_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            request("GET", url + "/api")
            return process, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gateway did not start")


def request(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        text = response.read()
        return json.loads(text) if text else {}


async def round_trips(url: str, kernel_id: str) -> list[float]:
    ws = await websocket_connect(
        HTTPRequest(
            url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels",
            headers={"Authorization": f"token {TOKEN}"},
        )
    )
    times = []
    for _ in range(ROUNDS):
        msg_id = uuid.uuid4().hex
        began = time.perf_counter()
        await ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "b",
                        "session": "b",
                        "version": "5.4",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": "",
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        while True:
            message = json.loads(await ws.read_message())
            if message["channel"] == "shell" and message["parent_header"]["msg_id"] == msg_id:
                break
        times.append(time.perf_counter() - began)
    ws.close()
    return times


def measure(nodelay: bool) -> float:
    process, url = start(nodelay)
    try:
        kernel = request("POST", url + "/api/kernels", {"name": "ciao"})
        times = asyncio.run(round_trips(url, kernel["id"]))
        return statistics.median(times[5:])
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    stock = measure(nodelay=False)
    nodelay = measure(nodelay=True)
    print(f"gateway execute round trip, stock websocket:      {stock * 1000:6.1f} ms")
    print(f"gateway execute round trip, NoDelayConnection:    {nodelay * 1000:6.1f} ms")
