"""The replica engine: every replica of a local job a child process with the operator's
environment.

It runs inside the job's supervisor process (supervisor.py), which records its events for
the kernel. With no cluster, a cell runs on the kernel's machine as it would in pods: one
process per replica, each in its own process group (like a container, it is stopped as a
whole), with the variables the training operator injects (env.py) and the operator's
success and clean-up rules (policy.py). Replicas are never restarted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ciao.backend.local import env as local_env
from ciao.backend.local.plan import LocalPlan, ReplicaLaunch
from ciao.backend.local.pod_settings import local_environment
from ciao.backend.local.processes import ReplicaProcesses
from ciao.backend.types import Event, Job
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.launch import module_argv


class ReplicaEngine:
    """Plans a job's replicas, runs them as child processes of this process, follows them."""

    def __init__(
        self, python: str = sys.executable, stop_grace: float = 3.0, queue_size: int = 64
    ) -> None:
        """`queue_size`: batches of events (each at most a chunk per pipe) held at once."""
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1 (the queue is always bounded)")
        self.python = python
        self.stop_grace = stop_grace
        self.queue_size = queue_size

    def plan(self, parameter: Parameter, code_file: str) -> LocalPlan:
        """The command line, directory and injected variables of every replica; the ports
        are planned from the job's name, so the same cell and name give the same plan.
        Replicas run in the notebook's folder, as `python train.py` would there, so they
        read its files; the code and the job's record stay in the run directory."""
        code = Path(code_file)
        envs = local_env.environment(parameter, local_env.planned_ports(parameter))
        argv: tuple[str, ...] = (self.python, "-u", str(code))
        if parameter.procs_per_node:  # %procs=N: N processes per replica, as torchrun starts
            procs = str(parameter.procs_per_node)
            argv = (*module_argv(self.python, "ciao.backend.local.launcher", procs), *argv)
        launches = tuple(
            ReplicaLaunch(
                replica=name,
                argv=argv,
                cwd=os.path.abspath(parameter.directory),
                env={
                    **local_environment(parameter.pod_of(name.rsplit("-", 1)[0])),
                    **envs[name],
                    "CIAO_REPLICA": name,
                    "CIAO_JOB_NAME": parameter.generate_name,
                },
            )
            for name in parameter.replica_names()
        )
        return LocalPlan(parameter, str(code), launches, self.stop_grace)

    def exec_code(self, plan: LocalPlan) -> Job[ReplicaProcesses]:
        """Start exactly the plan's processes; if one cannot start, kill the others and say
        which."""
        parameter = plan.parameter
        if not Path(plan.code_file).is_file():
            raise BackendError(f"the job's code file {plan.code_file!r} does not exist")
        if not plan.launches:
            raise BackendError("the job has no replicas")
        busy = local_env.busy_ports(local_env.planned_ports(parameter))
        if busy:
            taken = ", ".join(f"{port} ({replica})" for replica, port in busy.items())
            raise BackendError(
                f"the ports planned for job {plan.name} are in use: {taken}; run the cell "
                "again (a new job gets other ports)"
            )
        base = dict(os.environ)  # the supervisor's: what its job inherits (LocalBackend)
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for launch in plan.launches:
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
                ReplicaProcesses(parameter, processes, self.stop_grace, 1).kill_all()
                raise BackendError(f"could not start replica {launch.replica}: {err}") from err
        run = ReplicaProcesses(parameter, processes, self.stop_grace, self.queue_size)
        run.start()
        replicas = {role: spec.count for role, spec in parameter.roles.items() if spec.count}
        return Job(parameter.framework, plan.name, replicas, "local", run)

    def get_log_batches(self, job: Job[ReplicaProcesses]) -> Iterator[list[Event]]:
        """Every replica's Running state, its lines, its end, then exactly one JobDone, in
        the batches they were read in (one per chunk: the supervisor records each with one
        write).

        A replica's end (Succeeded, Failed, or Stopped when Ciao stopped it) comes after all
        its lines. The job succeeds when master-0 (PyTorch), the chief or master (TF) or
        else worker-0 succeeds; any replica exiting non-zero fails it (the JobDone carries
        its last lines). Once it is decided, parameter servers are stopped, and the others
        too unless the clean policy is None.
        """
        return job.handle.follow_batches()

    def cancel(self, job: Job[ReplicaProcesses]) -> None:
        """Stop every replica (SIGTERM, SIGKILL after the grace); return when all are gone.

        Safe from another thread while get_log_batches is iterated: it then ends with
        JobDone(reason="Cancelled").
        """
        job.handle.cancel()
