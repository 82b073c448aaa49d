"""Remote mode: the `ciao` kernel behind the real Jupyter Kernel Gateway (as deploy/ runs it),
driven over its REST API and websocket the way a notebook server's gateway client does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("kernel_gateway")
import websocket_client  # noqa: E402

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
    websocket_client.wait_until_serving(url, TOKEN, process)
    yield url
    process.terminate()
    process.wait(10)


def call(url: str, method: str, path: str, body: dict | None = None, token: str = TOKEN):
    return websocket_client.call(url, method, path, token, body)


async def execute(url: str, kernel_id: str, code: str) -> tuple[dict, list[dict]]:
    return await websocket_client.execute(url, kernel_id, code, TOKEN)


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
