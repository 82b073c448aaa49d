"""A notebook front end's side of a kernel behind a Jupyter server (Jupyter Server, Kernel
Gateway): its REST API and the kernel channels websocket, as JupyterLab speaks them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def call(url: str, method: str, path: str, token: str, body: dict | None = None) -> tuple:
    request = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return response.status, json.loads(text) if text else None


def wait_until_serving(url: str, token: str, process: subprocess.Popen, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            call(url, "GET", "/api", token)
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server at {url} did not start") from None
            time.sleep(0.2)


def request(msg_type: str, content: dict[str, Any], channel: str = "shell") -> dict[str, Any]:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": msg_type,
            "username": "t",
            "session": uuid.uuid4().hex,
            "version": "5.4",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "content": content,
        "channel": channel,
    }


async def execute(
    url: str,
    kernel_id: str,
    code: str,
    token: str,
    on_output: Callable[[dict], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Run `code`; the execute_reply and every IOPub message of it but status, in order
    (also passed to `on_output` as they come, when given)."""
    ws_url = url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
    connection = await websocket_connect(
        HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}),
        max_message_size=256 * 1024 * 1024,
    )
    message = request(
        "execute_request",
        {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
        },
    )
    msg_id = message["header"]["msg_id"]
    await connection.write_message(json.dumps(message))
    reply, outputs, idle = None, [], False
    while reply is None or not idle:
        text = await connection.read_message()
        if text is None:
            raise ConnectionError("the server closed the kernel's websocket")
        message = json.loads(text)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["channel"] == "shell":
            reply = message
        elif message["msg_type"] == "status":
            idle = message["content"]["execution_state"] == "idle"
        else:
            outputs.append(message)
            if on_output is not None:
                on_output(message)
    connection.close()
    return reply, outputs
