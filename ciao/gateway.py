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
#: Shortest token accepted: a token is all that stands between the network and running code,
#: and a short one can be guessed (`openssl rand -hex 32` makes 64 characters).
MIN_TOKEN_LENGTH = 32


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


def token_problem(token: str) -> str:
    """Why `token` (KG_AUTH_TOKEN) cannot guard a gateway; "" if it can."""
    token = token.strip()
    if not token:
        return (
            "refusing to start without a token: set KG_AUTH_TOKEN (in a pod, from a Secret; "
            "see deploy/kernel-gateway.yaml), e.g. to the output of `openssl rand -hex 32`. "
            "Anyone who reaches the gateway can run code in it."
        )
    if len(token) < MIN_TOKEN_LENGTH:
        return (
            f"refusing to start: KG_AUTH_TOKEN has {len(token)} characters, and a token "
            f"shorter than {MIN_TOKEN_LENGTH} can be guessed (it is all that keeps the "
            "network from running code in the gateway). Make one with `openssl rand -hex 32`."
        )
    return ""


def serve(ip: str, port: int, env: dict[str, str] | None = None) -> int:
    """Replace this process with the gateway (signals reach it directly); refuse to serve
    without a token, or with one short enough to guess: a kernel gateway runs code for
    whoever gets past it."""
    env = dict(os.environ) if env is None else env
    problem = token_problem(env.get("KG_AUTH_TOKEN", ""))
    if problem:
        print(f"ciao gateway: {problem}", file=sys.stderr)
        return 2
    argv = gateway_argv(ip, port)
    os.execv(argv[0], argv)
