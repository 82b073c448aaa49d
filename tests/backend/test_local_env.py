"""The operator's environment with localhost and free ports (pure; see test_local_backend.py
for the same contract seen from inside real replicas)."""

from __future__ import annotations

import json

from ciao.backend.local_env import allocate_ports, environment, free_ports
from ciao.interpreter.types import Parameter, RoleSpec


def param(framework: str, **counts: int) -> Parameter:
    roles = {role: RoleSpec(role, n) for role, n in counts.items()}
    return Parameter(framework, roles, generate_name="job")


def test_free_ports_are_distinct_and_usable():
    ports = free_ports(8)

    assert len(set(ports)) == 8
    assert all(1024 <= p <= 65535 for p in ports)


def test_every_replica_gets_a_port():
    parameter = param("tensorflow", chief=1, ps=1, worker=2)

    assert set(allocate_ports(parameter)) == {"chief-0", "ps-0", "worker-0", "worker-1"}


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
