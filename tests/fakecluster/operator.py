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
from dataclasses import dataclass
from typing import Any

import yaml

from .controller import Controller, condition_true, find_condition, owner_ref
from .errors import StatusError
from .registry import Registry
from .resources import CORE
from .store import Obj
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


def finished(status: Obj) -> bool:
    return condition_true(status, "Succeeded") or condition_true(status, "Failed")


def update_condition(status: Obj, type_: str, reason: str, message: str, ok: bool = True) -> None:
    """commonutil.UpdateJobConditions: each type once; Running goes False at the end."""
    if condition_true(status, "Failed"):
        return
    value = "True" if ok else "False"
    current = find_condition(status, type_)
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


class FrameworkController(Controller):
    """The operator's controller of one framework (its PyTorchJob or TFJob reconciler, each
    with its own queue and worker as in the real operator): jobs of `plural`, and the pods and
    services they control."""

    dependents = ("pods", "services")

    def __init__(
        self,
        registry: Registry,
        plural: str,
        init_template: str | None = None,
        resync: float = 0.5,
    ) -> None:
        self.fw = FRAMEWORKS[plural]
        self.kind_plural = plural
        self.kind = self.fw.kind
        self.component = self.fw.controller
        super().__init__(registry, resync)
        self.init_template = init_template or INIT_TEMPLATE
        self._reported: set[tuple[str, str]] = set()

    # -- helpers ------------------------------------------------------------------------
    def _defaulted(self, job: Obj) -> Obj:
        spec = copy.deepcopy(job.get("spec") or {})
        replicas = {}
        for rtype, rspec in (spec.get(self.fw.replica_field) or {}).items():
            rtype = _CAMEL.get(rtype.lower(), rtype) if self.fw.kind == "TFJob" else rtype
            rspec = rspec or {}
            rspec.setdefault("replicas", 1)
            rspec.setdefault("restartPolicy", self.fw.default_restart)
            pod_spec = rspec.setdefault("template", {}).setdefault("spec", {})
            if self.fw.kind == "TFJob" or rtype == "Master":
                for c in pod_spec.get("containers") or []:
                    if c.get("name") == self.fw.container:
                        ports = c.setdefault("ports", [])
                        if not any(p.get("name") == self.fw.port_name for p in ports):
                            ports.append({"name": self.fw.port_name, "containerPort": self.fw.port})
            replicas[rtype] = rspec
        spec[self.fw.replica_field] = replicas
        run_policy = spec.setdefault("runPolicy", {})
        run_policy.setdefault("cleanPodPolicy", "None")
        if self.fw.kind == "PyTorchJob":
            spec.setdefault("nprocPerNode", "auto")
        return spec

    def _port(self, rspec: Obj) -> int:
        for c in ((rspec.get("template") or {}).get("spec") or {}).get("containers") or []:
            if c.get("name") == self.fw.container:
                for p in c.get("ports") or []:
                    if p.get("name") == self.fw.port_name:
                        return int(p["containerPort"])
        return self.fw.port

    def _labels(self, name: str) -> dict[str, str]:
        return {LABEL_OPERATOR: self.fw.controller, LABEL_JOB: name}

    # -- reconcile ----------------------------------------------------------------------
    def reconcile(self, job: Obj) -> None:
        name = job["metadata"]["name"]
        spec = self._defaulted(job)
        replicas: dict[str, Obj] = spec[self.fw.replica_field]
        run_policy = spec["runPolicy"]
        status = self.status_copy(job)
        if find_condition(status, "Created") is None:
            update_condition(
                status, "Created", f"{self.fw.kind}Created", f"{self.fw.kind} {name} is created."
            )
        pods = self.owned("pods", job)
        services = self.owned("services", job)
        if finished(status):
            self._clean_up(job, run_policy, pods)
            if condition_true(status, "Succeeded"):
                for rs in (status.get("replicaStatuses") or {}).values():
                    if rs.get("active"):
                        rs["succeeded"] = rs.get("succeeded", 0) + rs.pop("active")
            self._ttl(job, run_policy, status)
            self.write_status(job, status)
            return
        if run_policy.get("suspend"):
            self._suspend(job, status, pods)
            self.write_status(job, status)
            return
        if condition_true(status, "Suspended"):
            msg = f"{self.fw.kind} {name} is resumed."
            update_condition(status, "Suspended", f"{self.fw.kind}Resumed", msg, ok=False)
            status["startTime"] = rfc3339()
            self.event(job, "Normal", f"{self.fw.kind}Resumed", msg)
        if not status.get("startTime"):
            status["startTime"] = rfc3339()
        counts = {rtype: {"active": 0, "succeeded": 0, "failed": 0} for rtype in replicas}
        failure = self._past_limits(replicas, run_policy, status, pods, name)
        if failure:
            status.setdefault("completionTime", rfc3339())
            self._delete_pods_and_services(job, pods)
            self.event(job, "Normal", f"{self.fw.kind}Failed", failure)
            update_condition(status, "Failed", f"{self.fw.kind}Failed", failure)
            if "replicaStatuses" not in status:
                self._count(replicas, pods, counts)
                status["replicaStatuses"] = self._render(name, counts)
            self.write_status(job, status)
            return
        worker0_completed = False
        for rtype in sorted(replicas, key=lambda t: (t != "Master", t)):
            rspec = replicas[rtype]
            worker0_completed |= self._reconcile_pods(job, spec, rtype, rspec, pods, counts, status)
            self._reconcile_services(job, rtype, rspec, services)
        if self.fw.kind == "PyTorchJob":
            self._pytorch_status(job, replicas, counts, status)
        else:
            self._tf_status(job, spec, replicas, counts, status, worker0_completed)
        status["replicaStatuses"] = self._render(name, counts)
        if finished(status):
            self._clean_up(job, run_policy, pods)
        self.write_status(job, status)

    def _suspend(self, job: Obj, status: Obj, pods: list[Obj]) -> None:
        """runPolicy.suspend: no pods (running ones are deleted), a Suspended condition."""
        name = job["metadata"]["name"]
        for pod in pods:
            self.delete("pods", pod)
        for rs in (status.get("replicaStatuses") or {}).values():
            rs.pop("active", None)
        msg = f"{self.fw.kind} {name} is suspended."
        if condition_true(status, "Running"):
            update_condition(status, "Running", f"{self.fw.kind}Suspended", msg, ok=False)
        if not condition_true(status, "Suspended"):
            update_condition(status, "Suspended", f"{self.fw.kind}Suspended", msg)
            self.event(job, "Normal", f"{self.fw.kind}Suspended", msg)

    def _render(self, name: str, counts: dict[str, dict[str, int]]) -> Obj:
        out = {}
        for rtype, c in counts.items():
            rs: dict[str, Any] = {k: v for k, v in c.items() if v}
            if self.fw.kind == "PyTorchJob":
                labels = {**self._labels(name), LABEL_TYPE: rtype.lower()}
                rs["selector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            out[rtype] = rs
        return out

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

    def _count(self, replicas: dict[str, Obj], pods: list[Obj], counts: dict) -> None:
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
                self._create_pod(job, spec, rtype, rspec, index)
                continue
            pod = mine[0]
            pstatus = pod.get("status") or {}
            exit_code = None
            for cs in pstatus.get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                if cs.get("name") == self.fw.container and term is not None:
                    exit_code = int(term.get("exitCode", 0))
                    key = (pod["metadata"]["uid"], term.get("containerID") or "")
                    if key not in self._reported:
                        self._reported.add(key)
                        self.event(
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
                self.delete("pods", pod)
                msg = f"{self.fw.kind} {name} is restarting because {rtype} replica(s) failed."
                self.event(job, "Warning", f"{self.fw.kind}Restarting", msg)
                update_condition(status, "Restarting", f"{self.fw.kind}Restarting", msg)
            if rtype == "Worker" and index == 0 and exit_code == 0 and phase == "Succeeded":
                worker0 = True
            self._tally(pod, counts[rtype])
        return worker0

    def _create_pod(self, job: Obj, spec: Obj, rtype: str, rspec: Obj, index: int) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        rt = rtype.lower()
        replicas = spec[self.fw.replica_field]
        template = copy.deepcopy(rspec.get("template") or {})
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            **self._labels(name),
            LABEL_TYPE: rt,
            LABEL_INDEX: str(index),
        }
        if self._is_master(replicas, rtype, index):
            labels[LABEL_ROLE] = "master"
        pod_spec = template.get("spec") or {}
        if pod_spec.get("restartPolicy"):
            self.event(
                job,
                "Warning",
                "SettedPodTemplateRestartPolicy",
                "Restart policy in pod template will be overwritten by restart policy "
                "in replica spec",
            )
        policy = rspec.get("restartPolicy", self.fw.default_restart)
        pod_spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
        if self.fw.kind == "PyTorchJob":
            self._pytorch_env(job, spec, pod_spec, rt, index)
        else:
            self._tf_env(job, spec, pod_spec, rt, index)
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{rt}-{index}",
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [owner_ref(job)],
            },
            "spec": pod_spec,
        }
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = tmeta["annotations"]
        try:
            self.registry.create(CORE["pods"], namespace, pod)
        except StatusError as err:
            if err.code != 409:
                self.event(job, "Warning", "FailedCreatePod", f"Error creating: {err.message}")
            return
        self.event(job, "Normal", "SuccessfulCreatePod", f"Created pod: {pod['metadata']['name']}")

    def _is_master(self, replicas: dict[str, Obj], rtype: str, index: int) -> bool:
        if self.fw.kind == "PyTorchJob":
            if "Master" in replicas:
                return rtype == "Master"
            return rtype == "Worker" and index == 0
        if "Chief" in replicas or "Master" in replicas:
            return rtype in ("Chief", "Master")
        return rtype == "Worker" and index == 0

    def _pytorch_env(self, job: Obj, spec: Obj, pod_spec: Obj, rt: str, index: int) -> None:
        replicas = spec[self.fw.replica_field]
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
                port = self._port(replicas["Master"])
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

    def _tf_env(self, job: Obj, spec: Obj, pod_spec: Obj, rt: str, index: int) -> None:
        replicas = spec[self.fw.replica_field]
        if sum(int(r.get("replicas", 1)) for r in replicas.values()) == 1:
            return
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        cluster = {}
        for rtype, rspec in sorted(replicas.items(), key=lambda kv: kv[0].lower()):
            port = self._port(rspec)
            cluster[rtype.lower()] = [
                f"{name}-{rtype.lower()}-{i}.{namespace}.svc:{port}"
                for i in range(int(rspec.get("replicas", 1)))
            ]
        tf_config = json.dumps(
            {"cluster": cluster, "task": {"type": rt, "index": index}, "environment": "cloud"},
            separators=(",", ":"),
        )
        for c in pod_spec.get("containers") or []:
            if c.get("name") == self.fw.container:
                c.setdefault("env", []).append({"name": "TF_CONFIG", "value": tf_config})
                break

    def _reconcile_services(self, job: Obj, rtype: str, rspec: Obj, services: list[Obj]) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        rt = rtype.lower()
        port = self._port(rspec)
        for index in range(int(rspec.get("replicas", 1))):
            svc_name = f"{name}-{rt}-{index}"
            if any(s["metadata"]["name"] == svc_name for s in services):
                continue
            labels = {**self._labels(name), LABEL_TYPE: rt, LABEL_INDEX: str(index)}
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": svc_name,
                    "namespace": namespace,
                    "labels": labels,
                    "ownerReferences": [owner_ref(job)],
                },
                "spec": {
                    "clusterIP": "None",
                    "selector": dict(labels),
                    "ports": [{"name": self.fw.port_name, "port": port, "targetPort": port}],
                },
            }
            try:
                self.registry.create(CORE["services"], namespace, svc)
            except StatusError as err:
                if err.code != 409:
                    self.event(
                        job,
                        "Warning",
                        "FailedCreateService",
                        f"Error creating: {err.message}",
                    )
                continue
            self.event(job, "Normal", "SuccessfulCreateService", f"Created service: {svc_name}")

    # -- status rules -------------------------------------------------------------------
    def _succeed(self, job: Obj, status: Obj, message: str) -> None:
        self.event(job, "Normal", f"{self.fw.kind}Succeeded", message)
        status.setdefault("completionTime", rfc3339())
        update_condition(status, "Succeeded", f"{self.fw.kind}Succeeded", message)

    def _fail(self, job: Obj, status: Obj, message: str) -> None:
        self.event(job, "Normal", f"{self.fw.kind}Failed", message)
        status.setdefault("completionTime", rfc3339())
        update_condition(status, "Failed", f"{self.fw.kind}Failed", message)

    def _pytorch_status(
        self,
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
                            status,
                            "Running",
                            f"{self.fw.kind}Running",
                            f"PyTorchJob {name} is running.",
                        )
                    if expected == 0:
                        self._succeed(job, status, f"PyTorchJob {name} is successfully completed.")
                        return
            elif rtype == "Worker":
                if expected == 0:
                    self._succeed(
                        job,
                        status,
                        f"PyTorchJob {namespace}/{name} successfully completed.",
                    )
                elif c["active"] > 0:
                    update_condition(
                        status,
                        "Running",
                        f"{self.fw.kind}Running",
                        f"PyTorchJob {namespace}/{name} is running.",
                    )
            if c["failed"] > 0 and total > c["succeeded"] + c["active"]:
                if rspec.get("restartPolicy") != "Never":
                    msg = (
                        f"PyTorchJob {name} is restarting because {c['failed']} {rtype} "
                        "replica(s) failed."
                    )
                    self.event(job, "Warning", f"{self.fw.kind}Restarting", msg)
                    update_condition(status, "Restarting", f"{self.fw.kind}Restarting", msg)
                else:
                    self._fail(
                        job,
                        status,
                        f"PyTorchJob {name} is failed because {c['failed']} {rtype} "
                        "replica(s) failed.",
                    )

    def _tf_status(
        self,
        job: Obj,
        spec: Obj,
        replicas: dict[str, Obj],
        counts: dict,
        status: Obj,
        worker0_completed: bool,
    ) -> None:
        name = job["metadata"]["name"]
        namespace = job["metadata"]["namespace"]
        restarting = find_condition(status, "Restarting")
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
                            f"{self.fw.kind}Running",
                            f"TFJob {namespace}/{name} is running.",
                        )
                    if expected == 0:
                        self._succeed(
                            job,
                            status,
                            f"TFJob {namespace}/{name} successfully completed.",
                        )
            elif rtype == "Worker":
                if expected == 0 or (worker0_completed and not all_workers):
                    self._succeed(job, status, f"TFJob {namespace}/{name} successfully completed.")
                elif c["active"] > 0:
                    update_condition(
                        status,
                        "Running",
                        f"{self.fw.kind}Running",
                        f"TFJob {namespace}/{name} is running.",
                    )
            if c["failed"] > 0:
                if restarting is not None:
                    update_condition(
                        status, "Restarting", restarting["reason"], restarting["message"]
                    )
                elif not (spec.get("enableDynamicWorker") and rtype == "Worker"):
                    self._fail(
                        job,
                        status,
                        f"TFJob {namespace}/{name} has failed because {c['failed']} "
                        f"{rtype} replica(s) failed.",
                    )

    def _delete_pods_and_services(self, job: Obj, pods: list[Obj]) -> None:
        """DeletePodsAndServices of a job not yet finished: every pod, whatever the policy."""
        for pod in pods:
            self._delete_pod_and_service(job, pod)

    def _delete_pod_and_service(self, job: Obj, pod: Obj) -> None:
        """A replica's pod and its service (of the pod's name), each with its event."""
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return
        if self.delete("pods", pod):
            self.event(job, "Normal", "SuccessfulDeletePod", f"Deleted pod: {meta['name']}")
        with contextlib.suppress(StatusError):
            self.registry.delete(CORE["services"], meta["namespace"], meta["name"])
            self.event(job, "Normal", "SuccessfulDeleteService", f"Deleted service: {meta['name']}")

    # -- after the end ------------------------------------------------------------------
    def _clean_up(self, job: Obj, run_policy: Obj, pods: list[Obj]) -> None:
        """cleanPodPolicy: None keeps everything, Running deletes Running/Pending, All all."""
        policy = run_policy.get("cleanPodPolicy", "None")
        if policy == "None":
            return
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if policy == "Running" and phase not in ("Running", "Pending"):
                continue
            self._delete_pod_and_service(job, pod)

    def _ttl(self, job: Obj, run_policy: Obj, status: Obj) -> None:
        ttl = run_policy.get("ttlSecondsAfterFinished")
        done = status.get("completionTime")
        if ttl is not None and done and (now_ns() - parse_rfc3339(done)) / 1e9 >= ttl:
            self.delete(self.kind_plural, job)


def training_operator(
    registry: Registry, init_template: str | None = None, resync: float = 0.5
) -> list[FrameworkController]:
    """The v1 training operator: one controller a framework, PyTorchJob and TFJob."""
    return [FrameworkController(registry, plural, init_template, resync) for plural in FRAMEWORKS]
