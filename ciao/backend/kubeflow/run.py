"""A Kubeflow job as its backend holds it (`Job.handle`): which object it is, its record,
and what other threads ask of it; what following it learns is the follower's (follow.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow.manifests import JobKind
from ciao.backend.record import RunDir


@dataclass
class KubeflowRun:
    """One submitted job: its identity on the cluster, and the flags cancel and detach set
    from other threads while it is followed."""

    kind: JobKind
    namespace: str
    name: str
    uid: str
    #: The ConfigMap of its shipped files, which it owns ("" when it has none).
    config_map: str = ""
    record: RunDir | None = None
    cancelled: bool = False
    detached: bool = False
    followed: bool = False

    @property
    def job_path(self) -> str:
        return self.kind.path(self.namespace, self.name)


def start_record(
    run_root: Path | None,
    run: KubeflowRun,
    framework: str,
    replicas: dict[str, int],
    owner: dict[str, str],
    travels: str = "",
    travelled: Mapping[str, Any] | None = None,
) -> RunDir | None:
    """The job's run directory, begun now: what it is (as it is followed, its events)."""
    if run_root is None:
        return None
    record = RunDir(run_root, run.name)
    record.start(
        "kubeflow",
        namespace=run.namespace,
        framework=framework,
        replicas=replicas,
        owner=owner,
        travels=travels,
        travelled=dict(travelled or {}),  # what the job carried, in full (as %dryrun shows)
    )
    return record


def where(kind: JobKind, namespace: str) -> str:
    """Where a job runs, for people: the resource it is, so a TrainJob reads as one."""
    return f"kubeflow ({kind.kind}, namespace {namespace})"
