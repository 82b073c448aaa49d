"""The environment the training operator injects, with `localhost` and planned ports.

A local replica must see exactly what it would see in a pod (docs/kubeflow-contract.md,
"Environment injected into replicas"), so a cell debugged on a laptop runs unchanged on the
cluster. Only the service names and default ports differ: every replica listens on its own
free port of 127.0.0.1 instead of `{job}-{role}-{i}:2222`.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Mapping

from ciao.interpreter.types import Parameter

LOCALHOST = "localhost"


#: Local replicas' ports: below Linux's ephemeral range (32768-60999), so no outgoing
#: connection of the machine is given one of them by chance.
PORT_RANGE = (20000, 32000)


def planned_ports(parameter: Parameter) -> dict[str, int]:
    """One port per replica (`role-index` -> port), as one pod per replica would have.

    A function of the job's name, so a plan is the same however often it is made; the job's
    random name spreads jobs over the range. `busy_ports` tells whether they are free.
    """
    names = parameter.replica_names()
    low, high = PORT_RANGE
    digest = hashlib.sha256(parameter.generate_name.encode("utf-8")).digest()
    base = low + int.from_bytes(digest[:8], "big") % (high - low - len(names))
    return {name: base + i for i, name in enumerate(names)}


def busy_ports(ports: Mapping[str, int]) -> dict[str, int]:
    """The replicas whose port another process holds on 127.0.0.1 right now."""
    busy = {}
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy[name] = port
    return busy


def environment(parameter: Parameter, ports: Mapping[str, int]) -> dict[str, dict[str, str]]:
    """Per replica (`role-index`), only the variables the operator would inject. Pure.

    `ports` maps every replica name to its port (see `planned_ports`).
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
    if parameter.count("master") == 0:
        return envs
    world_size = str(parameter.count("master") + parameter.count("worker"))
    port = str(ports["master-0"])
    for name in names:
        role, index = name.rsplit("-", 1)
        rank = str(int(index) + (parameter.count("master") if role == "worker" else 0))
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
                "PET_NPROC_PER_NODE": str(parameter.procs_per_node or "auto"),
            }
        )
    return envs
