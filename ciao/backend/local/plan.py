"""A local job's plan: each replica's command line, working directory and environment.

`LocalBackend.dry_run` builds it, `%dryrun` shows it, the job's record keeps it, and the
supervisor starts exactly these processes: what was shown is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ciao.backend.local.pod_settings import cluster_only
from ciao.interpreter.types import Parameter, Resources, RoleSpec


@dataclass(frozen=True)
class ReplicaLaunch:
    """How one replica is started.

    `env` holds only what Ciao adds to the environment the job inherits (`LocalBackend`).
    """

    replica: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"replica": self.replica, "argv": list(self.argv), "cwd": self.cwd, "env": self.env}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplicaLaunch:
        return cls(data["replica"], tuple(data["argv"]), data["cwd"], dict(data["env"]))


@dataclass(frozen=True)
class LocalPlan:
    """What a local job runs; `parameter` carries the roles and policies the supervisor
    applies (success, clean-up), `code_file` what the replicas run."""

    parameter: Parameter
    code_file: str
    launches: tuple[ReplicaLaunch, ...]
    stop_grace: float = 3.0
    #: What travels with the code from the notebook (the shipment's one line).
    travels: str = ""

    backend = "local"

    @property
    def name(self) -> str:
        return self.parameter.generate_name

    @property
    def description(self) -> str:
        unapplied = "; ".join(
            text
            for text in (resource_magics(self.parameter), ", ".join(cluster_only(self.parameter)))
            if text
        )
        note = f"; {unapplied} are not applied locally" if unapplied else ""
        return f"{len(self.launches)} local process(es) on this machine{note}"

    def documents(self) -> list[Any]:
        return [[launch.as_dict() for launch in self.launches]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "parameter": parameter_to_dict(self.parameter),
            "code_file": self.code_file,
            "launches": [launch.as_dict() for launch in self.launches],
            "stop_grace": self.stop_grace,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalPlan:
        return cls(
            parameter_from_dict(data["parameter"]),
            data["code_file"],
            tuple(ReplicaLaunch.from_dict(launch) for launch in data["launches"]),
            float(data.get("stop_grace", 3.0)),
        )


def resource_magics(parameter: Parameter) -> str:
    """The roles' resources as magics (`%cpu=2, %memory=8Gi (worker)`), "" for none: what a
    cluster would request and limit, and a local job cannot (its replicas are processes
    sharing this machine's CPUs, memory and GPUs)."""
    roles = []
    for role, spec in parameter.roles.items():
        given = spec.resources
        magics = [
            f"%{name}={value}"
            for name, value in (("cpu", given.cpu), ("memory", given.memory), ("gpu", given.gpu))
            if value
        ]
        if magics:
            roles.append(f"{', '.join(magics)} ({role})")
    return "; ".join(roles)


def resources_note(parameter: Parameter) -> str:
    """The line a local cell shows when its roles ask for resources, "" when they do not:
    silently ignoring them would let a user believe a job was limited (or given a GPU)."""
    unapplied = resource_magics(parameter)
    if not unapplied:
        return ""
    return (
        f"[ciao] note: {unapplied} apply on Kubernetes, not to local processes (they share "
        "this machine, unlimited)"
    )


def parameter_to_dict(parameter: Parameter) -> dict[str, Any]:
    """What of a Parameter a local job needs after submission (not its code)."""
    return {
        "framework": parameter.framework,
        "generate_name": parameter.generate_name,
        "clean_policy": parameter.clean_policy,
        "roles": {
            role: {
                "count": spec.count,
                "cpu": spec.resources.cpu,
                "memory": spec.resources.memory,
                "gpu": spec.resources.gpu,
            }
            for role, spec in parameter.roles.items()
        },
        "owner": dict(parameter.owner),
        "directory": parameter.directory,
    }


def parameter_from_dict(data: dict[str, Any]) -> Parameter:
    return Parameter(
        framework=data["framework"],
        roles={
            role: RoleSpec(role, r["count"], Resources(r.get("cpu"), r.get("memory"), r["gpu"]))
            for role, r in data["roles"].items()
        },
        generate_name=data["generate_name"],
        clean_policy=data.get("clean_policy"),
        owner=dict(data.get("owner") or {}),
        directory=data.get("directory") or ".",
    )
