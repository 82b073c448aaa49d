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
from pathlib import Path

import pytest

pytest.importorskip("kernel_gateway")
import websocket_client  # noqa: E402
from ports import free_ports  # noqa: E402

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


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deployed_config() -> str:
    """The config.yaml the deployment's ConfigMap gives the gateway's kernels."""
    import yaml

    docs = yaml.safe_load_all((DEPLOY / "kernel-gateway.yaml").read_text())
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return config_map["data"]["config.yaml"]


def start_gateway(tmp_path, env: dict, *args: str) -> tuple[subprocess.Popen, int]:
    (port,) = free_ports(1)
    log = (tmp_path / "gateway.log").open("wb")
    argv = [sys.executable, "-m", "ciao", "gateway", "--port", str(port), *args]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=log), port


def test_the_deployed_config_never_runs_a_cell_in_the_gateways_pod(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(deployed_config())
    env = dict(os.environ, KG_AUTH_TOKEN=TOKEN, CIAO_CONFIG=str(config))
    process, port = start_gateway(tmp_path, env)
    url = f"http://127.0.0.1:{port}"
    marker = tmp_path / "ran-in-the-gateway"
    try:
        websocket_client.wait_until_serving(url, TOKEN, process)
        _, kernel = call(url, "POST", "/api/kernels", {"name": "ciao"})
        for cell in (
            f"%backend=local\nopen({str(marker)!r}, 'w').close()",
            f"%dryrun\n%backend=local\nopen({str(marker)!r}, 'w').close()",
        ):
            reply, _ = asyncio.run(execute(url, kernel["id"], cell))
            assert reply["content"]["status"] == "error"
            assert "backend 'local' is not allowed here" in reply["content"]["evalue"]
        reply, _ = asyncio.run(execute(url, kernel["id"], "%logs ciao-abcde"))
        assert reply["content"]["status"] == "error"
        assert not marker.exists()
    finally:
        process.terminate()
        process.wait(10)


def test_without_a_token_the_gateway_refuses_to_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KG_AUTH_TOKEN"}
    process, _ = start_gateway(tmp_path, env)
    assert process.wait(30) == 2
    assert "KG_AUTH_TOKEN" in (tmp_path / "gateway.log").read_text()


@pytest.mark.parametrize("token", ["x", "a" * 31, "  " + "b" * 31 + "\n"])
def test_a_token_shorter_than_32_characters_is_refused_saying_how_to_make_one(token, capsys):
    from ciao.gateway import serve

    assert serve("127.0.0.1", 8889, {"KG_AUTH_TOKEN": token}) == 2
    said = capsys.readouterr().err
    assert "KG_AUTH_TOKEN has" in said and "32" in said
    assert "openssl rand -hex 32" in said


def test_a_one_character_token_stops_the_gateway_before_it_listens(tmp_path):
    process, _ = start_gateway(tmp_path, dict(os.environ, KG_AUTH_TOKEN="x"))
    assert process.wait(30) == 2
    assert "openssl rand -hex 32" in (tmp_path / "gateway.log").read_text()


def test_a_token_of_32_characters_is_enough():
    from ciao.gateway import token_problem

    assert len(TOKEN) == 32 and token_problem(TOKEN) == ""


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on `port` (from /proc/net/tcp, hex little-endian)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            octets = [str(int(address[i : i + 2], 16)) for i in range(6, -1, -2)]
            found.add(".".join(octets))
    return found


def test_by_default_the_gateway_listens_on_loopback_only(tmp_path):
    process, port = start_gateway(tmp_path, dict(os.environ, KG_AUTH_TOKEN=TOKEN))
    try:
        websocket_client.wait_until_serving(f"http://127.0.0.1:{port}", TOKEN, process)
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        process.terminate()
        process.wait(10)


def test_the_deployment_is_locked_down():
    import yaml

    docs = list(yaml.safe_load_all((DEPLOY / "kernel-gateway.yaml").read_text()))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/home/ciao", "/tmp"}
    namespace = yaml.safe_load((DEPLOY / "namespace.yaml").read_text())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "0.0.0.0" in (DEPLOY / "Dockerfile").read_text()  # said explicitly in the image
    ignored = (DEPLOY.parent / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored
