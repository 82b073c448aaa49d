"""The resource types the fake API server serves, and the errors named after them."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FieldError, StatusError, aggregate, details, method_not_allowed

ALL_VERBS = frozenset(
    {"create", "get", "list", "watch", "update", "patch", "delete", "deletecollection"}
)


@dataclass(frozen=True)
class ResourceInfo:
    """One REST resource: where it lives, its kind, and how errors name it."""

    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    verbs: frozenset[str] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """GroupResource.String(): `pods`, `pytorchjobs.kubeflow.org`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """GroupKind.String(): `Pod`, `PyTorchJob.kubeflow.org`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def base_path(self, namespace: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"

    def allow(self, verb: str) -> None:
        """405 Method Not Allowed unless the resource serves `verb`."""
        if verb not in self.verbs:
            raise method_not_allowed()

    # Errors named after this resource, as apimachinery's errors.NewXxx build them.
    def _error(self, code: int, reason: str, name: str, message: str) -> StatusError:
        return StatusError(code, reason, message, details(self.group, self.plural, name))

    def not_found(self, name: str) -> StatusError:
        return self._error(404, "NotFound", name, f'{self.qualified} "{name}" not found')

    def already_exists(self, name: str) -> StatusError:
        return self._error(409, "AlreadyExists", name, f'{self.qualified} "{name}" already exists')

    def conflict(self, name: str, why: str) -> StatusError:
        message = f'Operation cannot be fulfilled on {self.qualified} "{name}": {why}'
        return self._error(409, "Conflict", name, message)

    def modified_conflict(self, name: str) -> StatusError:
        return self.conflict(
            name,
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
        )

    def invalid(self, name: str, errors: list[FieldError]) -> StatusError:
        message = f'{self.qualified_kind} "{name}" is invalid: ' + aggregate(
            [str(e) for e in errors]
        )
        return StatusError(
            422,
            "Invalid",
            message,
            details(self.group, self.kind, name, causes=[e.cause() for e in errors]),
        )

    def forbidden(self, name: str, why: str) -> StatusError:
        head = f'{self.qualified} "{name}"' if name else self.qualified
        return self._error(403, "Forbidden", name, f"{head} is forbidden: {why}")


POD_SUBRESOURCES = frozenset({"log", "status"})

CORE: dict[str, ResourceInfo] = {
    "pods": ResourceInfo(
        "pods", "Pod", subresources=POD_SUBRESOURCES, short_names=("po",), status_subresource=True
    ),
    "services": ResourceInfo(
        "services",
        "Service",
        verbs=ALL_VERBS - {"deletecollection"},
        subresources=frozenset({"status"}),
        short_names=("svc",),
        status_subresource=True,
    ),
    "configmaps": ResourceInfo("configmaps", "ConfigMap", short_names=("cm",)),
    "secrets": ResourceInfo("secrets", "Secret"),
    "serviceaccounts": ResourceInfo("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    "persistentvolumeclaims": ResourceInfo(
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        subresources=frozenset({"status"}),
        short_names=("pvc",),
        status_subresource=True,
    ),
    "events": ResourceInfo("events", "Event", short_names=("ev",)),
    "resourcequotas": ResourceInfo("resourcequotas", "ResourceQuota", short_names=("quota",)),
    "namespaces": ResourceInfo(
        "namespaces",
        "Namespace",
        namespaced=False,
        verbs=ALL_VERBS - {"deletecollection"},
        subresources=frozenset({"status"}),
        short_names=("ns",),
        status_subresource=True,
    ),
    "nodes": ResourceInfo(
        "nodes",
        "Node",
        namespaced=False,
        verbs=frozenset({"get", "list", "watch"}),
        short_names=("no",),
    ),
}

JOBS = ResourceInfo(
    "jobs",
    "Job",
    group="batch",
    version="v1",
    subresources=frozenset({"status"}),
    status_subresource=True,
)
# Built-in API groups besides the core one, in the order the real server lists them.
BUILTIN: dict[str, list[ResourceInfo]] = {"batch/v1": [JOBS]}

CRD_RESOURCE = ResourceInfo(
    "customresourcedefinitions",
    "CustomResourceDefinition",
    group="apiextensions.k8s.io",
    namespaced=False,
    verbs=frozenset({"get", "list", "watch"}),
    short_names=("crd", "crds"),
)
BUILTIN["apiextensions.k8s.io/v1"] = [CRD_RESOURCE]

PRIORITY_CLASSES = ResourceInfo(
    "priorityclasses",
    "PriorityClass",
    group="scheduling.k8s.io",
    namespaced=False,
    short_names=("pc",),
)
BUILTIN["scheduling.k8s.io/v1"] = [PRIORITY_CLASSES]


def custom_resource(crd: dict) -> ResourceInfo:
    """A ResourceInfo from a CustomResourceDefinition (first served version)."""
    spec = crd["spec"]
    version = next(v for v in spec["versions"] if v.get("served", True))
    return ResourceInfo(
        plural=spec["names"]["plural"],
        kind=spec["names"]["kind"],
        group=spec["group"],
        version=version["name"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        subresources=frozenset(version.get("subresources", {}) or {}),
        short_names=tuple(spec["names"].get("shortNames", ())),
        status_subresource="status" in (version.get("subresources") or {}),
        custom=True,
    )
