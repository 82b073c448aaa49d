"""The local job engine: every replica a child process with the operator's environment.

It runs inside the job's supervisor process (local_supervisor.py), which records its
events for the kernel. With no cluster, a cell runs on the kernel's machine as it would in pods: one
process per replica, each in its own process group (like a container, it is stopped as a
whole), with the variables the training operator injects (local_env.py) and the operator's
success and clean-up rules (local_policy.py). Replicas are never restarted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ciao.backend import local_env
from ciao.backend.local_run import LocalRun
from ciao.backend.types import Event, Job
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter


@dataclass(frozen=True)
class ReplicaLaunch:
    """How one replica is started: what `%dryrun` shows is what `exec_code` runs.

    `env` holds only what Ciao adds to the kernel's environment (minus its JPY_* variables).
    """

    replica: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]


class LocalReplicas:
    """Runs a job's replicas as child processes of this process and follows them."""

    name = "local"

    def __init__(
        self, python: str = sys.executable, stop_grace: float = 3.0, queue_size: int = 10000
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1 (the queue is always bounded)")
        self.python = python
        self.stop_grace = stop_grace
        self.queue_size = queue_size

    def environment(
        self, parameter: Parameter, ports: Mapping[str, int]
    ) -> dict[str, dict[str, str]]:
        """Per replica, the variables the operator would inject, with localhost and `ports`."""
        return local_env.environment(parameter, ports)

    def dry_run(self, parameter: Parameter) -> list[ReplicaLaunch]:
        """The command line, directory and injected variables of every replica, free ports
        picked now; `parameter.image` is the code file (see ciao.s2i.local)."""
        code = Path(parameter.image)
        envs = self.environment(parameter, local_env.allocate_ports(parameter))
        return [
            ReplicaLaunch(
                replica=name,
                argv=(self.python, "-u", str(code)),
                cwd=str(code.parent),
                env={
                    **envs[name],
                    "CIAO_REPLICA": name,
                    "CIAO_JOB_NAME": parameter.generate_name,
                },
            )
            for name in parameter.replica_names()
        ]

    def exec_code(self, parameter: Parameter) -> Job:
        """Start every replica; if one cannot start, kill the others and say which."""
        if not parameter.image or not Path(parameter.image).is_file():
            raise BackendError(f"the job's code file {parameter.image!r} does not exist")
        if not parameter.replica_names():
            raise BackendError("the job has no replicas")
        base = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for launch in self.dry_run(parameter):
            try:
                processes[launch.replica] = subprocess.Popen(
                    list(launch.argv),
                    cwd=launch.cwd,
                    env={**base, **launch.env},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as err:
                LocalRun(parameter, processes, self.stop_grace, 1).kill_all()
                raise BackendError(f"could not start replica {launch.replica}: {err}") from err
        run = LocalRun(parameter, processes, self.stop_grace, self.queue_size)
        run.start()
        replicas = {role: spec.count for role, spec in parameter.roles.items() if spec.count}
        return Job(parameter.framework, parameter.generate_name, replicas, self.name, run)

    def get_logs(self, job: Job) -> Iterator[Event]:
        """Every replica's Running state, its lines, its end, then exactly one JobDone.

        A replica's end (Succeeded, Failed, or Stopped when Ciao stopped it) comes after all
        its lines. The job succeeds when master-0 (PyTorch), the chief or master (TF) or
        else worker-0 succeeds; any replica exiting non-zero fails it. Once it is decided,
        parameter servers are stopped, and the others too unless the clean policy is None.
        """
        return _run_of(job).follow()

    def cancel(self, job: Job) -> None:
        """Stop every replica (SIGTERM, SIGKILL after the grace); return when all are gone.

        Safe from another thread while get_logs is iterated: that iterator then ends with
        JobDone(reason="Cancelled").
        """
        _run_of(job).cancel()


def _run_of(job: Job) -> LocalRun:
    if not isinstance(job.handle, LocalRun):
        raise BackendError(f"job {job.name} was not started by the local backend")
    return job.handle
