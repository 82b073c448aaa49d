"""`ciao gateway`: the kernel behind Jupyter Kernel Gateway (remote mode), as deploy/ runs it.

One place for the gateway's command line: the kernelspec to start, the variables a kernel
in a pod needs from the gateway's environment, and the websocket without Nagle's delay
(ciao.gateway_ws). The token comes from KG_AUTH_TOKEN in the environment, never from argv.
"""

from __future__ import annotations

import os
import sys

#: What a kernel inherits from the gateway: in-cluster credentials and its config.
INHERITED = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "CIAO_CONFIG")


def gateway_argv(ip: str, port: int, nodelay: bool = True) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "kernel_gateway",
        f"--KernelGatewayApp.ip={ip}",
        f"--KernelGatewayApp.port={port}",
        "--KernelGatewayApp.default_kernel_name=ciao",
        "--JupyterWebsocketPersonality.list_kernels=True",
        *(f"--KernelGatewayApp.env_process_whitelist={name}" for name in INHERITED),
    ]
    if nodelay:
        argv.append(
            "--KernelGatewayApp.kernel_websocket_connection_class=ciao.gateway_ws.NoDelayConnection"
        )
    return argv


def serve(ip: str, port: int, env: dict[str, str] | None = None) -> int:
    """Replace this process with the gateway (signals reach it directly); refuse to serve
    without a token: a kernel gateway runs code for whoever can reach it."""
    env = dict(os.environ) if env is None else env
    if not env.get("KG_AUTH_TOKEN", "").strip():
        print(
            "ciao gateway: refusing to start without a token: set KG_AUTH_TOKEN (in a pod, "
            "from a Secret; see deploy/kernel-gateway.yaml). Anyone who reaches the gateway "
            "can run code in it.",
            file=sys.stderr,
        )
        return 2
    argv = gateway_argv(ip, port)
    os.execv(argv[0], argv)
