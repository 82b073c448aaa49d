"""The operator's environment with localhost and ports planned from the job's name (pure;
see test_replica_engine.py and test_local_backend.py for the same contract seen from inside
real replicas)."""

from __future__ import annotations

import json
import socket

from ports import free_ports

from ciao.backend.local.env import (
    PORT_RANGE,
    busy_ports,
    environment,
    planned_ports,
)
from ciao.interpreter.types import Parameter, RoleSpec


def param(framework: str, name: str = "job", **counts: int) -> Parameter:
    roles = {role: RoleSpec(role, n) for role, n in counts.items()}
    return Parameter(framework, roles, generate_name=name)


def test_every_replica_gets_its_own_port_in_the_local_range():
    parameter = param("tensorflow", chief=1, ps=1, worker=2)

    ports = planned_ports(parameter)

    assert list(ports) == ["chief-0", "ps-0", "worker-0", "worker-1"]
    assert len(set(ports.values())) == 4
    low, high = PORT_RANGE
    assert all(low <= port < high for port in ports.values())


def test_ports_are_a_function_of_the_job_so_a_plan_can_be_made_again():
    first = planned_ports(param("pytorch", name="ciao-abc12", master=1, worker=2))
    again = planned_ports(param("pytorch", name="ciao-abc12", master=1, worker=2))
    other = planned_ports(param("pytorch", name="ciao-xyz89", master=1, worker=2))

    assert first == again
    assert other != first, "jobs of other names are spread over the range"


def test_busy_ports_names_the_replicas_whose_port_is_held():
    ports = dict(zip(["worker-0", "worker-1", "worker-2"], free_ports(3), strict=True))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", ports["worker-1"]))
        holder.listen()

        assert busy_ports(ports) == {"worker-1": ports["worker-1"]}

    assert busy_ports(ports) == {}


def test_pytorch_ranks_follow_the_master():
    parameter = param("pytorch", master=1, worker=2)
    ports = {"master-0": 5000, "worker-0": 5001, "worker-1": 5002}

    envs = environment(parameter, ports)

    assert envs["master-0"] == {
        "MASTER_ADDR": "localhost",
        "MASTER_PORT": "5000",
        "WORLD_SIZE": "3",
        "RANK": "0",
        "PET_MASTER_ADDR": "localhost",
        "PET_MASTER_PORT": "5000",
        "PET_NNODES": "3",
        "PET_NODE_RANK": "0",
        "PET_NPROC_PER_NODE": "auto",
        "PYTHONUNBUFFERED": "1",
    }
    assert envs["worker-1"]["RANK"] == envs["worker-1"]["PET_NODE_RANK"] == "2"
    assert envs["worker-1"]["MASTER_PORT"] == "5000"


def test_pytorch_without_master_has_no_rendezvous():
    envs = environment(param("pytorch", worker=2), {"worker-0": 1, "worker-1": 2})

    assert envs["worker-0"] == {"PYTHONUNBUFFERED": "1"}


def test_tf_config_names_every_replica_and_the_task():
    parameter = param("tensorflow", chief=1, ps=1, worker=2, evaluator=1)
    names = parameter.replica_names()
    ports = {name: 6000 + i for i, name in enumerate(names)}

    envs = environment(parameter, ports)

    config = json.loads(envs["worker-1"]["TF_CONFIG"])
    assert config == {
        "cluster": {
            "chief": ["localhost:6000"],
            "ps": ["localhost:6001"],
            "worker": ["localhost:6002", "localhost:6003"],
            "evaluator": ["localhost:6004"],
        },
        "task": {"type": "worker", "index": 1},
        "environment": "cloud",
    }
    assert all(envs[name]["PYTHONUNBUFFERED"] == "1" for name in names)


def test_a_single_tf_replica_gets_no_tf_config():
    assert environment(param("tensorflow", worker=1), {"worker-0": 1}) == {
        "worker-0": {"PYTHONUNBUFFERED": "1"}
    }
