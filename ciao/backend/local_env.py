"""The environment the training operator injects, with `localhost` and free ports.

A local replica must see exactly what it would see in a pod (kubeflow-contract.md,
"Environment injected into replicas"), so a cell debugged on a laptop runs unchanged on the
cluster. Only the service names and default ports differ: every replica listens on its own
free port of 127.0.0.1 instead of `{job}-{role}-{i}:2222`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from contextlib import ExitStack

from ciao.interpreter.types import Parameter

LOCALHOST = "localhost"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel picked by binding port 0 on 127.0.0.1.

    All sockets stay open until every port is chosen, so the ports are distinct; they are
    closed before returning, so a replica can bind them (a small race is inherent).
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def allocate_ports(parameter: Parameter) -> dict[str, int]:
    """One free port per replica (`role-index` -> port), as one pod per replica would have."""
    names = parameter.replica_names()
    return dict(zip(names, free_ports(len(names)), strict=True))


def environment(parameter: Parameter, ports: Mapping[str, int]) -> dict[str, dict[str, str]]:
    """Per replica (`role-index`), only the variables the operator would inject. Pure.

    `ports` maps every replica name to its port (see `allocate_ports`).
    """
    if parameter.framework == "pytorch":
        return _pytorch_environment(parameter, ports)
    return _tensorflow_environment(parameter, ports)


def _tensorflow_environment(
    parameter: Parameter, ports: Mapping[str, int]
) -> dict[str, dict[str, str]]:
    """TF_CONFIG only when the job has more than one replica, as the operator does."""
    names = parameter.replica_names()
    envs: dict[str, dict[str, str]] = {name: {"PYTHONUNBUFFERED": "1"} for name in names}
    if parameter.total_replicas <= 1:
        return envs
    cluster = {
        role: [f"{LOCALHOST}:{ports[f'{role}-{i}']}" for i in range(spec.count)]
        for role, spec in parameter.roles.items()
        if spec.count > 0
    }
    for role, spec in parameter.roles.items():
        for index in range(spec.count):
            config = {
                "cluster": cluster,
                "task": {"type": role, "index": index},
                "environment": "cloud",
            }
            envs[f"{role}-{index}"]["TF_CONFIG"] = json.dumps(config)
    return envs


def _pytorch_environment(
    parameter: Parameter, ports: Mapping[str, int]
) -> dict[str, dict[str, str]]:
    """The rendezvous variables point at master-0; without a Master there are none."""
    names = parameter.replica_names()
    envs: dict[str, dict[str, str]] = {name: {"PYTHONUNBUFFERED": "1"} for name in names}
    if parameter.master_count == 0:
        return envs
    world_size = str(parameter.master_count + parameter.worker_count)
    port = str(ports["master-0"])
    for name in names:
        role, index = name.rsplit("-", 1)
        rank = str(int(index) + (parameter.master_count if role == "worker" else 0))
        envs[name].update(
            {
                "MASTER_ADDR": LOCALHOST,
                "MASTER_PORT": port,
                "WORLD_SIZE": world_size,
                "RANK": rank,
                "PET_MASTER_ADDR": LOCALHOST,
                "PET_MASTER_PORT": port,
                "PET_NNODES": world_size,
                "PET_NODE_RANK": rank,
                "PET_NPROC_PER_NODE": "auto",
            }
        )
    return envs
