"""The commands on Katib studies, read from the cluster: the Experiment is the study's
record. `%study` and `%best` read it and its Trials, `%jobs` lists Ciao's Experiments,
`%logs` reads each trial's job's log (its record here, else its pods: Ciao's Experiments
retain them), `%attach` follows it again, `%delete` deletes it with everything it made.
Reading never changes an Experiment.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dateutil.parser import isoparse

from ciao.backend.kubeflow import commands
from ciao.backend.kubeflow import katib_state as S
from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.discovery import katib_served
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.katib import (
    EXPERIMENT_LABEL,
    EXPERIMENTS,
    TRIALS,
    experiments_path,
    trials_path,
)
from ciao.backend.kubeflow.katib_run import delete_experiment, trial_label
from ciao.backend.kubeflow.manifests import API_GROUP, MANAGED_BY
from ciao.backend.record import RunDir
from ciao.backend.types import LogLine, TrialUpdate
from ciao.errors import BackendError


def experiment(cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The Experiment called `name` in the namespace, None when there is none (or Katib
    is not installed)."""
    try:
        found: dict[str, Any] = cluster.request("GET", experiments_path(cluster.namespace, name))
        return found
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise explain(exc, "get", EXPERIMENTS, cluster.namespace, API_GROUP) from None


def is_study(cluster: Cluster, name: str) -> bool:
    """Whether `name` is a Katib study of Ciao's here (asks discovery first: a cluster
    without Katib answers 403, not 404, to a Role without rules for it)."""
    if not katib_served(cluster):
        return False
    found = experiment(cluster, name)
    return found is not None and _ours(found)


def _ours(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == "ciao"


def trials(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    try:
        answer = cluster.request(
            "GET", trials_path(cluster.namespace), {"labelSelector": f"{EXPERIMENT_LABEL}={name}"}
        )
    except ApiError as exc:
        raise explain(exc, "list", TRIALS, cluster.namespace, API_GROUP) from None
    return list(answer.get("items") or [])


def read(cluster: Cluster, name: str) -> tuple[dict[str, Any], list[TrialUpdate]]:
    """The Experiment and its trials' rows; an error when there is no such study."""
    found = experiment(cluster, name)
    if found is None:
        raise BackendError(
            f"no study {name!r}: neither a study recorded on this machine nor an Experiment "
            f"in namespace {cluster.namespace}"
        )
    rows = [S.trial_update(n, trial, found) for n, trial in S.numbered(trials(cluster, name))]
    return found, rows


def listed(cluster: Cluster) -> list[dict[str, Any]]:
    """Ciao's Experiments in the namespace (none where Katib is not installed)."""
    if not katib_served(cluster):
        return []
    try:
        answer = cluster.request(
            "GET", experiments_path(cluster.namespace), {"labelSelector": f"{MANAGED_BY}=ciao"}
        )
    except ApiError as exc:
        raise explain(exc, "list", EXPERIMENTS, cluster.namespace, API_GROUP) from None
    return list(answer.get("items") or [])


def created(obj: dict[str, Any]) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return isoparse(stamp).timestamp() if stamp else 0.0


def logs(
    cluster: Cluster, run_root: Path | None, name: str, replica: str | None, tail: int | None
) -> Iterator[LogLine]:
    """Every trial's lines in trial order (one replica's of each), as `#3 master-0`;
    streamed, holding at most `tail` lines."""
    if experiment(cluster, name) is None:
        raise BackendError(f"no Experiment {name!r} in namespace {cluster.namespace}")
    ordered = S.numbered(trials(cluster, name))

    def lines() -> Iterator[LogLine]:
        for number, trial in ordered:
            try:
                got = commands.logs(cluster, run_root, S.name_of(trial), replica, None)
            except BackendError:
                continue  # a trial whose job was never made
            for line in got:
                yield dataclasses.replace(line, replica=trial_label(number, line.replica))

    return iter(deque(lines(), maxlen=tail)) if tail else lines()


def delete(cluster: Cluster, run_root: Path | None, name: str) -> list[str]:
    """Delete a study Ciao made (its Experiment, and with it the Trials, their jobs, pods
    and the code's ConfigMap) and its trials' records here; the trials deleted."""
    found = experiment(cluster, name)
    if found is None:
        raise BackendError(f"no Experiment {name!r} in namespace {cluster.namespace}")
    if not _ours(found):
        raise BackendError(
            f"Experiment {name} in namespace {cluster.namespace} was not created by Ciao (it "
            f"has no {MANAGED_BY}=ciao label): Ciao deletes only its own studies; use "
            f"kubectl delete experiments.{API_GROUP} {name} if you mean it"
        )
    names = [S.name_of(t) for t in trials(cluster, name)]
    delete_experiment(
        cluster, cluster.namespace, name, (found.get("metadata") or {}).get("uid", "")
    )
    if run_root is not None:
        for trial in names:
            record = RunDir(run_root, trial)
            if record.exists():
                shutil.rmtree(record.path, ignore_errors=True)
    return names
