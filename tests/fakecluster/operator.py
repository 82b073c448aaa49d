"""The Kubeflow training operator (v1.9 behaviour) for TFJob and PyTorchJob.

Per replica: a Pod and a headless Service `{job}-{type}-{i}` with the operator's labels,
a controller ownerReference, the replica's pod template, the injected environment
(TF_CONFIG; MASTER_ADDR/PORT, WORLD_SIZE, RANK, PET_*), the `init-pytorch` init container
for PyTorch workers. Status: Created/Running/Restarting/Succeeded/Failed conditions (each
type once; Running flips to False at the end), replicaStatuses with zero counts omitted,
startTime/completionTime; backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished;
cleanPodPolicy once finished. Messages and event reasons are the operator's own.

Past runPolicy.backoffLimit (restarts of Running/Pending pods of OnFailure/Always replicas)
or activeDeadlineSeconds, the job has no Failed condition yet, so DeletePodsAndServices
deletes every pod and service whatever the cleanPodPolicy (its Running-only and None rules
apply to finished jobs alone); only then is Failed set, reason `<Kind>Failed`, message "Job
NAME has failed because it has reached the specified backoff limit" (or "... was active
longer than specified deadline"), naming no replica; replicaStatuses are left as the last
reconcile counted them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import StatusError
from .recorder import EventRecorder
from .registry import Registry
from .resources import CORE
from .store import Obj, WatchEvent
from .timeutil import now_ns, parse_rfc3339, rfc3339

LABEL_OPERATOR = "training.kubeflow.org/operator-name"
LABEL_JOB = "training.kubeflow.org/job-name"
LABEL_TYPE = "training.kubeflow.org/replica-type"
LABEL_INDEX = "training.kubeflow.org/replica-index"
LABEL_ROLE = "training.kubeflow.org/job-role"
INIT_IMAGE = "alpine:3.10"
INIT_MAX_TRIES = 100
#: The operator's built-in init container template (pytorch/initcontainer.go), used unless
#: /etc/config/initContainer.yaml (--pytorch-init-container-template-file) gives another.
INIT_TEMPLATE = """
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits:
      cpu: 100m
      memory: 20Mi
    requests:
      cpu: 50m
      memory: 10Mi
  command: ['sh', '-c', 'err=1;for i in $(seq {{.MaxTries}}); do if nslookup {{.MasterAddr}}; \
then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err']"""


def init_containers(template: str, master_addr: str) -> list[Obj]:
    """The template rendered (its three fields) and read as a YAML list of containers."""
    text = (
        template.replace("{{.InitContainerImage}}", INIT_IMAGE)
        .replace("{{.MaxTries}}", str(INIT_MAX_TRIES))
        .replace("{{.MasterAddr}}", master_addr)
    )
    containers = yaml.safe_load(text)
    if not isinstance(containers, list):
        raise ValueError(f"the init container template is not a list of containers: {text!r}")
    return containers


@dataclass(frozen=True)
class Framework:
    kind: str
    replica_field: str
    container: str
    port_name: str
    port: int
    controller: str
    default_restart: str
    types: tuple[str, ...]


FRAMEWORKS = {
    "pytorchjobs": Framework(
        "PyTorchJob",
        "pytorchReplicaSpecs",
        "pytorch",
        "pytorchjob-port",
        23456,
        "pytorchjob-controller",
        "OnFailure",
        ("Master", "Worker"),
    ),
    "tfjobs": Framework(
        "TFJob",
        "tfReplicaSpecs",
        "tensorflow",
        "tfjob-port",
        2222,
        "tfjob-controller",
        "Never",
        ("Chief", "Evaluator", "Master", "PS", "Worker"),
    ),
}
_CAMEL = {
    "ps": "PS",
    "chief": "Chief",
    "master": "Master",
    "worker": "Worker",
    "evaluator": "Evaluator",
    "eval": "Evaluator",
}


def _cond(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def is_true(status: Obj, type_: str) -> bool:
    c = _cond(status, type_)
    return c is not None and c.get("status") == "True"


def finished(status: Obj) -> bool:
    return is_true(status, "Succeeded") or is_true(status, "Failed")


def update_condition(status: Obj, type_: str, reason: str, message: str, ok: bool = True) -> None:
    """commonutil.UpdateJobConditions: each type once; Running goes False at the end."""
    if is_true(status, "Failed"):
        return
    value = "True" if ok else "False"
    current = _cond(status, type_)
    if current is not None and current["status"] == value and current.get("reason") == reason:
        return
    now = rfc3339()
    cond = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    if current is not None and current["status"] == value:
        cond["lastTransitionTime"] = current["lastTransitionTime"]
    kept = []
    for c in status.get("conditions") or []:
        if c["type"] == type_:
            continue
        if {type_, c["type"]} == {"Running", "Restarting"}:
            continue
        if type_ in ("Succeeded", "Failed") and c["type"] == "Running":
            c = {**c, "status": "False"}
        kept.append(c)
    status["conditions"] = kept + [cond]


class TrainingOperator:
    """Reconciles TFJobs and PyTorchJobs from store events, one job at a time."""

    def __init__(
        self, registry: Registry, resync: float = 0.5, init_template: str | None = None
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.init_template = init_template or INIT_TEMPLATE
        self.resync = resync
        self.recorders = {
            plural: EventRecorder(registry, fw.controller) for plural, fw in FRAMEWORKS.items()
        }
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._pending: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="fake-training-operator", daemon=True
        )
        self.store.add_listener(self._on_event)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(10)

    # -- queue --------------------------------------------------------------------------
    def _enqueue(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        self._queue.put(key)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource in FRAMEWORKS:
            if ev.type != "DELETED":
                meta = ev.obj["metadata"]
                self._enqueue((ev.resource, meta.get("namespace", ""), meta["name"]))
        elif ev.resource in ("pods", "services"):
            for ref in ev.obj["metadata"].get("ownerReferences") or []:
                for plural, fw in FRAMEWORKS.items():
                    if ref.get("controller") and ref.get("kind") == fw.kind:
                        self._enqueue((plural, ev.namespace, ref["name"]))

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                key = self._queue.get(timeout=self.resync)
            except queue.Empty:
                key = None
            if self._stop.is_set():
                break
            if key is not None:
                with self._lock:
                    self._pending.discard(key)
                try:
                    self.reconcile(*key)
                except Exception:
                    traceback.print_exc()
            if time.monotonic() - last >= self.resync:
                last = time.monotonic()
                for plural in FRAMEWORKS:
                    if self.registry.resource("kubeflow.org", "v1", plural) is None:
                        continue
                    items, _ = self.store.list(plural)
                    for job in items:
                        meta = job["metadata"]
                        self._enqueue((plural, meta["namespace"], meta["name"]))

    # -- helpers ------------------------------------------------------------------------
    def _event(self, plural: str, job: Obj, type_: str, reason: str, message: str) -> None:
        self.recorders[plural].event(job, type_, reason, message)

    @staticmethod
    def _defaulted(fw: Framework, job: Obj) -> Obj:
        spec = copy.deepcopy(job.get("spec") or {})
        replicas = {}
        for rtype, rspec in (spec.get(fw.replica_field) or {}).items():
            rtype = _CAMEL.get(rtype.lower(), rtype) if fw.kind == "TFJob" else rtype
            rspec = rspec or {}
            rspec.setdefault("replicas", 1)
            rspec.setdefault("restartPolicy", fw.default_restart)
            pod_spec = rspec.setdefault("template", {}).setdefault("spec", {})
            if fw.kind == "TFJob" or rtype == "Master":
                for c in pod_spec.get("containers") or []:
                    if c.get("name") == fw.container:
                        ports = c.setdefault("ports", [])
                        if not any(p.get("name") == fw.port_name for p in ports):
                            ports.append({"name": fw.port_name, "containerPort": fw.port})
            replicas[rtype] = rspec
        spec[fw.replica_field] = replicas
        run_policy = spec.setdefault("runPolicy", {})
        run_policy.setdefault("cleanPodPolicy", "None")
        if fw.kind == "PyTorchJob":
            spec.setdefault("nprocPerNode", "auto")
        return spec

    @staticmethod
    def _port(fw: Framework, rspec: Obj) -> int:
        for c in ((rspec.get("template") or {}).get("spec") or {}).get("containers") or []:
            if c.get("name") == fw.container:
                for p in c.get("ports") or []:
                    if p.get("name") == fw.port_name:
                        return int(p["containerPort"])
        return fw.port

    def _labels(self, fw: Framework, name: str) -> dict[str, str]:
        return {LABEL_OPERATOR: fw.controller, LABEL_JOB: name}

    def _owner_ref(self, fw: Framework, job: Obj) -> Obj:
        return {
            "apiVersion": job["apiVersion"],
            "kind": fw.kind,
            "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _owned(self, plural: str, job: Obj) -> list[Obj]:
        items, _ = self.store.list(plural, job["metadata"]["namespace"])
        uid = job["metadata"]["uid"]
        return [
            o
            for o in items
            if any(
                r.get("uid") == uid and r.get("controller")
                for r in o["metadata"].get("ownerReferences") or []
            )
        ]

    # -- reconcile ----------------------------------------------------------------------
    def reconcile(self, plural: str, namespace: str, name: str) -> None:
        fw = FRAMEWORKS[plural]
        job = self.store.get(plural, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = self._defaulted(fw, job)
        replicas: dict[str, Obj] = spec[fw.replica_field]
        run_policy = spec["runPolicy"]
        status = copy.deepcopy(job.get("status") or {})
        before = copy.deepcopy(status)
        if _cond(status, "Created") is None:
            update_condition(
                status, "Created", f"{fw.kind}Created", f"{fw.kind} {name} is created."
            )
        pods = self._owned("pods", job)
        services = self._owned("services", job)
        if finished(status):
            self._clean_up(plural, fw, job, run_policy, status, pods)
            if is_true(status, "Succeeded"):
                for rs in (status.get("replicaStatuses") or {}).values():
                    if rs.get("active"):
                        rs["succeeded"] = rs.get("succeeded", 0) + rs.pop("active")
            self._ttl(plural, job, run_policy, status)
            self._write(plural, job, status, before)
            return
        if run_policy.get("suspend"):
            self._suspend(plural, fw, job, status, pods)
            self._write(plural, job, status, before)
            return
        if is_true(status, "Suspended"):
            msg = f"{fw.kind} {name} is resumed."
            update_condition(status, "Suspended", f"{fw.kind}Resumed", msg, ok=False)
            status["startTime"] = rfc3339()
            self._event(plural, job, "Normal", f"{fw.kind}Resumed", msg)
        if not status.get("startTime"):
            status["startTime"] = rfc3339()
        counts = {rtype: {"active": 0, "succeeded": 0, "failed": 0} for rtype in replicas}
        failure = self._past_limits(replicas, run_policy, status, pods, name)
        if failure:
            status.setdefault("completionTime", rfc3339())
            self._delete_pods_and_services(plural, job, pods)
            self._event(plural, job, "Normal", f"{fw.kind}Failed", failure)
            update_condition(status, "Failed", f"{fw.kind}Failed", failure)
            if "replicaStatuses" not in status:
                self._count(fw, replicas, pods, counts)
                status["replicaStatuses"] = self._render(fw, name, counts)
            self._write(plural, job, status, before)
            return
        worker0_completed = False
        for rtype in sorted(replicas, key=lambda t: (t != "Master", t)):
            rspec = replicas[rtype]
            worker0_completed |= self._reconcile_pods(
                plural, fw, job, spec, rtype, rspec, pods, counts, status
            )
            self._reconcile_services(plural, fw, job, rtype, rspec, services)
        if fw.kind == "PyTorchJob":
            self._pytorch_status(plural, fw, job, replicas, counts, status)
        else:
            self._tf_status(plural, fw, job, spec, replicas, counts, status, worker0_completed)
        status["replicaStatuses"] = self._render(fw, name, counts)
        if finished(status):
            self._clean_up(plural, fw, job, run_policy, status, pods)
        self._write(plural, job, status, before)

    def _suspend(self, plural: str, fw: Framework, job: Obj, status: Obj, pods: list[Obj]) -> None:
        """runPolicy.suspend: no pods (running ones are deleted), a Suspended condition."""
        name = job["metadata"]["name"]
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(StatusError):
                    self.registry.delete(
                        CORE["pods"], pod["metadata"]["namespace"], pod["metadata"]["name"]
                    )
        for rs in (status.get("replicaStatuses") or {}).values():
            rs.pop("active", None)
        msg = f"{fw.kind} {name} is suspended."
        if is_true(status, "Running"):
            update_condition(status, "Running", f"{fw.kind}Suspended", msg, ok=False)
        if not is_true(status, "Suspended"):
            update_condition(status, "Suspended", f"{fw.kind}Suspended", msg)
            self._event(plural, job, "Normal", f"{fw.kind}Suspended", msg)

    def _render(self, fw: Framework, name: str, counts: dict[str, dict[str, int]]) -> Obj:
        out = {}
        for rtype, c in counts.items():
            rs: dict[str, Any] = {k: v for k, v in c.items() if v}
            if fw.kind == "PyTorchJob":
                labels = {**self._labels(fw, name), LABEL_TYPE: rtype.lower()}
                rs["selector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            out[rtype] = rs
        return out

    def _write(self, plural: str, job: Obj, status: Obj, before: Obj) -> None:
        if status == before:
            return
        uid = job["metadata"]["uid"]

        def apply(obj: Obj) -> bool | None:
            if obj["metadata"]["uid"] != uid:
                return False
            obj["status"] = status
            return None

        self.registry.mutate(plural, job["metadata"]["namespace"], job["metadata"]["name"], apply)

    def _past_limits(
        self, replicas: dict[str, Obj], run_policy: Obj, status: Obj, pods: list[Obj], name: str
    ) -> str:
        limit = run_policy.get("backoffLimit")
        if limit is not None:
            restarts = 0
            for rtype, rspec in replicas.items():
                if rspec.get("restartPolicy") not in ("OnFailure", "Always"):
                    continue
                for pod in pods:
                    labels = pod["metadata"].get("labels") or {}
                    if labels.get(LABEL_TYPE) != rtype.lower():
                        continue
                    if (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
                        continue
                    for cs in (pod["status"].get("initContainerStatuses") or []) + (
                        pod["status"].get("containerStatuses") or []
                    ):
                        restarts += int(cs.get("restartCount", 0))
            if (restarts > 0) if limit == 0 else (restarts >= limit):
                return f"Job {name} has failed because it has reached the specified backoff limit"
        deadline = run_policy.get("activeDeadlineSeconds")
        if deadline is not None and status.get("startTime"):
            elapsed = (now_ns() - parse_rfc3339(status["startTime"])) / 1e9
            if elapsed >= deadline:
                return f"Job {name} has failed because it was active longer than specified deadline"
        return ""

    def _count(
        self, fw: Framework, replicas: dict[str, Obj], pods: list[Obj], counts: dict
    ) -> None:
        for rtype in replicas:
            for pod in pods:
                if (pod["metadata"].get("labels") or {}).get(LABEL_TYPE) == rtype.lower():
                    self._tally(pod, counts[rtype])

    @staticmethod
    def _tally(pod: Obj, c: dict[str, int]) -> None:
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Running":
            c["failed" if pod["metadata"].get("deletionTimestamp") else "active"] += 1
        elif phase == "Succeeded":
            c["succeeded"] += 1
        elif phase == "Failed":
            c["failed"] += 1

    def _reconcile_pods(
        self,
        plural: str,
        fw: Framework,
        job: Obj,
        spec: Obj,
        rtype: str,
        rspec: Obj,
        pods: list[Obj],
        counts: dict[str, dict[str, int]],
        status: Obj,
    ) -> bool:
        """Create missing pods, count the others; returns whether worker-0 completed."""
        rt = rtype.lower()
        name = job["metadata"]["name"]
        worker0 = False
        for index in range(int(rspec.get("replicas", 1))):
            mine = [
                p
                for p in pods
                if (p["metadata"].get("labels") or {}).get(LABEL_TYPE) == rt
                and (p["metadata"].get("labels") or {}).get(LABEL_INDEX) == str(index)
            ]
            if not mine:
                self._create_pod(plural, fw, job, spec, rtype, rspec, index)
                continue
            pod = mine[0]
            pstatus = pod.get("status") or {}
            exit_code = None
            for cs in pstatus.get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                if cs.get("name") == fw.container and term is not None:
                    exit_code = int(term.get("exitCode", 0))
                    key = (pod["metadata"]["uid"], term.get("containerID") or "")
                    if key not in self._reported:
                        self._reported.add(key)
                        self._event(
                            plural,
                            job,
                            "Normal",
                            "ExitedWithCode",
                            f"Pod: {pod['metadata']['namespace']}.{pod['metadata']['name']}"
                            f" exited with code {exit_code}",
                        )
            phase = pstatus.get("phase")
            if (
                rspec.get("restartPolicy") == "ExitCode"
                and phase == "Failed"
                and exit_code is not None
                and exit_code >= 128
                and not pod["metadata"].get("deletionTimestamp")
            ):
                with contextlib.suppress(StatusError):
                    self.registry.delete(
                        CORE["pods"], pod["metadata"]["namespace"], pod["metadata"]["name"]
                    )
                msg = f"{fw.kind} {name} is restarting because {rtype} replica(s) failed."
                self._event(plural, job, "Warning", f"{fw.kind}Restarting", msg)
                update_condition(status, "Restarting", f"{fw.kind}Restarting", msg)
            if rtype == "Worker" and index == 0 and exit_code == 0 and phase == "Succeeded":
                worker0 = True
            self._tally(pod, counts[rtype])
        return worker0

    def _create_pod(
        self, plural: str, fw: Framework, job: Obj, spec: Obj, rtype: str, rspec: Obj, index: int
    ) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        rt = rtype.lower()
        replicas = spec[fw.replica_field]
        template = copy.deepcopy(rspec.get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            **self._labels(fw, name),
            LABEL_TYPE: rt,
            LABEL_INDEX: str(index),
        }
        if self._is_master(fw, replicas, rtype, index):
            labels[LABEL_ROLE] = "master"
        pod_spec = template.get("spec") or {}
        if pod_spec.get("restartPolicy"):
            self._event(
                plural,
                job,
                "Warning",
                "SettedPodTemplateRestartPolicy",
                "Restart policy in pod template will be overwritten by restart policy "
                "in replica spec",
            )
        policy = rspec.get("restartPolicy", fw.default_restart)
        pod_spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
        if fw.kind == "PyTorchJob":
            self._pytorch_env(fw, job, spec, pod_spec, rt, index)
        else:
            self._tf_env(fw, job, spec, pod_spec, rt, index)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{rt}-{index}",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [self._owner_ref(fw, job)],
            },
            "spec": pod_spec,
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = tmeta["annotations"]
        try:
            self.registry.create(CORE["pods"], namespace, pod)
        except StatusError as err:
            if err.code != 409:
                self._event(
                    plural, job, "Warning", "FailedCreatePod", f"Error creating: {err.message}"
                )
            return
        self._event(
            plural, job, "Normal", "SuccessfulCreatePod", f"Created pod: {pod['metadata']['name']}"
        )

    @staticmethod
    def _is_master(fw: Framework, replicas: dict[str, Obj], rtype: str, index: int) -> bool:
        if fw.kind == "PyTorchJob":
            if "Master" in replicas:
                return rtype == "Master"
            return rtype == "Worker" and index == 0
        if "Chief" in replicas or "Master" in replicas:
            return rtype in ("Chief", "Master")
        return rtype == "Worker" and index == 0

    def _pytorch_env(
        self, fw: Framework, job: Obj, spec: Obj, pod_spec: Obj, rt: str, index: int
    ) -> None:
        replicas = spec[fw.replica_field]
        name = job["metadata"]["name"]
        total = sum(int(r.get("replicas", 1)) for r in replicas.values())
        nproc = spec.get("nprocPerNode") or "auto"
        try:
            per_node = int(nproc)
        except ValueError:
            per_node = 1
        for c in pod_spec.get("containers") or []:
            env = c.setdefault("env", [])
            env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
            if "Master" in replicas:
                port = self._port(fw, replicas["Master"])
                rank = index + 1 if rt == "worker" else index
                env += [
                    {"name": "MASTER_PORT", "value": str(port)},
                    {"name": "PET_MASTER_PORT", "value": str(port)},
                    {"name": "MASTER_ADDR", "value": f"{name}-master-0"},
                    {"name": "PET_MASTER_ADDR", "value": f"{name}-master-0"},
                    {"name": "WORLD_SIZE", "value": str(total * per_node)},
                    {"name": "RANK", "value": str(rank)},
                    {"name": "PET_NODE_RANK", "value": str(rank)},
                ]
            env.append({"name": "PET_NNODES", "value": str(total)})
            env.append({"name": "PET_NPROC_PER_NODE", "value": str(nproc)})
        if rt == "worker" and "Master" in replicas:  # appended to the template's own
            init = init_containers(self.init_template, f"{name}-master-0")
            pod_spec["initContainers"] = (pod_spec.get("initContainers") or []) + init

    def _tf_env(
        self, fw: Framework, job: Obj, spec: Obj, pod_spec: Obj, rt: str, index: int
    ) -> None:
        replicas = spec[fw.replica_field]
        if sum(int(r.get("replicas", 1)) for r in replicas.values()) == 1:
            return
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        cluster = {}
        for rtype, rspec in sorted(replicas.items(), key=lambda kv: kv[0].lower()):
            port = self._port(fw, rspec)
            cluster[rtype.lower()] = [
                f"{name}-{rtype.lower()}-{i}.{namespace}.svc:{port}"
                for i in range(int(rspec.get("replicas", 1)))
            ]
        tf_config = json.dumps(
            {"cluster": cluster, "task": {"type": rt, "index": index}, "environment": "cloud"},
            separators=(",", ":"),
        )
        for c in pod_spec.get("containers") or []:
            if c.get("name") == fw.container:
                c.setdefault("env", []).append({"name": "TF_CONFIG", "value": tf_config})
                break

    def _reconcile_services(
        self, plural: str, fw: Framework, job: Obj, rtype: str, rspec: Obj, services: list[Obj]
    ) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        rt = rtype.lower()
        port = self._port(fw, rspec)
        for index in range(int(rspec.get("replicas", 1))):
            svc_name = f"{name}-{rt}-{index}"
            if any(s["metadata"]["name"] == svc_name for s in services):
                continue
            labels = {**self._labels(fw, name), LABEL_TYPE: rt, LABEL_INDEX: str(index)}
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": svc_name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [self._owner_ref(fw, job)],
                },
                "spec": {
                    "clusterIP": "None",
                    "selector": dict(labels),
                    "ports": [{"name": fw.port_name, "port": port, "targetPort": port}],
                },
            }
            try:
                self.registry.create(CORE["services"], namespace, svc)
            except StatusError as err:
                if err.code != 409:
                    self._event(
                        plural,
                        job,
                        "Warning",
                        "FailedCreateService",
                        f"Error creating: {err.message}",
                    )
                continue
            self._event(
                plural, job, "Normal", "SuccessfulCreateService", f"Created service: {svc_name}"
            )

    # -- status rules -------------------------------------------------------------------
    def _succeed(self, plural: str, fw: Framework, job: Obj, status: Obj, message: str) -> None:
        self._event(plural, job, "Normal", f"{fw.kind}Succeeded", message)
        status.setdefault("completionTime", rfc3339())
        update_condition(status, "Succeeded", f"{fw.kind}Succeeded", message)

    def _fail(self, plural: str, fw: Framework, job: Obj, status: Obj, message: str) -> None:
        self._event(plural, job, "Normal", f"{fw.kind}Failed", message)
        status.setdefault("completionTime", rfc3339())
        update_condition(status, "Failed", f"{fw.kind}Failed", message)

    def _pytorch_status(
        self,
        plural: str,
        fw: Framework,
        job: Obj,
        replicas: dict[str, Obj],
        counts: dict,
        status: Obj,
    ) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        for rtype in sorted(replicas, key=lambda t: (t != "Master", t)):
            rspec, c = replicas[rtype], counts[rtype]
            total = int(rspec.get("replicas", 1))
            expected = total - c["succeeded"]
            if "Master" in replicas:
                if rtype == "Master":
                    if c["active"] > 0:
                        update_condition(
                            status, "Running", f"{fw.kind}Running", f"PyTorchJob {name} is running."
                        )
                    if expected == 0:
                        self._succeed(
                            plural, fw, job, status, f"PyTorchJob {name} is successfully completed."
                        )
                        return
            elif rtype == "Worker":
                if expected == 0:
                    self._succeed(
                        plural,
                        fw,
                        job,
                        status,
                        f"PyTorchJob {namespace}/{name} successfully completed.",
                    )
                elif c["active"] > 0:
                    update_condition(
                        status,
                        "Running",
                        f"{fw.kind}Running",
                        f"PyTorchJob {namespace}/{name} is running.",
                    )
            if c["failed"] > 0 and total > c["succeeded"] + c["active"]:
                if rspec.get("restartPolicy") != "Never":
                    msg = (
                        f"PyTorchJob {name} is restarting because {c['failed']} {rtype} "
                        "replica(s) failed."
                    )
                    self._event(plural, job, "Warning", f"{fw.kind}Restarting", msg)
                    update_condition(status, "Restarting", f"{fw.kind}Restarting", msg)
                else:
                    self._fail(
                        plural,
                        fw,
                        job,
                        status,
                        f"PyTorchJob {name} is failed because {c['failed']} {rtype} "
                        "replica(s) failed.",
                    )

    def _tf_status(
        self,
        plural: str,
        fw: Framework,
        job: Obj,
        spec: Obj,
        replicas: dict[str, Obj],
        counts: dict,
        status: Obj,
        worker0_completed: bool,
    ) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        restarting = _cond(status, "Restarting")
        chief = "Chief" in replicas or "Master" in replicas
        all_workers = spec.get("successPolicy") == "AllWorkers"
        for rtype in ("Chief", "Evaluator", "Master", "PS", "Worker"):
            if rtype not in replicas:
                continue
            c = counts[rtype]
            expected = int(replicas[rtype].get("replicas", 1)) - c["succeeded"]
            if chief:
                if rtype in ("Chief", "Master"):
                    if c["active"] > 0:
                        update_condition(
                            status,
                            "Running",
                            f"{fw.kind}Running",
                            f"TFJob {namespace}/{name} is running.",
                        )
                    if expected == 0:
                        self._succeed(
                            plural,
                            fw,
                            job,
                            status,
                            f"TFJob {namespace}/{name} successfully completed.",
                        )
            elif rtype == "Worker":
                if expected == 0 or (worker0_completed and not all_workers):
                    self._succeed(
                        plural, fw, job, status, f"TFJob {namespace}/{name} successfully completed."
                    )
                elif c["active"] > 0:
                    update_condition(
                        status,
                        "Running",
                        f"{fw.kind}Running",
                        f"TFJob {namespace}/{name} is running.",
                    )
            if c["failed"] > 0:
                if restarting is not None:
                    update_condition(
                        status, "Restarting", restarting["reason"], restarting["message"]
                    )
                elif not (spec.get("enableDynamicWorker") and rtype == "Worker"):
                    self._fail(
                        plural,
                        fw,
                        job,
                        status,
                        f"TFJob {namespace}/{name} has failed because {c['failed']} "
                        f"{rtype} replica(s) failed.",
                    )

    def _delete_pods_and_services(self, plural: str, job: Obj, pods: list[Obj]) -> None:
        """DeletePodsAndServices of a job not yet finished: every pod, whatever the policy."""
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            with contextlib.suppress(StatusError):
                self.registry.delete(CORE["pods"], meta["namespace"], meta["name"])
                self._event(
                    plural, job, "Normal", "SuccessfulDeletePod", f"Deleted pod: {meta['name']}"
                )
            with contextlib.suppress(StatusError):
                self.registry.delete(CORE["services"], meta["namespace"], meta["name"])
                self._event(
                    plural,
                    job,
                    "Normal",
                    "SuccessfulDeleteService",
                    f"Deleted service: {meta['name']}",
                )

    # -- after the end ------------------------------------------------------------------
    def _clean_up(
        self, plural: str, fw: Framework, job: Obj, run_policy: Obj, status: Obj, pods: list[Obj]
    ) -> None:
        """cleanPodPolicy: None keeps everything, Running deletes Running/Pending, All all."""
        policy = run_policy.get("cleanPodPolicy", "None")
        if policy == "None":
            return
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if policy == "Running" and phase not in ("Running", "Pending"):
                continue
            with contextlib.suppress(StatusError):
                self.registry.delete(CORE["pods"], meta["namespace"], meta["name"])
                self._event(
                    plural, job, "Normal", "SuccessfulDeletePod", f"Deleted pod: {meta['name']}"
                )
            with contextlib.suppress(StatusError):
                self.registry.delete(CORE["services"], meta["namespace"], meta["name"])
                self._event(
                    plural,
                    job,
                    "Normal",
                    "SuccessfulDeleteService",
                    f"Deleted service: {meta['name']}",
                )

    def _ttl(self, plural: str, job: Obj, run_policy: Obj, status: Obj) -> None:
        ttl = run_policy.get("ttlSecondsAfterFinished")
        done = status.get("completionTime")
        if ttl is None or not done:
            return
        if (now_ns() - parse_rfc3339(done)) / 1e9 >= ttl:
            with contextlib.suppress(StatusError):
                self.registry.delete(
                    self.registry.by_plural(plural),
                    job["metadata"]["namespace"],
                    job["metadata"]["name"],
                )
