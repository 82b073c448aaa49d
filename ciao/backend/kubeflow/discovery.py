"""Which Kubeflow runs cells on this cluster: Training Operator v1 (PyTorchJob, TFJob) or
Kubeflow Trainer v2 (TrainJob), asked of the API server's discovery, and which v2 release
(its pod-override field) from the server's OpenAPI document; and whether Katib is there
(its Experiments run `%tune` cells' studies).

Discovery and OpenAPI are readable by every authenticated user (the `system:discovery`
role), so this needs no RBAC beyond what the jobs need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ciao.backend.kubeflow.client import ApiError, Cluster
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.manifests import (
    API_GROUP,
    API_VERSION,
    KINDS,
    TRAINER_GROUP,
    TRAINER_VERSION,
    JobKind,
)
from ciao.backend.kubeflow.trainjob import OVERRIDE_FIELDS, Runtime
from ciao.errors import BackendError

Api = Literal["v1", "v2"]
#: Katib's API version (kubeflow.org/v1beta1: Experiments, Trials, Suggestions).
KATIB_VERSION = "v1beta1"

INSTALL_HINT = (
    "install Kubeflow Trainer v2 (https://www.kubeflow.org/docs/components/trainer/) for "
    "PyTorch, or the Training Operator v1 for TFJob and PyTorchJob"
)
#: The release whose field a TrainJob schema has (v2.2 and v2.3 share runtimePatches).
_RELEASE_OF_FIELD = {"podSpecOverrides": "v2.0", "podTemplateOverrides": "v2.1"}
_RELEASE_OF_FIELD["runtimePatches"] = "v2.3"


@dataclass(frozen=True)
class ServedApis:
    """The Kubeflow resources this API server serves."""

    v1: frozenset[str]  # plurals under kubeflow.org/v1: pytorchjobs, tfjobs
    v2: bool  # trainjobs under trainer.kubeflow.org/v1alpha1

    def describe(self) -> str:
        served = [f"{plural}.{API_GROUP}/{API_VERSION}" for plural in sorted(self.v1)]
        if self.v2:
            served.insert(0, f"trainjobs.{TRAINER_GROUP}/{TRAINER_VERSION}")
        return ", ".join(served) or "no Kubeflow training API"

    def serves(self, kind: JobKind) -> bool:
        return self.v2 if kind.api == "v2" else kind.plural in self.v1


@dataclass(frozen=True)
class ApiChoice:
    """The API a cell runs on, and why (for %config and %dryrun)."""

    api: Api
    why: str


def served_apis(cluster: Cluster) -> ServedApis:
    """Ask discovery which of the two APIs' resources are served."""
    v1 = _resources(cluster, f"/apis/{API_GROUP}/{API_VERSION}")
    v2 = _resources(cluster, f"/apis/{TRAINER_GROUP}/{TRAINER_VERSION}")
    job_plurals = {kind.plural for kind in KINDS.values()}
    return ServedApis(frozenset(v1 & job_plurals), "trainjobs" in v2)


def katib_served(cluster: Cluster) -> bool:
    """Whether Katib's Experiments are served (experiments.kubeflow.org/v1beta1)."""
    return "experiments" in _resources(cluster, f"/apis/{API_GROUP}/{KATIB_VERSION}")


def choose_api(framework: str, configured: str, served: ServedApis) -> ApiChoice:
    """v1 or v2 for a cell of `framework`, by `kubeflow.api` (auto prefers v2 for PyTorch)."""
    plural = KINDS["pytorch" if framework == "pytorch" else "tensorflow"].plural
    has_v1 = plural in served.v1
    on_cluster = f"the cluster serves {served.describe()}"
    if configured == "v1":
        if has_v1:
            return ApiChoice("v1", "kubeflow.api is v1")
        raise BackendError(
            f"kubeflow.api is v1, but {on_cluster}, not {plural}.{API_GROUP}: install the "
            "Training Operator v1, or set kubeflow.api to auto or v2"
        )
    if framework != "pytorch":
        if has_v1:
            why = "TensorFlow cells run as TFJobs (Trainer v2 has no TensorFlow runtime)"
            return ApiChoice("v1", why)
        if served.v2:
            raise BackendError(
                f"{on_cluster}: Kubeflow Trainer v2 has no TensorFlow runtime, so a "
                "TensorFlow cell cannot run here; port the cell to PyTorch (%framework="
                "pytorch), or install the Training Operator v1 for TFJobs"
            )
        raise BackendError(_neither(plural, served, v2=False))
    if configured == "v2":
        if served.v2:
            return ApiChoice("v2", "kubeflow.api is v2")
        raise BackendError(
            f"kubeflow.api is v2, but {on_cluster}, not trainjobs.{TRAINER_GROUP}: install "
            "Kubeflow Trainer v2, or set kubeflow.api to auto or v1"
        )
    if served.v2:
        why = "auto: Kubeflow Trainer v2 (TrainJob) is installed"
        return ApiChoice("v2", why + (", preferred to v1 for PyTorch" if has_v1 else ""))
    if has_v1:
        return ApiChoice("v1", "auto: only the Training Operator v1 (PyTorchJob) is installed")
    raise BackendError(_neither(plural, served, v2=True))


def _neither(plural: str, served: ServedApis, v2: bool) -> str:
    """No API for the cell: what is served and what to install."""
    wanted = f"{plural}.{API_GROUP} (Training Operator v1)"
    if v2:
        wanted = f"trainjobs.{TRAINER_GROUP} (Kubeflow Trainer v2) nor {wanted}"
    return (
        f"no Kubeflow training API for this cell: the cluster serves {served.describe()}, "
        f"neither {wanted}; {INSTALL_HINT}"
    )


def trainer_release(cluster: Cluster, configured: str) -> tuple[str, str]:
    """The installed Trainer v2 release (as far as its TrainJob fields tell), and why."""
    if configured != "auto":
        return configured, f"kubeflow.release is {configured}"
    schema = _trainjob_schema(cluster)
    spec = (schema.get("properties") or {}).get("spec") or {}
    fields = set((spec.get("properties") or {}).keys())
    for field, release in _RELEASE_OF_FIELD.items():
        if field in fields:
            return release, f"the served TrainJob has spec.{field} ({release})"
    raise BackendError(
        "could not tell the Kubeflow Trainer release from the API server's OpenAPI (no "
        f"{', '.join(OVERRIDE_FIELDS.values())} in the TrainJob schema): set kubeflow.release "
        "(v2.0, v2.1, v2.2 or v2.3) in the config"
    )


def find_runtime(cluster: Cluster, name: str) -> Runtime:
    """The runtime called `name`: a ClusterTrainingRuntime, else a TrainingRuntime of the
    namespace; an error listing those that exist when neither does."""
    base = f"/apis/{TRAINER_GROUP}/{TRAINER_VERSION}"
    ns = cluster.namespace
    places = (
        ("ClusterTrainingRuntime", f"{base}/clustertrainingruntimes"),
        ("TrainingRuntime", f"{base}/namespaces/{ns}/trainingruntimes"),
    )
    forbidden = False
    for kind, path in places:
        try:
            cluster.request("GET", f"{path}/{name}")
            return Runtime(name, kind)
        except ApiError as exc:
            if exc.status == 403:
                forbidden = True
            elif exc.status != 404:
                raise explain(exc, "get", path.rsplit("/", 1)[-1], ns, TRAINER_GROUP) from None
    if forbidden:  # cannot look: Trainer's webhook refuses a runtime that does not exist
        return Runtime(name)
    known = []
    for kind, path in places:
        try:
            items = cluster.request("GET", path).get("items") or []
        except ApiError:
            continue
        known += [f"{item['metadata']['name']} ({kind})" for item in items]
    listed = ", ".join(sorted(known)) or "none"
    raise BackendError(
        f"no training runtime {name!r} on the cluster (neither a ClusterTrainingRuntime nor a "
        f"TrainingRuntime in namespace {ns}); the runtimes there: {listed}. Name one with "
        "%runtime=NAME or kubeflow.runtime in the config"
    )


def _resources(cluster: Cluster, path: str) -> set[str]:
    try:
        listing = cluster.request("GET", path)
    except ApiError as exc:
        if exc.status in (404, 503):  # group not installed (or its service is down)
            return set()
        raise explain(exc, "get", "API discovery", cluster.namespace) from None
    return {r.get("name", "") for r in listing.get("resources") or []}


def _trainjob_schema(cluster: Cluster) -> dict[str, Any]:
    """The TrainJob's schema from `/openapi/v3` (the group-version document it points to)."""
    where = f"apis/{TRAINER_GROUP}/{TRAINER_VERSION}"
    try:
        index = cluster.request("GET", "/openapi/v3")
        url = (index.get("paths") or {}).get(where, {}).get("serverRelativeURL") or f"/{where}"
        path, _, query = url.partition("?")
        document = cluster.request("GET", path, query=_query(query))
    except ApiError as exc:
        raise BackendError(
            f"could not read the TrainJob schema from the API server's OpenAPI ({exc}): set "
            "kubeflow.release (v2.0, v2.1, v2.2 or v2.3) in the config"
        ) from None
    schemas = (document.get("components") or {}).get("schemas") or {}
    for name, schema in schemas.items():
        if name.endswith(".TrainJob") and isinstance(schema, dict):
            return schema
    return {}


def _query(text: str) -> dict[str, Any]:
    pairs = (part.partition("=") for part in text.split("&") if part)
    return {key: value for key, _, value in pairs}
