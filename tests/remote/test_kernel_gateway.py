"""Remote mode: the `ciao` kernel behind the real Jupyter Kernel Gateway (as deploy/ runs it),
driven over its REST API and websocket the way a notebook server's gateway client does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("kernel_gateway")
from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

from ciao.backend.local.env import free_ports  # noqa: E402

pytestmark = pytest.mark.timeout(120)
TOKEN = uuid.uuid4().hex


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    (port,) = free_ports(1)
    log = (tmp_path_factory.mktemp("kg") / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ciao", "gateway", "--ip", "127.0.0.1", "--port", str(port)],
        env=dict(os.environ, KG_AUTH_TOKEN=TOKEN),
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            call(url, "GET", "/api")
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the kernel gateway did not start") from None
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


def call(url: str, method: str, path: str, body: dict | None = None, token: str = TOKEN):
    request = urllib.request.Request(
        url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return response.status, json.loads(text) if text else None


async def execute(url: str, kernel_id: str, code: str) -> tuple[dict, list[dict]]:
    ws_url = url.replace("http", "ws") + f"/api/kernels/{kernel_id}/channels"
    request = HTTPRequest(ws_url, headers={"Authorization": f"token {TOKEN}"})
    connection = await websocket_connect(request)
    msg_id = uuid.uuid4().hex
    await connection.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "t",
                    "session": uuid.uuid4().hex,
                    "version": "5.4",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
                "channel": "shell",
            }
        )
    )
    reply, outputs, idle = None, [], False
    while reply is None or not idle:
        message = json.loads(await connection.read_message())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["channel"] == "shell":
            reply = message
        elif message["msg_type"] == "status":
            idle = message["content"]["execution_state"] == "idle"
        else:
            outputs.append(message)
    connection.close()
    return reply, outputs


def test_without_the_token_every_request_is_refused(gateway):
    with pytest.raises(urllib.error.HTTPError) as info:
        call(gateway, "GET", "/api/kernels", token="wrong")
    assert info.value.code in (401, 403)


def test_a_distributed_cell_runs_through_the_gateway(gateway):
    status, kernel = call(gateway, "POST", "/api/kernels", {"name": "ciao"})
    assert status == 201
    try:
        cell = (
            "%framework=pytorch\n%master=1\n%worker=1\nimport os\nprint('rank', os.environ['RANK'])"
        )
        reply, outputs = asyncio.run(execute(gateway, kernel["id"], cell))
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(o["content"]["text"] for o in outputs if o["msg_type"] == "stream")
        assert "[master-0] rank 0" in text and "[worker-0] rank 1" in text
        assert any(o["msg_type"] == "display_data" for o in outputs)  # the live view
    finally:
        call(gateway, "DELETE", f"/api/kernels/{kernel['id']}")


def test_the_deployment_runs_as_the_service_account_the_rbac_file_binds():
    from pathlib import Path

    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    rbac = list(yaml.safe_load_all((deploy / "rbac.yaml").read_text()))
    gateway = list(yaml.safe_load_all((deploy / "kernel-gateway.yaml").read_text()))
    (account,) = [d for d in rbac if d["kind"] == "ServiceAccount"]
    (deployment,) = [d for d in gateway if d["kind"] == "Deployment"]
    (service,) = [d for d in gateway if d["kind"] == "Service"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert service["spec"]["ports"][0]["port"] == 8889
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "secretKeyRef" in env["KG_AUTH_TOKEN"]["valueFrom"]  # the token is no literal
    dockerfile = (deploy / "Dockerfile").read_text()
    assert "EXPOSE 8889" in dockerfile and '"ciao", "gateway"' in dockerfile
    from ciao.gateway import gateway_argv

    argv = " ".join(gateway_argv("0.0.0.0", 8889))
    assert "env_process_whitelist=KUBERNETES_SERVICE_HOST" in argv
    assert "NoDelayConnection" in argv
