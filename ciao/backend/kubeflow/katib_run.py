"""Following a Katib study from the notebook: its Experiment and Trials, and each trial's
job followed as a cell's job is (follow.py), its lines labelled `#<number> <replica>`.

`KatibStudyRun` is what a `%tune` cell follows (ciao.tune's RunningStudy): TrialUpdate
rows from the Trials (labelled `katib.kubeflow.org/experiment`) and the Experiment's
`status.currentOptimalTrial`, the trials' lines, Diagnoses, and one JobDone once the
Experiment ended and every trial's job was drained. Each trial's job (named like the
trial) is followed on a thread of its own through `Follow`, with a run record of its own
(so `%logs <trial>` works once its pods are gone); the reading thread folds what the
informers saw into rows between events, so the informers never wait on the queue.

Cancelling deletes the Experiment in the foreground (its Trials, their jobs and pods
first) and the code's ConfigMap; detaching stops following, the study runs on.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ciao.backend.kubeflow import katib_state as S
from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.follow import Follow, hand_over
from ciao.backend.kubeflow.informer import Informer
from ciao.backend.kubeflow.katib import (
    EXPERIMENT_LABEL,
    EXPERIMENTS,
    TRIALS,
    experiments_path,
    trials_path,
)
from ciao.backend.kubeflow.manifests import API_GROUP, config_map_name, framework_of
from ciao.backend.kubeflow.removal import delete_config_map, foreground
from ciao.backend.kubeflow.run import KubeflowRun, start_record
from ciao.backend.record import STUDY, RunDir
from ciao.backend.types import (
    IDLE,
    Diagnosis,
    Event,
    Idle,
    Job,
    JobDone,
    LogLine,
    LogLines,
    ReplicaState,
    TrialUpdate,
)
from ciao.config import KubeflowConfig
from ciao.errors import BackendError

log = logging.getLogger("ciao.katib")

#: With nothing in the queue for this long, the reader gets IDLE (to flush, to notice).
IDLE_AFTER = 0.05
#: How often a trial's follower asks whether the trial's job exists yet.
JOB_POLL = 0.2
#: How long a cancel waits for the Experiment (and what it owns) to be gone.
DELETE_WAIT = 60.0
#: How long a detach waits for the followers to hand over what they read.
DETACH_WAIT = 5.0


def trial_label(number: int, replica: str) -> str:
    """A trial's replica in the study's view: `#3 master-0`."""
    return f"#{number} {replica}"


class TrialFollower:
    """One trial's job, followed on a thread of its own; its replicas' phases and why its
    job failed are kept for the trial's row."""

    def __init__(self, study: KatibStudyRun, number: int, name: str, resumed: bool) -> None:
        self.study = study
        self.number = number
        self.name = name
        self.resumed = resumed
        self.run: KubeflowRun | None = None
        self.phases: dict[str, str] = {}
        self.failure = ""
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"ciao-trial {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def replicas(self) -> str:
        counts: dict[str, int] = {}
        for phase in self.phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        return ", ".join(f"{n} {phase}" for phase, n in counts.items())

    def detach(self) -> None:
        if self.run is not None:
            self.run.detached = True

    def _follow(self) -> None:
        try:
            job = self._wait_for_job()
            if job is not None:
                self._stream(job)
        except BackendError as exc:
            self.study.put(Diagnosis(trial_label(self.number, "job"), "NotFollowed", str(exc)))
        except Exception as exc:  # never let a trial's thread die silently
            log.exception("following trial %s failed", self.name)
            self.study.put(Diagnosis(trial_label(self.number, "job"), "NotFollowed", str(exc)))
        finally:
            self.done.set()
            self.study.changed(self.number)

    def _wait_for_job(self) -> dict[str, Any] | None:
        """The trial's job, once Katib made it; None when the trial ended without one or
        following stopped."""
        study = self.study
        path = study.kind.path(study.namespace, self.name)
        while not study.stopping.is_set():
            try:
                job: dict[str, Any] = study.cluster.request("GET", path)
                return job
            except ApiError as exc:
                if exc.status != 404:
                    raise explain(
                        exc, "get", study.kind.plural, study.namespace, study.kind.group
                    ) from None
            if study.trial_gone(self.name):
                return None
            study.stopping.wait(JOB_POLL)
        return None

    def _stream(self, job: dict[str, Any]) -> None:
        study = self.study
        uid = (job.get("metadata") or {}).get("uid", "")
        run = KubeflowRun(study.kind, study.namespace, self.name, uid)
        run.cancelled = study.cancelling
        record = RunDir(study.run_root, self.name) if study.run_root is not None else None
        resumed = record is not None and record.exists()
        if record is not None and not resumed:
            owner = {**study.owner, "study": study.name, "trial": str(self.number)}
            record = start_record(
                study.run_root, run, framework_of(study.kind), study.roles, owner, study.travels
            )
        run.record = record
        self.run = run
        if study.detached:
            return
        follow = Follow(study.cluster, run, study.queue_size, study.no_pods_after, resumed)
        label = trial_label
        for event in follow.events():
            if isinstance(event, Idle):
                continue
            if isinstance(event, LogLine | LogLines | Diagnosis):
                study.put(dataclasses.replace(event, replica=label(self.number, event.replica)))
            elif isinstance(event, ReplicaState):
                with study.lock:
                    self.phases[event.replica] = event.phase
                study.changed(self.number)
            elif isinstance(event, JobDone) and not event.succeeded:
                where = f" ({event.failed_replica})" if event.failed_replica else ""
                self.failure = f"{event.message or event.reason}{where}"


class KatibStudyRun:
    """A Katib study as a cell follows it (ciao.tune's RunningStudy)."""

    def __init__(
        self,
        cluster: Cluster,
        experiment: dict[str, Any],
        run_root: Path | None,
        settings: KubeflowConfig | None = None,
        resumed: bool = False,
        travels: str = "",
        queue_size: int = 2000,
    ) -> None:
        """`experiment`: as created (or read, for %attach); `resumed`: an %attach, which
        follows the trials that have not ended (the others' lines are in their records)."""
        meta = experiment.get("metadata") or {}
        self.cluster = cluster
        self.name = str(meta.get("name", ""))
        self.namespace = str(meta.get("namespace") or cluster.namespace)
        self.uid = str(meta.get("uid", ""))
        self.experiment = experiment
        self.kind = S.job_kind(experiment)
        self.run_root = run_root
        self.no_pods_after = (settings or KubeflowConfig()).no_pods_after
        self.queue_size = queue_size
        self.travels = travels
        self.resumed = resumed
        prefix = "ciao.kubeflow.org/"
        labels = meta.get("labels") or {}
        self.owner = {k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)}
        self._study = S.study(experiment)
        self._roles = S.roles(experiment)
        self._job: Job[object] = Job(
            framework_of(self.kind),
            self.name,
            {"trials": int(self._study.get("trials") or 0)},
            STUDY,
            self,
            f"katib engine, trials on kubeflow ({self.kind.kind}, namespace {self.namespace})",
            resumed,
            travels,
        )
        self.queue: queue.Queue[Event | BackendError] = queue.Queue(queue_size)
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.cancelling = False
        self.detached = False
        self.deleted = False
        self._trials: dict[str, dict[str, Any]] = {}
        self._gone: set[str] = set()
        self._numbers: dict[str, int] = {}
        self._followers: dict[str, TrialFollower] = {}
        self._shown: dict[int, TrialUpdate] = {}
        self._dirty: set[int] = set()
        self._informers = [
            Informer(
                cluster,
                experiments_path(self.namespace),
                self._on_experiment,
                field_selector=f"metadata.name={self.name}",
                on_error=lambda e: self._fail(e, EXPERIMENTS),
            ),
            Informer(
                cluster,
                trials_path(self.namespace),
                self._on_trial,
                label_selector=f"{EXPERIMENT_LABEL}={self.name}",
                on_error=lambda e: self._fail(e, TRIALS),
            ),
        ]

    # ---- what the kernel sees ---------------------------------------------------------

    @property
    def job(self) -> Job[object]:
        return self._job

    @property
    def study(self) -> dict[str, Any]:
        return self._study

    @property
    def roles(self) -> dict[str, int]:
        return self._roles

    def events(self) -> Iterator[Event | Idle]:
        for informer in self._informers:
            informer.start()
        try:
            while True:
                if self.detached:
                    yield from self._detach()
                    return
                try:
                    item: Event | BackendError | None = self.queue.get(timeout=IDLE_AFTER)
                except queue.Empty:
                    item = None
                if isinstance(item, BackendError):
                    raise item
                if item is not None:
                    yield item
                    continue
                with self.lock:
                    rows, verdict = self._fold()
                yield from rows
                if verdict is not None:
                    yield verdict
                    return
                yield IDLE
        finally:
            self.stopping.set()
            for informer in self._informers:
                informer.stop()
            for follower in list(self._followers.values()):
                follower.detach()

    def put(self, item: Event | BackendError) -> None:
        """Into the bounded queue, waiting while it is full, until following stops."""
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def changed(self, number: int) -> None:
        with self.lock:
            self._dirty.add(number)

    def trial_gone(self, name: str) -> bool:
        """Whether the trial ended (or went) without a job to follow."""
        with self.lock:
            trial = self._trials.get(name)
            if name in self._gone or self.deleted:
                return True
            return trial is not None and S.trial_state(trial)[0] in S.FINISHED

    def detach(self) -> None:
        self.detached = True

    def cancel(self) -> None:
        """Delete the Experiment in the foreground (Trials, their jobs and pods first) and
        the code's ConfigMap; return once the Experiment is gone."""
        self.cancelling = True
        with self.lock:
            for follower in self._followers.values():
                if follower.run is not None:
                    follower.run.cancelled = True
        delete_experiment(self.cluster, self.namespace, self.name, self.uid)

    # ---- the informers' side ----------------------------------------------------------

    def _fail(self, error: ApiError, resource: str) -> None:
        self.put(explain(error, "watch", resource, self.namespace, API_GROUP))

    def _on_experiment(self, kind: str, obj: dict[str, Any]) -> None:
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        with self.lock:
            self.uid = self.uid or uid
            if uid and uid != self.uid:
                return  # another study made under the name since: not this one
            if kind == "DELETED":
                self.deleted = True
            else:
                self.experiment = obj

    def _on_trial(self, kind: str, obj: dict[str, Any]) -> None:
        name = S.name_of(obj)
        with self.lock:
            if kind == "DELETED":
                self._gone.add(name)
            else:
                self._trials[name] = obj
            if name in self._numbers:
                self._dirty.add(self._numbers[name])

    # ---- the reading thread's fold ------------------------------------------------------

    def _fold(self) -> tuple[list[TrialUpdate], JobDone | None]:
        """New trials numbered (and followed), changed rows, and the verdict once the
        study is over."""
        fresh = [t for name, t in self._trials.items() if name not in self._numbers]
        for _, trial in S.numbered(fresh):
            number = len(self._numbers)
            name = S.name_of(trial)
            self._numbers[name] = number
            self._dirty.add(number)
            ended = S.trial_state(trial)[0] in S.FINISHED
            if not (self.resumed and ended):
                follower = TrialFollower(self, number, name, self.resumed)
                self._followers[name] = follower
                follower.start()
        rows = []
        for name, number in self._numbers.items():
            best = S.optimal_trial(self.experiment) == name
            shown = self._shown.get(number)
            if number not in self._dirty and (shown is None or shown.best == best):
                continue
            row = self._row(name, number)
            if row != shown:
                rows.append(row)
                self._shown[number] = row
        self._dirty.clear()
        return rows, self._verdict()

    def _row(self, name: str, number: int) -> TrialUpdate:
        follower = self._followers.get(name)
        replicas = follower.replicas() if follower is not None else ""
        failure = follower.failure if follower is not None else ""
        row = S.trial_update(number, self._trials[name], self.experiment, replicas, failure)
        if (name in self._gone or self.deleted) and row.state not in S.FINISHED:
            message = "cancelled with the study" if self.cancelling else "its Trial was deleted"
            row = dataclasses.replace(row, state="Cancelled", message=message)
        return row

    def _verdict(self) -> JobDone | None:
        followers_done = all(f.done.is_set() for f in self._followers.values())
        if self.deleted:
            if not followers_done:
                return None
            if self.cancelling:
                return JobDone(
                    False, "Cancelled", f"cancelled: the Experiment {self.name} was deleted"
                )
            return JobDone(False, "Deleted", f"the Experiment {self.name} was deleted")
        done = S.verdict(self.experiment)
        if done is None or not followers_done:
            return None
        trials_done = all(
            S.trial_state(trial)[0] in S.FINISHED or name in self._gone
            for name, trial in self._trials.items()
        )
        return done if trials_done and len(self._numbers) == len(self._trials) else None

    def _detach(self) -> Iterator[Event]:
        """Stop the followers and hand over every line they read."""
        with self.lock:
            followers = list(self._followers.values())
        for follower in followers:
            follower.detach()
        yield from hand_over(followers, self.queue, DETACH_WAIT)


def delete_experiment(cluster: Cluster, namespace: str, name: str, uid: str = "") -> None:
    """Delete the Experiment in the foreground (by UID when known: a study made again under
    the name is not this one) and its code's ConfigMap; wait until the Experiment is gone,
    and so its Trials, their jobs and pods (they block its deletion until they are)."""
    path = experiments_path(namespace, name)
    try:
        cluster.request("DELETE", path, body=foreground(uid))
    except ApiError as exc:
        if exc.status not in (404, 409):
            raise explain(exc, "delete", EXPERIMENTS, namespace, API_GROUP) from None
    delete_config_map(cluster, namespace, config_map_name(name))
    deadline = time.monotonic() + DELETE_WAIT
    while time.monotonic() < deadline:
        try:
            found = cluster.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise explain(exc, "get", EXPERIMENTS, namespace, API_GROUP) from None
        if uid and (found.get("metadata") or {}).get("uid") != uid:
            return
        time.sleep(0.2)
    raise BackendError(
        f"Experiment {name} was deleted but is still there after {DELETE_WAIT:.0f} s"
    )
