"""API semantics on top of the store: what create/update/patch/delete mean per resource.

Shared by the HTTP handlers and the in-process controllers (operator, kubelet, garbage
collector), so a pod the operator creates goes through the same defaulting and validation
as one a client posts, and a deletion is graceful whoever asks for it.
"""

from __future__ import annotations

import base64
import builtins
import copy
import json
import random
import uuid
from pathlib import Path
from typing import Any

import yaml

from . import errors as E
from . import storage
from .admission import (
    admit_priority,
    admit_priority_class,
    admit_service_account,
    default_priority_class,
    default_toleration_seconds,
    priority_class_errors,
)
from .cel import cel_errors
from .configdata import configmap_errors, default_secret, secret_errors
from .crds import DEFAULT_RELEASES, crd_schema, load_crds, pod_spec_schema
from .patches import json_patch, merge_patch, strategic_merge_patch
from .podsecurity import admit_namespace, admit_pod, admit_workload
from .quota import check_pod_quota
from .resources import BUILTIN, CORE, CRD_RESOURCE, ResourceInfo, custom_resource
from .selectors import compile_selectors
from .store import Obj, Store
from .timeutil import now_ns, rfc3339
from .validation import (
    apply_defaults,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    pod_errors,
    schema_errors,
    strict_decoding_error,
    unknown_fields,
    webhook_denial,
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Objects whose DELETE answers with the object rather than a Status (ReturnDeletedObject).
RETURNS_DELETED_OBJECT = {
    "pods",
    "services",
    "namespaces",
    "persistentvolumeclaims",
    "serviceaccounts",
}
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# API groups whose unknown fields are dropped (Warn) unless the request asks for Strict,
# whatever `strict` says: the real rule, which a client of several releases relies on.
LENIENT_GROUPS = frozenset({"trainer.kubeflow.org", "jobset.x-k8s.io"})
# An admission hook: (resource info, object, old object or None) -> warnings; raises a
# StatusError to refuse. Mutating hooks run before schema validation, validating after.
AdmissionHook = Any


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise E.bad_request("metadata must be an object")
    return meta


def image_pull_policy(image: str) -> str:
    """The API default: Always for :latest or untagged images, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def qos_class(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req) or bool(lim)
        for r in ("cpu", "memory"):
            if r not in lim or str(req.get(r, lim[r])) != str(lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class Registry:
    """Resource semantics: defaulting, validation, admission, graceful deletion."""

    def __init__(
        self,
        store: Store,
        crds_dir: Path | None = None,
        strict: bool = True,
        releases: tuple[str, ...] = DEFAULT_RELEASES,
    ) -> None:
        self.store = store
        self.strict = strict
        self.crds = load_crds(crds_dir, releases)
        self.pod_schema = pod_spec_schema(crds_dir)
        self.mutators: dict[str, list[AdmissionHook]] = {}
        self.validators: dict[str, list[AdmissionHook]] = {}
        self._custom: dict[str, ResourceInfo] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._ips = iter(range(1, 65000))

    # -- resource discovery --------------------------------------------------------------
    def install_crd(self, name: str) -> Obj:
        crd = copy.deepcopy(self.crds[name])
        info = custom_resource(crd)
        self._custom[info.plural] = info
        self._schemas[info.plural] = crd_schema(crd)
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": names,
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": rfc3339(),
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
        }
        self._stamp(crd)
        existing = self.store.get(CRD_RESOURCE.plural, None, name)
        if existing is not None:
            return existing
        stored = self.store.insert(CRD_RESOURCE.plural, crd)
        assert stored is not None
        return stored

    def uninstall_crd(self, name: str) -> None:
        """Remove the CRD and, as the real server does, every object of its kind."""
        crd = self.crds[name]
        plural = crd["spec"]["names"]["plural"]
        self._custom.pop(plural, None)
        self._schemas.pop(plural, None)
        items, _ = self.store.list(plural)
        for item in items:
            self.store.remove(plural, item["metadata"].get("namespace"), item["metadata"]["name"])
        self.store.remove(CRD_RESOURCE.plural, None, name)

    def resource(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        if group == "" and version == "v1":
            return CORE.get(plural)
        for info in BUILTIN.get(f"{group}/{version}", []):
            if info.plural == plural:
                return info
        custom = self._custom.get(plural)
        if custom and custom.group == group and custom.version == version:
            return custom
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        """The resource of `kind` objects under `api_version` ("v1", "group/version")."""
        infos = [
            *CORE.values(),
            *(i for gv in BUILTIN.values() for i in gv),
            *self._custom.values(),
        ]
        return next((i for i in infos if i.api_version == api_version and i.kind == kind), None)

    def by_plural(self, plural: str) -> ResourceInfo:
        info = CORE.get(plural) or self._custom.get(plural)
        if info is None:
            info = next((i for gv in BUILTIN.values() for i in gv if i.plural == plural), None)
        if info is None:
            raise KeyError(f"unknown resource {plural!r}")
        return info

    def custom_resources(self) -> list[ResourceInfo]:
        return list(self._custom.values())

    def schema(self, plural: str) -> dict[str, Any] | None:
        """The served openAPIV3Schema of an installed custom resource."""
        return self._schemas.get(plural)

    def add_admission(
        self, plural: str, validate: AdmissionHook = None, mutate: AdmissionHook = None
    ) -> None:
        """Register an admission webhook's work for a resource (see AdmissionHook)."""
        if mutate is not None:
            self.mutators.setdefault(plural, []).append(mutate)
        if validate is not None:
            self.validators.setdefault(plural, []).append(validate)

    # -- reads ---------------------------------------------------------------------------
    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(info.plural, namespace if info.namespaced else None, name)
        if obj is None:
            raise info.not_found(name)
        return obj

    def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        predicate = compile_selectors(info.plural, label_selector, field_selector)
        items, rv = self.store.list(info.plural, namespace if info.namespaced else None)
        start_after = None
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token + "=="))
                start_after, token_rv = tuple(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError) as exc:
                raise E.bad_request(f"continue key is not valid: {exc}") from exc
            if token_rv < self.store.oldest_available():
                raise E.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
        selected = []
        for item in items:
            key = (item["metadata"].get("namespace", ""), item["metadata"]["name"])
            if start_after is not None and key <= start_after:
                continue
            if predicate(item):
                selected.append(item)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and limit > 0 and len(selected) > limit:
            remaining = len(selected) - limit
            selected = selected[:limit]
            last = selected[-1]["metadata"]
            token = {"rv": rv, "start": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = remaining
        if not info.custom:
            for item in selected:
                item.pop("kind", None)
                item.pop("apiVersion", None)
        return {
            "kind": info.list_kind,
            "apiVersion": info.api_version,
            "metadata": meta,
            "items": selected,
        }

    # -- create --------------------------------------------------------------------------
    def _stamp(self, obj: Obj) -> None:
        meta = _meta(obj)
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())  # a Job's selector already names it
        meta["creationTimestamp"] = rfc3339()

    def _check_namespace(self, info: ResourceInfo, namespace: str, name: str) -> None:
        ns = self.store.get("namespaces", None, namespace)
        if ns is None:
            raise CORE["namespaces"].not_found(namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise info.forbidden(
                name,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )

    def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        body: Any,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, builtins.list[str]]:
        """POST: returns the stored object and any Warning header texts."""
        info.allow("create")
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_type(info, obj)
        meta = _meta(obj)
        if info.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise E.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        for key in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "generation",
            "managedFields",
        ):
            meta.pop(key, None)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        if generated:
            meta["name"] = self._generate(meta["generateName"])
        if not meta.get("name"):
            raise info.invalid(
                "", [E.required("metadata.name", "name or generateName is required")]
            )
        if info.namespaced:
            assert namespace is not None
            self._check_namespace(info, namespace, meta["name"])
        # mutating admission refuses a pod by the name the request gave (its generateName)
        shown = meta["generateName"] if generated else meta["name"]
        warnings = self._admit(info, obj, None, field_validation, shown)
        self._stamp(obj)
        if info.custom:
            meta["generation"] = 1
        if info.plural == "persistentvolumeclaims":
            storage.provision(obj)
        if dry_run:
            return obj, warnings
        for _ in range(8):
            stored = self.store.insert(info.plural, obj)
            if stored is not None:
                if info.plural == "namespaces":
                    self._namespace_created(stored)
                return stored, warnings
            if not generated:
                break
            meta["name"] = self._generate(meta["generateName"])
        raise info.already_exists(meta["name"])

    def _namespace_created(self, ns: Obj) -> None:
        """The serviceaccount controller's work, at once rather than a moment later: the
        `default` ServiceAccount of every namespace."""
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": ns["metadata"]["name"]},
        }
        self._stamp(account)
        self.store.insert("serviceaccounts", account)

    def _generate(self, prefix: str) -> str:
        return prefix[:58] + "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(5))

    def _check_type(self, info: ResourceInfo, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != info.kind:
            raise E.bad_request(
                f'{kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"the object provided is unrecognized (must be of type {info.kind})"
            )
        if api_version and api_version != info.api_version:
            raise E.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({info.api_version})"
            )
        obj["kind"], obj["apiVersion"] = info.kind, info.api_version

    def _unknown(
        self, info: ResourceInfo, schema: dict[str, Any], value: Any, prefix: str, directive: str
    ) -> builtins.list[str]:
        paths = unknown_fields(schema, value, prefix)
        if not paths:
            return []
        strict = self.strict and info.group not in LENIENT_GROUPS
        if strict or directive == "Strict":
            raise strict_decoding_error(info.kind, info.version, paths)
        unknown_fields(schema, value, prefix, prune=True)
        return [f'unknown field "{p}"' for p in paths] if directive == "Warn" else []

    def _admit(
        self,
        info: ResourceInfo,
        obj: Obj,
        old: Obj | None,
        field_validation: str | None,
        shown: str | None = None,
    ) -> builtins.list[str]:
        """Decode strictness, defaulting, mutating admission, validation, validating
        admission and webhooks: in that order. `shown`: the name refusals give."""
        directive = field_validation or "Warn"
        if directive not in ("Strict", "Warn", "Ignore"):
            raise E.bad_request(
                f"fieldValidation must be one of Ignore, Warn or Strict, got {directive}"
            )
        warnings: list[str] = []
        name = obj["metadata"]["name"]
        if info.custom:
            schema = self._schemas[info.plural]
            warnings += self._unknown(info, schema, obj, "", directive)
            apply_defaults(schema, obj)
            for hook in self.mutators.get(info.plural, []):
                warnings += hook(info, obj, old) or []
            errs = []
            reasons = dns1123_subdomain(name)
            if reasons:
                errs.append(E.invalid("metadata.name", name, reasons[-1]))
            errs += schema_errors(schema, obj)
            errs += cel_errors(schema, obj, old) if old is not None else cel_errors(schema, obj)
            if errs:
                raise info.invalid(name, errs)
            denial = webhook_denial(obj)
            if denial is not None:
                raise denial
            for hook in self.validators.get(info.plural, []):
                warnings += hook(info, obj, old) or []
        elif info.plural == "jobs":
            spec = obj.get("spec")
            template = (spec or {}).get("template") if isinstance(spec, dict) else None
            pod_spec = (template or {}).get("spec") if isinstance(template, dict) else None
            if self.pod_schema is not None and isinstance(pod_spec, dict):
                warnings += self._unknown(
                    info, self.pod_schema, pod_spec, "spec.template.spec", directive
                )
            self._default_job(obj, old)
            errs = self._job_errors(obj)
            if errs:
                raise info.invalid(name, errs)
            for hook in self.validators.get(info.plural, []):
                warnings += hook(info, obj, old) or []
            warnings += admit_workload("jobs", self._namespace_of(obj), obj)  # PodSecurity
        elif info.plural == "pods":
            if self.pod_schema is not None and isinstance(obj.get("spec"), dict):
                warnings += self._unknown(info, self.pod_schema, obj["spec"], "spec", directive)
            self._default_pod(obj, old)
            if old is None:  # the ServiceAccount, Priority, DefaultTolerationSeconds plugins
                shown = shown if shown is not None else name
                admit_service_account(obj, shown, self._service_account)
                admit_priority(obj, shown, self.store.list("priorityclasses")[0])
                default_toleration_seconds(obj)
                # MutatingAdmissionWebhook (after the built-in plugins): what the webhooks
                # add is decoded, so defaulted, again
                hooks = self.mutators.get("pods", [])
                for hook in hooks:
                    warnings += hook(info, obj, old) or []
                if hooks:
                    self._default_pod(obj, old)
            errs = pod_errors(obj)
            name_errs = dns1123_subdomain(name)
            if name_errs:
                errs.insert(0, E.invalid("metadata.name", name, name_errs[-1]))
            if errs:
                raise info.invalid(name, errs)
            # the PodSecurity admission plugin, then the ResourceQuota one (it runs last)
            warnings += admit_pod(self._namespace_of(obj), obj, old)
            if old is None:
                namespace = obj["metadata"]["namespace"]
                quotas, _ = self.store.list("resourcequotas", namespace)
                if quotas:
                    pods, _ = self.store.list("pods", namespace)
                    check_pod_quota(quotas, pods, obj)
        elif info.plural == "configmaps":
            errs = configmap_errors(obj)
            reasons = dns1123_subdomain(name)
            if reasons:
                errs.insert(0, E.invalid("metadata.name", name, reasons[-1]))
            if errs:
                raise info.invalid(name, errs)
        elif info.plural == "secrets":
            default_secret(obj, old)
            errs = secret_errors(obj, old)
            reasons = dns1123_subdomain(name)
            if reasons:
                errs.insert(0, E.invalid("metadata.name", name, reasons[-1]))
            if errs:
                raise info.invalid(name, errs)
        elif info.plural == "persistentvolumeclaims":
            storage.default_claim(obj, old)
            errs = storage.claim_errors(obj, old)
            reasons = dns1123_subdomain(name)
            if reasons:
                errs.insert(0, E.invalid("metadata.name", name, reasons[-1]))
            if errs:
                raise info.invalid(name, errs)
        elif info.plural == "priorityclasses":
            default_priority_class(obj)
            errs = priority_class_errors(obj, old)
            reasons = dns1123_subdomain(name)
            if reasons:
                errs.insert(0, E.invalid("metadata.name", name, reasons[-1]))
            if errs:
                raise info.invalid(name, errs)
            admit_priority_class(obj, old, self.store.list("priorityclasses")[0])
        elif info.plural == "services":
            reasons = dns1035_label(name)
            if reasons:
                raise info.invalid(name, [E.invalid("metadata.name", name, reasons[-1])])
            self._default_service(obj, old)
        elif info.plural == "namespaces":
            reasons = dns1123_label(name)
            if reasons:
                raise info.invalid(name, [E.invalid("metadata.name", name, reasons[-1])])
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            _meta(obj).setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            warnings += admit_namespace(  # PodSecurity: its labels, and existing pods
                obj, old, lambda: self.store.list("pods", name)[0]
            )
        else:
            reasons = dns1123_subdomain(name) if info.plural != "events" else []
            if reasons:
                raise info.invalid(name, [E.invalid("metadata.name", name, reasons[-1])])
        return warnings

    def _service_account(self, namespace: str, name: str) -> Obj | None:
        return self.store.get("serviceaccounts", namespace, name)

    def _namespace_of(self, obj: Obj) -> Obj:
        return self.store.get("namespaces", None, obj["metadata"].get("namespace", "")) or {}

    def _default_pod(self, pod: Obj, old: Obj | None) -> None:
        spec = pod.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        if old is not None:  # set at creation by admission (admission.py); kept by updates
            for key in ("priority", "preemptionPolicy", "tolerations"):
                if key in old.get("spec", {}):
                    spec.setdefault(key, copy.deepcopy(old["spec"][key]))
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if not isinstance(c, dict):
                continue
            c.setdefault("imagePullPolicy", image_pull_policy(c.get("image") or ""))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            res = c.setdefault("resources", {})
            for r, q in (res.get("limits") or {}).items():
                res.setdefault("requests", {}).setdefault(r, q)
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
        for v in spec.get("volumes") or []:
            for source in ("configMap", "secret"):
                if isinstance(v.get(source), dict):
                    v[source].setdefault("defaultMode", 420)
        if old is None:
            pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod)}

    def _default_job(self, job: Obj, old: Obj | None) -> None:
        """batch/v1 Job defaults and the generated selector (manualSelector unset)."""
        spec = job.setdefault("spec", {})
        if old is not None:
            for key in ("selector", "completionMode", "completions"):
                if key in old.get("spec", {}):
                    spec[key] = copy.deepcopy(old["spec"][key])
        if "completions" not in spec and "parallelism" not in spec:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("suspend", False)
        spec.setdefault(
            "podReplacementPolicy",
            "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed",
        )
        uid = old["metadata"]["uid"] if old is not None else job["metadata"].get("uid")
        if uid is None:
            uid = job["metadata"]["uid"] = str(uuid.uuid4())
        name = job["metadata"]["name"]
        generated = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template = spec.setdefault("template", {})
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **generated}
        labels = job["metadata"].setdefault("labels", {})
        for k, v in generated.items():
            labels.setdefault(k, v)
        job.setdefault("status", {})

    @staticmethod
    def _job_errors(job: Obj) -> builtins.list[E.FieldError]:
        errs: list[E.FieldError] = []
        name = job["metadata"]["name"]
        reasons = dns1123_subdomain(name)
        if reasons:
            errs.append(E.invalid("metadata.name", name, reasons[-1]))
        if len(name) > 63:
            errs.append(
                E.invalid(
                    "spec.template.labels",
                    name,
                    "must be no more than 63 characters",
                )
            )
        spec = job["spec"]
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            errs.append(
                E.FieldError(
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired" if policy is None else "FieldValueNotSupported",
                    policy,
                    'supported values: "OnFailure", "Never"',
                )
            )
        if spec.get("completionMode") not in ("NonIndexed", "Indexed"):
            errs.append(
                E.not_supported(
                    "spec.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"]
                )
            )
        for key in ("parallelism", "completions", "backoffLimit"):
            v = spec.get(key)
            if v is not None and (not isinstance(v, int) or v < 0):
                errs.append(E.invalid(f"spec.{key}", v, "must be greater than or equal to 0"))
        return errs

    def _default_service(self, svc: Obj, old: Obj | None) -> None:
        spec = svc.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if old is not None:
            spec["clusterIP"] = old["spec"].get("clusterIP")
        elif spec.get("clusterIP") != "None":
            n = next(self._ips)
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        svc.setdefault("status", {"loadBalancer": {}})

    # -- update / patch ------------------------------------------------------------------
    def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, builtins.list[str]]:
        """PUT: optimistic concurrency on metadata.resourceVersion."""
        info.allow("update")
        if not isinstance(body, dict):
            raise E.bad_request("the body of the request must be a JSON object")
        ns = namespace if info.namespaced else None
        with self.store.lock:
            old = self.get(info, ns, name)
            body_name = (body.get("metadata") or {}).get("name")
            if body_name and body_name != name:
                raise E.bad_request(
                    f"the name of the object ({body_name}) does not match the name on the URL "
                    f"({name})"
                )
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv and info.custom:
                raise info.invalid(
                    name,
                    [
                        E.invalid(
                            "metadata.resourceVersion",
                            E.GoLiteral("0x0"),
                            "must be specified for an update",
                        )
                    ],
                )
            return self._replace(info, old, body, subresource, field_validation, dry_run)

    def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        field_validation: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, builtins.list[str]]:
        """PATCH with the four patch types; strategic merge only for built-in types."""
        info.allow("patch")
        ctype = content_type.split(";")[0].strip().lower()
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if not info.custom:
            accepted.append(STRATEGIC_PATCH)
        if ctype not in accepted:
            raise E.unsupported_media_type(accepted)
        try:
            patch = yaml.safe_load(raw) if ctype == APPLY_PATCH else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise E.bad_request(f"error decoding patch: {exc}") from exc
        ns = namespace if info.namespaced else None
        with self.store.lock:
            old = self.store.get(info.plural, ns, name)
            if old is None:
                if ctype == APPLY_PATCH and isinstance(patch, dict):
                    patch.setdefault("metadata", {})["name"] = name
                    return self.create(info, ns, patch, field_validation, dry_run)
                raise info.not_found(name)
            if ctype == JSON_PATCH:
                patched = json_patch(old, patch)
            elif ctype == STRATEGIC_PATCH:
                patched = strategic_merge_patch(old, patch)
            else:
                if not isinstance(patch, dict):
                    raise E.bad_request("patch body must be a JSON object")
                patched = merge_patch(old, patch)
            if not isinstance(patched, dict):
                raise E.bad_request("the patched object must be a JSON object")
            return self._replace(info, old, patched, subresource, field_validation, dry_run)

    def _replace(
        self,
        info: ResourceInfo,
        old: Obj,
        body: Obj,
        subresource: str | None,
        field_validation: str | None,
        dry_run: bool,
    ) -> tuple[Obj, builtins.list[str]]:
        """`old` updated to `body` (a PUT's, or the patched object), under the store's lock:
        a resourceVersion other than the stored one is a conflict."""
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise info.modified_conflict(old["metadata"]["name"])
        new, warnings = self._prepare_update(info, old, body, subresource, field_validation)
        if dry_run:
            return new, warnings
        return self._commit(info, old, new), warnings

    def _prepare_update(
        self,
        info: ResourceInfo,
        old: Obj,
        body: Obj,
        subresource: str | None,
        field_validation: str | None,
    ) -> tuple[Obj, builtins.list[str]]:
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status"))
            if new["status"] is None:
                new.pop("status")
            return new, []
        new = copy.deepcopy(body)
        self._check_type(info, new)
        meta, old_meta = _meta(new), old["metadata"]
        for key in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if info.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        warnings = self._admit(info, new, old, field_validation)
        if info.plural == "pods":
            self._check_pod_update(info, old, new)
        strip = ("metadata", "status")
        if info.custom and {k: v for k, v in new.items() if k not in strip} != {
            k: v for k, v in old.items() if k not in strip
        }:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise info.invalid(
                    meta["name"],
                    [
                        E.forbidden(
                            "metadata.finalizers",
                            f"no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {sorted(added)}",
                        )
                    ],
                )
        return new, warnings

    def _check_pod_update(self, info: ResourceInfo, old: Obj, new: Obj) -> None:
        def masked(spec: dict[str, Any]) -> dict[str, Any]:
            spec = copy.deepcopy(spec)
            for group in ("containers", "initContainers"):
                for c in spec.get(group) or []:
                    c.pop("image", None)
            for key in (
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",  # gates may be removed
            ):
                spec.pop(key, None)
            return spec

        if masked(old.get("spec") or {}) != masked(new.get("spec") or {}):
            raise info.invalid(
                new["metadata"]["name"],
                [
                    E.forbidden(
                        "spec",
                        "pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                        "`spec.tolerations` (only additions to existing tolerations),"
                        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                        "previously negative)",
                    )
                ],
            )

    def _commit(self, info: ResourceInfo, old: Obj, new: Obj) -> Obj:
        """Write under the caller's lock; an object whose deletion is complete goes away."""
        meta = new["metadata"]
        current = self.store.get(info.plural, meta.get("namespace"), meta["name"])
        if current is None:
            raise info.not_found(meta["name"])
        if current["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise info.modified_conflict(meta["name"])
        if self._deletion_complete(info, new):
            removed = self.store.remove(info.plural, meta.get("namespace"), meta["name"])
            assert removed is not None
            return removed
        stored = self.store.replace(info.plural, new)
        assert stored is not None
        return stored

    @staticmethod
    def _deletion_complete(info: ResourceInfo, obj: Obj) -> bool:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return False
        if info.plural == "pods":
            return bool(meta.get("deletionGracePeriodSeconds", 0) == 0)
        if info.plural == "namespaces":
            return not (obj.get("spec") or {}).get("finalizers")
        return True

    def mutate(self, plural: str, namespace: str | None, name: str, fn: Any) -> Obj | None:
        """Controller writes (status, finalizers) without admission; finishes deletions."""
        info = self.by_plural(plural)
        with self.store.lock:
            new = self.store.mutate(plural, namespace, name, fn)
            if new is not None and self._deletion_complete(info, new):
                return self.store.remove(plural, namespace, name)
            return new

    # -- delete --------------------------------------------------------------------------
    def delete(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        propagation: str | None = None,
        grace: int | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE: finalizers for Foreground/Orphan, graceful termination for running pods."""
        info.allow("delete")
        if propagation not in (None, "Foreground", "Background", "Orphan"):
            raise E.StatusError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{propagation}": supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        ns = namespace if info.namespaced else None
        with self.store.lock:
            obj = self.get(info, ns, name)
            meta = obj["metadata"]
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise info.conflict(
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {meta['uid']}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise info.conflict(
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}",
                )
            if dry_run:
                return obj
            finalizers = list(meta.get("finalizers") or [])
            if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if propagation == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            pod_grace = self._pod_grace(obj, grace) if info.plural == "pods" else 0
            deleting = bool(meta.get("deletionTimestamp"))
            if deleting:
                current_grace = meta.get("deletionGracePeriodSeconds", 0)
                if info.plural == "pods" and pod_grace < current_grace:
                    return self._mark_deleted(info, obj, finalizers, pod_grace)
                if finalizers != (meta.get("finalizers") or []):
                    return self._mark_deleted(info, obj, finalizers, current_grace, keep_ts=True)
                return obj
            if finalizers or pod_grace > 0 or info.plural == "namespaces":
                return self._mark_deleted(info, obj, finalizers, pod_grace)
            removed = self.store.remove(info.plural, ns, name)
            assert removed is not None
            return self._deleted_response(info, removed)

    def _pod_grace(self, pod: Obj, grace: int | None) -> int:
        """Unscheduled or finished pods go at once; others wait for the kubelet."""
        if not (pod.get("spec") or {}).get("nodeName"):
            return 0
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        return max(int(grace), 0)

    def _mark_deleted(
        self,
        info: ResourceInfo,
        obj: Obj,
        finalizers: builtins.list[str],
        grace: int,
        keep_ts: bool = False,
    ) -> Obj:
        meta = obj["metadata"]
        if not keep_ts or not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = rfc3339(now_ns() + grace * 1_000_000_000)
        meta["deletionGracePeriodSeconds"] = grace
        if finalizers:
            meta["finalizers"] = finalizers
        if info.plural == "namespaces":
            obj.setdefault("status", {})["phase"] = "Terminating"
        if self._deletion_complete(info, obj):
            removed = self.store.remove(info.plural, meta.get("namespace"), meta["name"])
            assert removed is not None
            return self._deleted_response(info, removed)
        stored = self.store.replace(info.plural, obj)
        assert stored is not None
        return stored

    def _deleted_response(self, info: ResourceInfo, removed: Obj) -> Obj:
        if info.plural in RETURNS_DELETED_OBJECT:
            return removed
        meta = removed["metadata"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": E.details(info.group, info.plural, meta["name"], uid=meta["uid"]),
        }

    def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        propagation: str | None = None,
        grace: int | None = None,
    ) -> Obj:
        info.allow("deletecollection")
        listing = self.list(info, namespace, label_selector, field_selector)
        deleted = []
        for item in listing["items"]:
            try:
                self.delete(
                    info,
                    item["metadata"].get("namespace"),
                    item["metadata"]["name"],
                    propagation,
                    grace,
                )
                deleted.append(item)
            except E.StatusError as exc:
                if exc.code != 404:
                    raise
        listing["items"] = deleted
        return listing
