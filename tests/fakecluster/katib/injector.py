"""Katib's pod webhook `mutator.pod.katib.kubeflow.org` (pkg/webhook/v1beta1/pod): the
metrics collector sidecar, on pod creation in namespaces labelled
`katib.kubeflow.org/metrics-collector-injection: enabled`.

A pod belongs to a trial when its ownerReferences lead, through any depth of owners (Job,
JobSet, TrainJob, PyTorchJob), to an object a Trial owns; that object is named like the
trial. Every such pod gets the trial's labels plus `katib.kubeflow.org/trial: <trial>` and,
in the primary container, env KATIB_TRIAL_NAME from that label. A primary pod (matching
primaryPodLabels, or any pod without them) of a collector other than Push also gets:
the sidecar `metrics-logger-and-collector` (StdOut, File) with the file-metrics-collector
image, its flags (`-t <trial> -m <metrics;...> -o-type <type> -s-db
katib-db-manager.kubeflow:6789 -path <file> [-f <filters>] -format TEXT`) and the
katib-config resources; shareProcessNamespace; an emptyDir `metrics-volume` at the metrics
file's directory in the sidecar and the primary container; and (StdOut, File,
TensorFlowEvent) the primary container wrapped: `sh -c "<command and args joined by
spaces> [1>/var/log/katib/metrics.log 2>&1] && echo completed > <dir>/$$$$.pid"`, the
redirection for StdOut only (so the primary container's own log stays empty), an existing
`sh -c`/`bash -c` kept as the shell. Arguments are joined unquoted, as upstream does.
A container without a command is wrapped with its args alone: images' entrypoints are not
known here (upstream reads them from the registry). Not simulated: the suggestion volume
(algorithm setting suggestion_trial_dir), early stopping's command, and the sidecar's
security context (inject-security-context).
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Callable
from typing import Any

from .. import errors as E
from ..resources import ResourceInfo
from ..store import Obj
from . import config as C

#: (apiVersion, kind, namespace, name) -> the object or None.
OwnerLookup = Callable[[str, str, str, str], "Obj | None"]


class PodInjector:
    """The webhook as a mutating admission hook for pods."""

    def __init__(
        self,
        namespace_labels: Callable[[str], dict[str, str]],
        lookup: OwnerLookup,
    ) -> None:
        self.namespace_labels = namespace_labels
        self.lookup = lookup

    def mutate(self, info: ResourceInfo, pod: Obj, old: Obj | None) -> list[str]:
        if old is not None:
            return []
        namespace = pod["metadata"].get("namespace", "")
        if self.namespace_labels(namespace).get(C.INJECTION_LABEL) != C.INJECTION_ENABLED:
            return []  # the webhook's namespaceSelector
        job_name = self.katib_job(pod, namespace)
        if not job_name:
            return []
        trial = self.lookup(C.API_VERSION, "Trial", namespace, job_name)
        if trial is None:
            raise E.StatusError(
                500,
                "",
                f'admission webhook "{C.POD_MUTATOR}" denied the request: '
                f'trials.kubeflow.org "{job_name}" not found',
            )
        mutated = mutate_pod(pod, trial)
        pod.clear()
        pod.update(mutated)
        return []

    def katib_job(self, obj: Obj, namespace: str, depth: int = 0) -> str:
        """getKatibJob: the name of the object a Trial owns, up `obj`'s owner chain."""
        owners = obj["metadata"].get("ownerReferences") or []
        for owner in owners:
            if owner.get("kind") == "Trial" and owner.get("apiVersion") == C.API_VERSION:
                return str(obj["metadata"].get("name", ""))
        if depth > 8:
            return ""
        for owner in owners:
            parent = self.lookup(
                owner.get("apiVersion", ""), owner.get("kind", ""), namespace, owner.get("name", "")
            )
            if parent is None:
                return ""  # errFailedToGetTrialTemplateJob: the pod is left alone
            found = self.katib_job(parent, namespace, depth + 1)
            if found:
                return found
        return ""


def _primary_index(containers: list[Obj], name: str) -> int:
    return next((i for i, c in enumerate(containers) if c.get("name") == name), -1)


def _go_containers(containers: list[Obj]) -> str:
    """[]v1.Container as %v prints it, abbreviated to names and images."""
    return (
        "["
        + " ".join(f"{{{c.get('name', '')} {c.get('image', '')} ...}}" for c in containers)
        + "]"
    )


def mutate_pod(pod: Obj, trial: Obj) -> Obj:
    """SidecarInjector.Mutate."""
    out = copy.deepcopy(pod)
    spec = trial.get("spec") or {}
    meta = out.setdefault("metadata", {})
    meta["labels"] = {
        **(meta.get("labels") or {}),
        **(trial["metadata"].get("labels") or {}),
        C.LABEL_TRIAL: trial["metadata"]["name"],
    }
    pod_spec = out.setdefault("spec", {})
    containers: list[Obj] = pod_spec.setdefault("containers", [])
    primary_name = spec.get("primaryContainerName", "")
    index = _primary_index(containers, primary_name)
    if index < 0:
        raise E.StatusError(
            400,
            "",
            f'admission webhook "{C.POD_MUTATOR}" denied the request: Unable to find primary '
            f"container {primary_name} in mutated pod containers {_go_containers(containers)}",
        )
    containers[index].setdefault("env", []).append(
        {
            "name": C.ENV_TRIAL_NAME,
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{C.LABEL_TRIAL}']"}},
        }
    )
    primary_labels = spec.get("primaryPodLabels")
    labels = pod["metadata"].get("labels") or {}
    if primary_labels is not None and any(labels.get(k) != v for k, v in primary_labels.items()):
        return out
    collector = spec.get("metricsCollector") or {}
    kind = (collector.get("collector") or {}).get("kind", "")
    if kind == "Push":
        return out
    sidecar = _sidecar(trial, collector, kind)
    containers.append(sidecar)
    pod_spec["shareProcessNamespace"] = True
    path, path_kind = mount_path(collector)
    if path:
        directory = posixpath.dirname(path) if path_kind == "File" else path
        mount = {"name": C.METRICS_VOLUME, "mountPath": directory}
        for c in containers:
            if c.get("name") in (sidecar["name"], primary_name):
                c.setdefault("volumeMounts", []).append(dict(mount))
        pod_spec.setdefault("volumes", []).append({"name": C.METRICS_VOLUME, "emptyDir": {}})
    if kind in C.WRAPPED:
        _wrap(containers[index], kind, path, path_kind)
    return out


def mount_path(collector: Obj) -> tuple[str, str]:
    """getMountPath: the metrics file (or directory) and its kind."""
    kind = (collector.get("collector") or {}).get("kind", "")
    fs = (collector.get("source") or {}).get("fileSystemPath") or {}
    if kind == "StdOut":
        return C.DEFAULT_FILE_PATH, "File"
    if kind == "File":
        return str(fs.get("path", "")), "File"
    if kind == "TensorFlowEvent":
        return str(fs.get("path", "")), "Directory"
    if kind == "Custom" and fs:
        return str(fs.get("path", "")), str(fs.get("kind", ""))
    return "", "Invalid"


def _sidecar(trial: Obj, collector: Obj, kind: str) -> Obj:
    if kind == "Custom":
        return copy.deepcopy((collector.get("collector") or {}).get("customCollector") or {})
    spec = trial["spec"]
    objective = spec.get("objective") or {}
    metrics = ";".join(
        [objective.get("objectiveMetricName", ""), *(objective.get("additionalMetricNames") or [])]
    )
    args = [
        "-t",
        trial["metadata"]["name"],
        "-m",
        metrics,
        "-o-type",
        objective.get("type", ""),
        "-s-db",
        C.DB_MANAGER_ADDR,
    ]
    path, _ = mount_path(collector)
    if path:
        args += ["-path", path]
    source = collector.get("source") or {}
    filters = (source.get("filter") or {}).get("metricsFormat") or []
    if filters:
        args += ["-f", ";".join(filters)]
    if kind == "File" and source.get("fileSystemPath") is not None:
        args += ["-format", str(source["fileSystemPath"].get("format", ""))]
    if kind == "StdOut":
        args += ["-format", "TEXT"]
    config = C.METRICS_COLLECTORS.get(kind)
    container: dict[str, Any] = {
        "name": C.COLLECTOR_CONTAINER
        if kind in ("StdOut", "File")
        else C.OTHER_COLLECTOR_CONTAINER,
        "image": config.image if config else "",
        "args": args,
    }
    if config is not None:
        container["imagePullPolicy"] = config.image_pull_policy
        container["resources"] = {"limits": dict(config.limits), "requests": dict(config.requests)}
    return container


def _wrap(container: Obj, kind: str, path: str, path_kind: str) -> None:
    """wrapWorkerContainer."""
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    command = ["sh", "-c"]
    if len(argv) >= 2 and argv[0] in ("sh", "bash") and argv[1] == "-c":
        command, argv = argv[:2], argv[2:]
    if kind == "StdOut":
        argv.append(f"1>{path} 2>&1")
    directory = posixpath.dirname(path) if path_kind == "File" else path
    argv += ["&&", f"echo {C.TRAINING_COMPLETED} > {posixpath.join(directory, '$$$$.pid')}"]
    container["command"] = command
    container["args"] = [" ".join(argv)]
