"""The Kubeflow backend, as the kernel sees it: a cell as a PyTorchJob or TFJob (Training
Operator v1) or a TrainJob (Kubeflow Trainer v2), and Ciao's jobs on the cluster.

This is the Backend seam only: `dry_run` chooses the target and plans the job (submit.py,
plan.py), `exec_code` creates exactly that plan (submit.py), `get_logs` follows the job
(follow.py), cancel and %delete remove it (removal.py), and %jobs, %status, %logs and
%attach find jobs by name (commands.py). The cluster is connected to on first use, so
choosing this backend costs nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from ciao.backend.kubeflow import commands, removal, submit
from ciao.backend.kubeflow.client import Cluster
from ciao.backend.kubeflow.follow import Follow
from ciao.backend.kubeflow.plan import KubeflowPlan, plan_job
from ciao.backend.kubeflow.run import KubeflowRun
from ciao.backend.metrics import Metrics
from ciao.backend.record import RunDir
from ciao.backend.types import Event, Idle, Job, JobInfo, LogLine
from ciao.config import KubeflowConfig
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.s2i.types import Shipment


class KubeflowBackend:
    """Backend on Kubernetes through the Kubeflow training operator or Trainer."""

    name = "kubeflow"

    def __init__(
        self,
        cluster: Cluster | Callable[[], Cluster],
        run_root: Path | None = None,
        queue_size: int = 2000,
        settings: KubeflowConfig | None = None,
    ) -> None:
        """`cluster`, or how to connect to it: then the first call that needs it connects
        (reading the kubeconfig), so choosing this backend costs nothing. `settings`:
        which Kubeflow API (v1, v2 or auto), v2's runtime and release, how long a job may
        have no pod."""
        self._cluster = cluster if isinstance(cluster, Cluster) else None
        self._connect = None if isinstance(cluster, Cluster) else cluster
        self.run_root = run_root
        self.queue_size = queue_size
        self.settings = settings or KubeflowConfig()

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            assert self._connect is not None
            self._cluster = self._connect()
        return self._cluster

    # ---- submit ----------------------------------------------------------------------

    def dry_run(self, parameter: Parameter, shipment: Shipment) -> KubeflowPlan:
        """The ConfigMap (if the code rides beside the image) and the job, as `exec_code`
        sends them; the API is chosen from what the cluster serves, and a v2 runtime is
        checked to exist."""
        target = submit.target(self.cluster, self.settings, parameter)
        return plan_job(parameter, shipment, self.cluster.namespace, target)

    def api_summary(self) -> dict[str, str]:
        """For %config: the API each framework's cells would run on here, and why."""
        return submit.api_summary(self.cluster, self.settings)

    def exec_code(self, plan: KubeflowPlan) -> Job[KubeflowRun]:
        return submit.create(self.cluster, plan, self.run_root)

    # ---- follow, detach, cancel --------------------------------------------------------

    def get_logs(self, job: Job[KubeflowRun]) -> Iterator[Event | Idle]:
        run = job.handle
        if run.followed:
            raise BackendError(f"job {run.name} is already being followed")
        run.followed = True
        follow = Follow(
            self.cluster, run, self.queue_size, self.settings.no_pods_after, job.resumed
        )
        return follow.events()

    def detach(self, job: Job[KubeflowRun]) -> None:
        """Stop following (the job goes on); get_logs ends after what it has yielded."""
        job.handle.detached = True

    def cancel(self, job: Job[KubeflowRun]) -> None:
        removal.cancel(self.cluster, job.handle)

    # ---- jobs of any kernel ------------------------------------------------------------

    def attach(self, name: str, viewer: str = "") -> Job[KubeflowRun]:
        return commands.attach(self.cluster, self.run_root, name)

    def jobs(self) -> list[JobInfo]:
        return commands.jobs(self.cluster)

    def describe(self, name: str) -> tuple[JobInfo, list[Event]]:
        info, events = commands.describe(self.cluster, name)
        if self.run_root is not None:  # what travelled, where this machine recorded it
            info = dataclasses.replace(info, travels=RunDir(self.run_root, name).travels())
        return info, events

    def logs(
        self, name: str, replica: str | None = None, tail: int | None = None
    ) -> Iterator[LogLine]:
        return commands.logs(self.cluster, self.run_root, name, replica, tail)

    def metrics(self, name: str) -> Metrics:
        return commands.metrics(self.cluster, self.run_root, name)

    def delete(self, name: str) -> None:
        """Delete a job Ciao created, running or not, what it owns and its run record."""
        kind, obj = commands.find(self.cluster, name)
        removal.delete(self.cluster, self.run_root, kind, obj)
