"""The CRDs the test cluster serves: compact structural schemas kept in this repository.

`schemas/*.json` hold, per API release, the structural part of each CRD (types, enums,
required keys, formats, defaults, unknown-field rules, CEL rules), derived from the
operators' CRD manifests by `tools/derive_crd_schemas.py`, with repeated subtrees shared as
definitions. A directory of full CRD manifests ($CIAO_CRDS_DIR, or `crds_dir=`) is read
instead when given (its CRDs replace the built-in ones of the same name).

Releases: `kubeflow-v1` (training operator v1.9: PyTorchJob, TFJob); `trainer-v2.0`,
`trainer-v2.1`, `trainer-v2.3` (the TrainJob CRD of each Kubeflow Trainer release; v2.2 is
served the v2.3 schema: both have `runtimePatches`); `trainer-runtimes` (the v2.3
ClusterTrainingRuntime and TrainingRuntime CRDs, served with every v2 release). The JobSet
CRD (jobset.x-k8s.io/v1alpha2) is built here: its spec is the JobSetSpec schema embedded in
the runtime CRD (`spec.template.spec`), its status is kept as written.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
DEFAULT_RELEASES = ("kubeflow-v1",)
TRAINER_RELEASES = {
    "v2.0": "trainer-v2.0",
    "v2.1": "trainer-v2.1",
    "v2.2": "trainer-v2.3",
    "v2.3": "trainer-v2.3",
}
JOBSET_CRD = "jobsets.jobset.x-k8s.io"
RUNTIMES_RELEASE = "trainer-runtimes"
# libyaml's loader reads full CRD manifests in a fraction of the pure-Python time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _expand(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"$def"}:
            return _expand(defs[node["$def"]], defs)
        return {k: _expand(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, defs) for v in node]
    return node


def _as_crd(compact: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": compact["name"]},
        "spec": {
            "group": compact["group"],
            "scope": compact["scope"],
            "names": compact["names"],
            "versions": [
                {
                    "name": v["name"],
                    "served": v["served"],
                    "storage": v["storage"],
                    "subresources": v["subresources"],
                    "schema": {"openAPIV3Schema": v["schema"]},
                }
                for v in compact["versions"]
            ],
        },
    }


@functools.lru_cache(maxsize=16)
def _load_release(release: str) -> dict[str, dict[str, Any]]:
    doc = json.loads((SCHEMAS / f"{release}.json").read_text())
    defs = doc["definitions"]
    return {c["name"]: _as_crd(_expand(c, defs)) for c in doc["crds"]}


@functools.lru_cache(maxsize=8)
def _load_dir(directory: str) -> dict[str, dict[str, Any]]:
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("*.y*ml")):
        with path.open() as f:
            for doc in yaml.load_all(f, Loader=_LOADER):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds[doc["metadata"]["name"]] = doc
    if not crds:
        raise FileNotFoundError(f"no CustomResourceDefinition found in {directory}")
    return crds


def jobset_crd(runtimes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """jobsets.jobset.x-k8s.io v1alpha2, its spec schema taken from the runtime CRD."""
    runtime = runtimes["clustertrainingruntimes.trainer.kubeflow.org"]
    spec = crd_schema(runtime)["properties"]["spec"]["properties"]["template"]["properties"]
    return _as_crd(
        {
            "name": JOBSET_CRD,
            "group": "jobset.x-k8s.io",
            "scope": "Namespaced",
            "names": {
                "kind": "JobSet",
                "listKind": "JobSetList",
                "plural": "jobsets",
                "singular": "jobset",
            },
            "versions": [
                {
                    "name": "v1alpha2",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": copy.deepcopy(spec["spec"]),
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    },
                }
            ],
        }
    )


def _load(directory: Path | None, releases: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    chosen = directory or os.environ.get("CIAO_CRDS_DIR")
    if chosen and releases == DEFAULT_RELEASES:
        return _load_dir(str(chosen))
    crds: dict[str, dict[str, Any]] = {}
    for release in releases:
        crds.update(_load_release(release))
    if RUNTIMES_RELEASE in releases:
        crds[JOBSET_CRD] = jobset_crd(crds)
    if chosen:
        crds.update(_load_dir(str(chosen)))
    return crds


def load_crds(
    directory: Path | None = None, releases: tuple[str, ...] = DEFAULT_RELEASES
) -> dict[str, dict[str, Any]]:
    """CRDs by name (`pytorchjobs.kubeflow.org`), deep copies the caller may change."""
    return copy.deepcopy(_load(directory, releases))


def crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the storage (else first served) version."""
    versions = crd["spec"]["versions"]
    version = next((v for v in versions if v.get("storage")), versions[0])
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def crd_for_kind(
    kind: str, directory: Path | None = None, releases: tuple[str, ...] = DEFAULT_RELEASES
) -> dict[str, Any] | None:
    for crd in _load(directory, releases).values():
        if crd["spec"]["names"]["kind"] == kind:
            return crd
    return None


def pod_spec_schema(directory: Path | None = None) -> dict[str, Any] | None:
    """The PodSpec schema embedded in the PyTorchJob CRD: strict checks for plain pods too."""
    crd = crd_for_kind("PyTorchJob", directory)
    if crd is None:
        return None
    replica = crd_schema(crd)["properties"]["spec"]["properties"]["pytorchReplicaSpecs"]
    template = replica["additionalProperties"]["properties"]["template"]
    schema: dict[str, Any] = template["properties"]["spec"]
    return schema
