"""Kubeflow Trainer v2 (v2.0-v2.3): the TrainJob webhook and controller, and its runtimes.

TrainJob `<name>` (trainer.kubeflow.org/v1alpha1) + its runtime (ClusterTrainingRuntime or
namespaced TrainingRuntime named by `runtimeRef`) -> one JobSet `<name>` (ownerReference to
the TrainJob) built from the runtime's JobSet template:
- the replicated job whose Job template carries `trainer.kubeflow.org/trainjob-ancestor-step:
  trainer` gets replicas 1, parallelism = completions = `trainer.numNodes` (else the
  runtime's `mlPolicy.numNodes`), and in container `node` the trainer's image, command,
  args, resourcesPerNode and env (upserted by name);
- the torch plugin (`mlPolicy.torch`) adds PET_NNODES, PET_NPROC_PER_NODE (`auto`: the CPUs
  of resourcesPerNode limits, else requests, at least 1; kept `auto` when a GPU is asked
  for, or when resourcesPerNode is unset; `cpu`/`gpu`/an int as given), PET_NODE_RANK (field
  ref to the completion-index annotation), PET_MASTER_ADDR `<name>-node-0-0.<name>`,
  PET_MASTER_PORT 29500, and container port 29500;
- the release's pod-override field is merged into the pod templates of the jobs it targets
  as upstream's TrainingRuntime merges it, a strategic merge patch: v2.0 `podSpecOverrides`
  (onto the PodSpec), v2.1 `podTemplateOverrides` (onto the PodTemplateSpec, with labels
  and annotations), v2.2/v2.3 `runtimePatches` (onto the JobSetSpec, replicated jobs by
  name). Containers, env, volumes, volumeMounts, imagePullSecrets and schedulingGates merge
  by key; tolerations and affinity's lists are replaced.
Status: conditions Complete / Failed copied from the JobSet's Completed / Failed (same
reason, message, time), `Suspended` (Suspended / Resumed), `jobsStatus` from the JobSet's
replicatedJobsStatus; v2.3 `activeDeadlineSeconds` -> Failed DeadlineExceeded.

Webhook `validator.trainjob.trainer.kubeflow.org` (403 `admission webhook "..." denied the
request: ...`): an unsupported runtime kind; the runtime must exist (missing_runtime="deny",
as the real webhook: `spec.RuntimeRef: Invalid value: ...: clustertrainingruntimes...
"x" not found: specified clusterTrainingRuntime must be created before the TrainJob is
created`); with missing_runtime="admit" (a runtime deleted after admission, or a webhook
that failed open) the controller records Warning TrainJobResourcesCreationFailed and
retries, setting no condition, as upstream's does); the torch plugin's
reserved env (PET_*) and numProcPerNode values; override targets and containers must exist
in the runtime, no env for the `node` container through an override; overrides change only
while suspended.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from typing import Any

from kubernetes.utils import parse_quantity

from . import errors as E
from .cel import cel_errors
from .controller import (
    Controller,
    condition_true,
    find_condition,
    owner_ref,
    remove_condition,
    set_condition,
)
from .crds import TRAINER_RELEASES, crd_schema, load_crds
from .errors import FieldError, GoLiteral
from .patches import strategic_merge_patch
from .registry import Registry
from .resources import ResourceInfo
from .store import Obj
from .timeutil import now_ns, parse_rfc3339, rfc3339
from .validation import apply_defaults, dns1123_subdomain, schema_errors, unknown_fields

GROUP = "trainer.kubeflow.org"
WEBHOOK = "validator.trainjob.trainer.kubeflow.org"
ANCESTOR = "trainer.kubeflow.org/trainjob-ancestor-step"
NODE = "node"
RESERVED_CONTAINERS = ("dataset-initializer", "model-initializer", NODE)
TORCH_PORT = 29500
TORCH_ENV = (
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
)
TORCHTUNE_ENTRYPOINT = ["tune", "run"]
COMPLETION_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
DEFAULT_IMAGE = "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"
RELEASES = ("v2.0", "v2.1", "v2.2", "v2.3")
OVERRIDE_FIELD = {
    "v2.0": "podSpecOverrides",
    "v2.1": "podTemplateOverrides",
    "v2.2": "runtimePatches",
    "v2.3": "runtimePatches",
}
OVERRIDE_TYPE = {
    "podSpecOverrides": "PodSpecOverride",
    "podTemplateOverrides": "PodTemplateOverride",
    "runtimePatches": "RuntimePatch",
}
RUNTIME_KINDS = {
    "ClusterTrainingRuntime": "clustertrainingruntimes",
    "TrainingRuntime": "trainingruntimes",
}
SUSPENDED_MESSAGE = "TrainJob is suspended"
RESUMED_MESSAGE = "TrainJob is resumed"
DEADLINE_MESSAGE = "TrainJob exceeded its active deadline"


def torch_runtime(
    name: str = "torch-distributed",
    image: str = DEFAULT_IMAGE,
    num_nodes: int = 1,
    backoff_limit: int | None = None,
    namespace: str | None = None,
    command: list[str] | None = None,
) -> Obj:
    """The default `torch-distributed` runtime (v2.3 manifests); namespace -> TrainingRuntime."""
    container: Obj = {"name": NODE, "image": image}
    if command:
        container["command"] = list(command)
    job_spec: Obj = {"template": {"spec": {"containers": [container]}}}
    if backoff_limit is not None:
        job_spec["backoffLimit"] = backoff_limit
    meta: Obj = {"name": name, "labels": {"trainer.kubeflow.org/framework": "torch"}}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "TrainingRuntime" if namespace else "ClusterTrainingRuntime",
        "metadata": meta,
        "spec": {
            "mlPolicy": {"numNodes": num_nodes, "torch": {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": NODE,
                            "template": {
                                "metadata": {"labels": {ANCESTOR: "trainer"}},
                                "spec": job_spec,
                            },
                        }
                    ]
                }
            },
        },
    }


# -- Go renderings of bad values -----------------------------------------------------------
def _go_ptr(kind: str, value: Any) -> str:
    if value is None:
        return f"({kind})(nil)"
    return f"({kind})(0xc{abs(hash(json.dumps(value, sort_keys=True))) % (1 << 36):09x})"


def _go_env(env: list[Obj]) -> GoLiteral:
    items = [
        f"v1.EnvVar{{Name:{json.dumps(e.get('name', ''))}, Value:{json.dumps(e.get('value', ''))}, "
        f"ValueFrom:{_go_ptr('*v1.EnvVarSource', e.get('valueFrom'))}}}"
        for e in env
    ]
    return GoLiteral("[]v1.EnvVar{" + ", ".join(items) + "}")


def _go_runtime_ref(ref: Obj) -> GoLiteral:
    return GoLiteral(
        f"v1alpha1.RuntimeRef{{Name:{json.dumps(ref.get('name', ''))}, "
        f"APIGroup:{_go_ptr('*string', ref.get('apiGroup'))}, "
        f"Kind:{_go_ptr('*string', ref.get('kind'))}}}"
    )


def _go_list(type_name: str, value: Any) -> GoLiteral:
    return GoLiteral(f"[]v1alpha1.{type_name}{json.dumps(value, separators=(',', ':'))}")


def _go_intstr(value: Any) -> GoLiteral:
    if isinstance(value, int):
        return GoLiteral(f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}')
    return GoLiteral(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(str(value))}}}")


# -- merging helpers -----------------------------------------------------------------------
def upsert(items: list[Obj], new: list[Obj], key: str = "name") -> list[Obj]:
    """apply.UpsertEnvVars & co.: replace by key, append the rest in order."""
    out = [copy.deepcopy(i) for i in items]
    for item in new:
        for i, old in enumerate(out):
            if old.get(key) == item.get(key):
                out[i] = copy.deepcopy(item)
                break
        else:
            out.append(copy.deepcopy(item))
    return out


def _containers(pod_spec: Obj, group: str) -> list[Obj]:
    return [c for c in pod_spec.get(group) or [] if isinstance(c, dict)]


def _merge_into(target: Obj, patch: Obj) -> None:
    """strategicpatch.StrategicMergePatch of `patch` onto `target`, in place: maps merge,
    lists of containers, env, volumes, volumeMounts, imagePullSecrets, schedulingGates merge
    by their keys, other lists (tolerations, nodeSelectorTerms) are replaced."""
    merged = strategic_merge_patch(target, patch)
    target.clear()
    target.update(merged)


def _quantity_ceil(value: Any) -> int:
    try:
        return int(math.ceil(parse_quantity(value)))
    except (ValueError, TypeError):
        return 0


def resolve_nproc(npp: Any, resources: Obj | None) -> str:
    """The torch plugin's numProcPerNode: `auto` -> CPUs unless a GPU is asked for."""
    if resources is None:
        return str(npp)
    text = str(npp)
    if text == "auto":

        def use_cpu(res: Obj) -> bool:
            return not any("gpu" in k.lower() for k in res)

        fallback: Any = "auto"
    elif text == "cpu":

        def use_cpu(res: Obj) -> bool:
            return "cpu" in res

        fallback = 1
    else:

        def use_cpu(res: Obj) -> bool:
            return False

        fallback = npp

    def calculate(res: Obj | None) -> tuple[Any, bool]:
        if res is not None:
            if use_cpu(res):
                return max(1, _quantity_ceil(res.get("cpu", 0))), True
            return fallback, False
        return 1, False

    value, used = calculate(resources.get("limits"))
    if not used:
        value, _ = calculate(resources.get("requests"))
    return str(value)


class Trainer:
    """The trainer's webhook (registered on the registry) and its TrainJob controller."""

    def __init__(self, registry: Registry, release: str = "v2.3", missing_runtime: str = "deny"):
        if release not in RELEASES:
            raise ValueError(f"trainer_release must be one of {', '.join(RELEASES)}")
        if missing_runtime not in ("deny", "admit"):
            raise ValueError('missing_runtime must be "deny" or "admit"')
        self.registry = registry
        self.release = release
        self.override_field = OVERRIDE_FIELD[release]
        self.missing_runtime = missing_runtime
        registry.add_admission("trainjobs", validate=self.validate, mutate=self.default)

    # -- lookups ------------------------------------------------------------------------
    def runtime_for(self, tj: Obj) -> tuple[str, Obj | None]:
        """(registry key "Kind.group", the runtime object or None)."""
        ref = (tj.get("spec") or {}).get("runtimeRef") or {}
        kind = ref.get("kind") or "ClusterTrainingRuntime"
        group = ref.get("apiGroup") or GROUP
        key = f"{kind}.{group}"
        if group != GROUP or kind not in RUNTIME_KINDS:
            return key, None
        plural = RUNTIME_KINDS[kind]
        namespace = tj["metadata"].get("namespace") if kind == "TrainingRuntime" else None
        try:
            self.registry.by_plural(plural)
        except KeyError:
            return key, None
        return key, self.registry.store.get(plural, namespace, ref.get("name", ""))

    @staticmethod
    def supported(key: str) -> bool:
        return key in (f"{k}.{GROUP}" for k in RUNTIME_KINDS)

    @staticmethod
    def not_found_text(tj: Obj) -> str:
        ref = tj["spec"].get("runtimeRef") or {}
        kind = ref.get("kind") or "ClusterTrainingRuntime"
        return f'{RUNTIME_KINDS[kind]}.{GROUP} "{ref.get("name", "")}" not found'

    # -- webhook ------------------------------------------------------------------------
    def default(self, info: ResourceInfo, tj: Obj, old: Obj | None) -> list[str]:
        """defaulter.trainjob.trainer.kubeflow.org: runtimePatches[].time."""
        now = rfc3339()
        old_by_manager = {
            p.get("manager"): p for p in ((old or {}).get("spec") or {}).get("runtimePatches") or []
        }
        for patch in (tj.get("spec") or {}).get("runtimePatches") or []:
            if not isinstance(patch, dict):
                continue
            prev = old_by_manager.get(patch.get("manager"))
            if prev is not None:
                a = {k: v for k, v in prev.items() if k != "time"}
                b = {k: v for k, v in patch.items() if k != "time"}
                if a == b:
                    patch["time"] = prev.get("time") or now
                    continue
            patch.setdefault("time", now)
        return []

    def validate(self, info: ResourceInfo, tj: Obj, old: Obj | None) -> list[str]:
        key, runtime = self.runtime_for(tj)
        if not self.supported(key):
            raise self.denial(f"unsupported runtime: {key}")
        errs: list[FieldError] = []
        if runtime is None:
            if self.missing_runtime == "admit":
                return []
            ref = tj["spec"].get("runtimeRef") or {}
            kind = ref.get("kind") or "ClusterTrainingRuntime"
            lower = kind[0].lower() + kind[1:]
            path = "spec.RuntimeRef" if kind == "ClusterTrainingRuntime" else "spec.runtimeRef"
            errs.append(
                E.invalid(
                    path,
                    _go_runtime_ref(ref),
                    f"{self.not_found_text(tj)}: specified {lower} must be created before the "
                    "TrainJob is created",
                )
            )
            raise self.denial(E.aggregate([str(e) for e in errs]))
        errs += self.torch_errors(tj, runtime)
        errs += self.override_errors(self.override_field, tj, old, runtime)
        if errs:
            raise self.denial(E.aggregate([str(e) for e in errs]))
        return []

    @staticmethod
    def denial(message: str) -> E.StatusError:
        return E.StatusError(
            403, "Forbidden", f'admission webhook "{WEBHOOK}" denied the request: {message}'
        )

    @staticmethod
    def torch_errors(tj: Obj, runtime: Obj) -> list[FieldError]:
        ml = (runtime.get("spec") or {}).get("mlPolicy") or {}
        trainer = (tj.get("spec") or {}).get("trainer")
        if "torch" not in ml or not isinstance(trainer, dict):
            return []
        errs: list[FieldError] = []
        npp = trainer.get("numProcPerNode")
        if isinstance(npp, str) and npp not in ("auto", "cpu", "gpu"):
            errs.append(
                E.invalid(
                    "spec.trainer.numProcPerNode",
                    _go_intstr(npp),
                    "must have an int value or [auto cpu gpu]",
                )
            )
        if trainer.get("command") != TORCHTUNE_ENTRYPOINT:
            env = [e for e in trainer.get("env") or [] if isinstance(e, dict)]
            reserved = sorted({str(e["name"]) for e in env if e.get("name") in TORCH_ENV})
            if reserved:
                errs.append(
                    E.invalid(
                        "spec.trainer.env",
                        _go_env(env),
                        "must not have reserved envs, invalid envs configured: "
                        f"[{' '.join(reserved)}]",
                    )
                )
        return errs

    @classmethod
    def override_errors(
        cls, field: str, tj: Obj, old: Obj | None, runtime: Obj
    ) -> list[FieldError]:
        """The JobSet plugin's checks of the pod-override field `field`."""
        spec = tj.get("spec") or {}
        overrides = spec.get(field) or []
        path = f"spec.{field}"
        bad = _go_list(OVERRIDE_TYPE[field], overrides)
        rjobs: dict[str, set[str]] = {}
        for rjob in ((runtime.get("spec") or {}).get("template") or {}).get("spec", {}).get(
            "replicatedJobs"
        ) or []:
            pod = ((rjob.get("template") or {}).get("spec") or {}).get("template") or {}
            names = {
                c.get("name")
                for g in ("initContainers", "containers")
                for c in (pod.get("spec") or {}).get(g) or []
            }
            rjobs[rjob.get("name")] = names
        errs: list[FieldError] = []
        if old is not None:
            old_spec = old.get("spec") or {}
            if old_spec.get(field) != overrides and not (
                old_spec.get("suspend") or spec.get("suspend")
            ):
                what = field[0].upper() + field[1:]
                tail = " before or after the update" if field == "runtimePatches" else ""
                errs.append(
                    E.forbidden(
                        path, f"{what} can only be modified when the TrainJob is suspended{tail}"
                    )
                )
        for item in overrides:
            if not isinstance(item, dict):
                continue
            for target, pod_spec in cls._targets(field, item):
                if target not in rjobs:
                    what = "replicated job" if field == "runtimePatches" else "targetJob"
                    errs.append(
                        E.invalid(
                            path,
                            bad,
                            f"must not have {what} that doesn't exist in the runtime job template",
                        )
                    )
                    continue
                for group, word in (
                    ("initContainers", "initContainer"),
                    ("containers", "container"),
                ):
                    for c in pod_spec.get(group) or []:
                        if c.get("name") not in rjobs[target]:
                            errs.append(
                                E.invalid(
                                    path,
                                    bad,
                                    f"must not have {word} that doesn't exist in the runtime job "
                                    f"{target}",
                                )
                            )
                        elif (
                            group == "containers"
                            and c.get("env")
                            and c.get("name") in RESERVED_CONTAINERS
                        ):
                            errs.append(
                                E.invalid(
                                    path,
                                    bad,
                                    "must not have envs for the dataset-initializer, "
                                    "model-initializer, node containers",
                                )
                            )
        return errs

    @staticmethod
    def _targets(field: str, item: Obj) -> list[tuple[str, Obj]]:
        """(replicated job name, pod spec patch) pairs of one override."""
        if field == "runtimePatches":
            spec = ((item.get("trainingRuntimeSpec") or {}).get("template") or {}).get("spec") or {}
            out = []
            for rjob in spec.get("replicatedJobs") or []:
                pod = (((rjob.get("template") or {}).get("spec") or {}).get("template") or {}).get(
                    "spec"
                ) or {}
                out.append((rjob.get("name"), pod))
            return out
        pod = item.get("spec") or {} if field == "podTemplateOverrides" else item
        return [(t.get("name"), pod) for t in item.get("targetJobs") or []]

    # -- building the JobSet ------------------------------------------------------------
    def build_jobset(self, tj: Obj, runtime: Obj) -> Obj:
        meta = tj["metadata"]
        name = meta["name"]
        spec = tj.get("spec") or {}
        rspec = runtime.get("spec") or {}
        ml = rspec.get("mlPolicy") or {}
        template = copy.deepcopy(rspec.get("template") or {})
        js_spec = template.get("spec") or {}
        trainer = spec.get("trainer") or {}
        num_nodes = int(trainer.get("numNodes") or ml.get("numNodes") or 1)
        for rjob in js_spec.get("replicatedJobs") or []:
            jt = rjob.setdefault("template", {})
            ancestor = ((jt.get("metadata") or {}).get("labels") or {}).get(ANCESTOR)
            jspec = jt.setdefault("spec", {})
            pod_spec = jspec.setdefault("template", {}).setdefault("spec", {})
            if ancestor != "trainer":
                continue
            rjob["replicas"] = 1
            jspec["parallelism"] = jspec["completions"] = num_nodes
            for c in _containers(pod_spec, "containers"):
                if c.get("name") != NODE:
                    continue
                for key in ("image", "command", "args"):
                    if trainer.get(key) is not None:
                        c[key] = copy.deepcopy(trainer[key])
                res = trainer.get("resourcesPerNode")
                if isinstance(res, dict) and (res.get("limits") or res.get("requests")):
                    c["resources"] = {
                        k: copy.deepcopy(res[k]) for k in ("limits", "requests") if res.get(k)
                    }
                c["env"] = upsert(c.get("env") or [], trainer.get("env") or [])
                if "torch" in ml and trainer.get("command") != TORCHTUNE_ENTRYPOINT:
                    self._torch(c, name, num_nodes, ml, trainer)
        self._apply_overrides(spec, js_spec, template)
        labels = {**((template.get("metadata") or {}).get("labels") or {})}
        annotations = {**((template.get("metadata") or {}).get("annotations") or {})}
        labels.update(spec.get("labels") or {})
        annotations.update(spec.get("annotations") or {})
        if spec.get("labels") or spec.get("annotations"):
            for rjob in js_spec.get("replicatedJobs") or []:
                jmeta = rjob.setdefault("template", {}).setdefault("metadata", {})
                jmeta["labels"] = {**(jmeta.get("labels") or {}), **(spec.get("labels") or {})}
                if spec.get("annotations"):
                    jmeta["annotations"] = {
                        **(jmeta.get("annotations") or {}),
                        **spec["annotations"],
                    }
        if spec.get("suspend") is not None:
            js_spec["suspend"] = bool(spec["suspend"])
        js_meta: Obj = {
            "name": name,
            "namespace": meta["namespace"],
            "ownerReferences": [owner_ref(tj)],
        }
        if labels:
            js_meta["labels"] = labels
        if annotations:
            js_meta["annotations"] = annotations
        return {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "metadata": js_meta,
            "spec": js_spec,
        }

    @staticmethod
    def _torch(c: Obj, name: str, num_nodes: int, ml: Obj, trainer: Obj) -> None:
        npp: Any = (ml.get("torch") or {}).get("numProcPerNode", "auto")
        if trainer.get("numProcPerNode") is not None:
            npp = trainer["numProcPerNode"]
        res = trainer.get("resourcesPerNode")
        nproc = resolve_nproc(npp, res if isinstance(res, dict) else None)
        c["env"] = upsert(
            c.get("env") or [],
            [
                {"name": "PET_NNODES", "value": str(num_nodes)},
                {"name": "PET_NPROC_PER_NODE", "value": nproc},
                {
                    "name": "PET_NODE_RANK",
                    "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}},
                },
                {"name": "PET_MASTER_ADDR", "value": f"{name}-{NODE}-0-0.{name}"},
                {"name": "PET_MASTER_PORT", "value": str(TORCH_PORT)},
            ],
        )
        c["ports"] = upsert(c.get("ports") or [], [{"containerPort": TORCH_PORT}], "containerPort")

    def _apply_overrides(self, spec: Obj, js_spec: Obj, template: Obj) -> None:
        """The release's pod-override field, as upstream's TrainingRuntime merges it: a
        strategic merge patch of the PodSpec (v2.0 podSpecOverrides), of the PodTemplateSpec
        with its labels and annotations (v2.1 podTemplateOverrides), or of the JobSetSpec,
        replicated jobs matched by name (v2.2+ runtimePatches, whose template labels and
        annotations also go to the JobSet)."""
        field = self.override_field
        by_name = {r.get("name"): r for r in js_spec.get("replicatedJobs") or []}
        for item in spec.get(field) or []:
            if not isinstance(item, dict):
                continue
            if field == "runtimePatches":
                tmpl = (item.get("trainingRuntimeSpec") or {}).get("template") or {}
                tmeta = tmpl.get("metadata") or {}
                if tmeta:
                    top = template.setdefault("metadata", {})
                    for key in ("labels", "annotations"):
                        if tmeta.get(key):
                            top[key] = {**(top.get(key) or {}), **tmeta[key]}
                for rjob_patch in (tmpl.get("spec") or {}).get("replicatedJobs") or []:
                    rjob = by_name.get(rjob_patch.get("name"))
                    if rjob is not None:
                        _merge_into(rjob, rjob_patch)
                continue
            for target in item.get("targetJobs") or []:
                rjob = by_name.get(target.get("name"))
                if rjob is None:
                    continue
                pod = (
                    rjob.setdefault("template", {})
                    .setdefault("spec", {})
                    .setdefault("template", {})
                )
                if field == "podTemplateOverrides":
                    patch: Obj = {}
                    meta = {
                        k: v
                        for k, v in (item.get("metadata") or {}).items()
                        if k in ("labels", "annotations") and v is not None
                    }
                    if meta:
                        patch["metadata"] = meta
                    if item.get("spec") is not None:
                        patch["spec"] = item["spec"]
                    _merge_into(pod, patch)
                else:
                    pod_spec = pod.setdefault("spec", {})
                    _merge_into(pod_spec, {k: v for k, v in item.items() if k != "targetJobs"})


class TrainJobController(Controller):
    """TrainJob -> JobSet, status mirrored back."""

    kind_plural = "trainjobs"
    kind = "TrainJob"
    #: (A runtime's events enqueue nothing: the periodic resync picks up TrainJobs waiting
    #: for one.)
    dependents = ("jobsets",)
    component = "trainjob-controller"

    def __init__(self, registry: Registry, trainer: Trainer, resync: float = 0.5) -> None:
        super().__init__(registry, resync)
        self.trainer = trainer

    def reconcile(self, tj: Obj) -> None:
        spec = tj.get("spec") or {}
        if spec.get("managedBy") == "kueue.x-k8s.io/multikueue":
            return
        status = self.status_copy(tj)
        failed = find_condition(status, "Failed")
        if failed is not None and failed.get("reason") != "DeadlineExceeded":
            remove_condition(status, "Failed")
        key, runtime = self.trainer.runtime_for(tj)
        finished = condition_true(status, "Complete") or condition_true(status, "Failed")
        meta = tj["metadata"]
        has_jobset = self.store.exists("jobsets", meta["namespace"], meta["name"])
        if has_jobset or (finished and self.trainer.supported(key)):
            if not finished:
                self._reconcile_jobset(tj, runtime)
        elif not self.trainer.supported(key):
            set_condition(
                status,
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "TrainingRuntimeNotSupported",
                    "message": f"unsupported runtime: {key}",
                },
            )
        elif runtime is None:
            kind = (spec.get("runtimeRef") or {}).get("kind") or "ClusterTrainingRuntime"
            text = f"not found {kind} specified in TrainJob: {self.trainer.not_found_text(tj)}"
            self.event(
                tj,
                "Warning",
                "TrainJobResourcesCreationFailed",
                f"TrainJob resources reconciliation failed: {text}",
            )
        else:
            self._reconcile_jobset(tj, runtime)
        self._suspended(tj, status)
        self._mirror(tj, status)
        self._deadline(tj, status)
        self.write_status(tj, status)

    def _reconcile_jobset(self, tj: Obj, runtime: Obj | None) -> None:
        meta = tj["metadata"]
        current = self.store.get("jobsets", meta["namespace"], meta["name"])
        suspend = bool((tj.get("spec") or {}).get("suspend"))
        if current is not None:
            if bool((current.get("spec") or {}).get("suspend")) != suspend:

                def flip(o: Obj) -> None:
                    o["spec"]["suspend"] = suspend

                self.registry.mutate("jobsets", meta["namespace"], meta["name"], flip)
            return
        if runtime is None:
            return
        jobset = self.trainer.build_jobset(tj, runtime)
        try:
            self.registry.create(self.registry.by_plural("jobsets"), meta["namespace"], jobset)
        except E.StatusError as err:
            if err.code == 409:
                return
            message = f"TrainJob resources reconciliation failed: {err.message:.950}"
            if len(err.message) > 950:
                message += " ..."
            self.event(tj, "Warning", "TrainJobResourcesCreationFailed", message)

    def _suspended(self, tj: Obj, status: Obj) -> None:
        if (tj.get("spec") or {}).get("suspend"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "True",
                    "reason": "Suspended",
                    "message": SUSPENDED_MESSAGE,
                },
            )
        elif condition_true(status, "Suspended"):
            set_condition(
                status,
                {
                    "type": "Suspended",
                    "status": "False",
                    "reason": "Resumed",
                    "message": RESUMED_MESSAGE,
                },
            )

    def _mirror(self, tj: Obj, status: Obj) -> None:
        meta = tj["metadata"]
        js = self.store.get("jobsets", meta["namespace"], meta["name"])
        if js is None:
            return
        jstatus = js.get("status") or {}
        for js_type, tj_type in (("Completed", "Complete"), ("Failed", "Failed")):
            cond = find_condition(jstatus, js_type)
            if cond is not None and cond.get("status") == "True":
                set_condition(status, {**cond, "type": tj_type})
        statuses = [
            {
                k: int(r.get(k, 0)) if k != "name" else r.get("name")
                for k in ("name", "ready", "succeeded", "failed", "active", "suspended")
            }
            for r in jstatus.get("replicatedJobsStatus") or []
        ]
        if statuses:
            status["jobsStatus"] = statuses

    def _deadline(self, tj: Obj, status: Obj) -> None:
        spec = tj.get("spec") or {}
        deadline = spec.get("activeDeadlineSeconds")
        if not deadline or spec.get("suspend"):
            return
        if condition_true(status, "Complete") or condition_true(status, "Failed"):
            return
        start = tj["metadata"].get("creationTimestamp")
        resumed = find_condition(status, "Suspended")
        if resumed is not None and resumed.get("status") == "False":
            start = resumed.get("lastTransitionTime") or start
        if not start or (now_ns() - parse_rfc3339(start)) / 1e9 < int(deadline):
            return
        set_condition(
            status,
            {
                "type": "Failed",
                "status": "True",
                "reason": "DeadlineExceeded",
                "message": DEADLINE_MESSAGE,
            },
        )
        js = self.store.get("jobsets", tj["metadata"]["namespace"], tj["metadata"]["name"])
        if js is not None:
            with contextlib.suppress(E.StatusError):
                self.delete("jobsets", js)


def validate_trainjob(
    obj: Obj, release: str = "v2.3", runtime: Obj | None = None, strict: bool = True
) -> list[str]:
    """Every problem the test cluster would refuse a TrainJob manifest for, as text, without a
    server: unknown fields (with `strict`, as a create with fieldValidation=Strict), names,
    schema and CEL rules of the release's CRD, and the webhook's torch and pod-override rules
    against `runtime` (default: the torch-distributed runtime)."""
    if release not in RELEASES:
        raise ValueError(f"release must be one of {', '.join(RELEASES)}")
    schema = crd_schema(
        load_crds(None, (TRAINER_RELEASES[release],))["trainjobs.trainer.kubeflow.org"]
    )
    body = copy.deepcopy(obj)
    body.pop("status", None)
    unknown = unknown_fields(schema, body, prune=not strict)
    problems = [f'unknown field "{p}"' for p in unknown] if strict else []
    name = (body.get("metadata") or {}).get("name", "")
    problems += [f"metadata.name: {r}" for r in dns1123_subdomain(name)] if name else []
    apply_defaults(schema, body)
    problems += [str(e) for e in schema_errors(schema, body)]
    problems += [str(e) for e in cel_errors(schema, body)]
    runtime = runtime or torch_runtime()
    problems += [str(e) for e in Trainer.torch_errors(body, runtime)]
    field = OVERRIDE_FIELD[release]
    problems += [str(e) for e in Trainer.override_errors(field, body, None, runtime)]
    return problems
