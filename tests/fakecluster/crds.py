"""The Kubeflow CRDs, read from shared/reference/crds (or $CIAO_CRDS_DIR)."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader reads the two 9000-line CRDs in a fraction of the pure-Python time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def default_crds_dir() -> Path:
    """$CIAO_CRDS_DIR, else ../shared/reference/crds next to the repository root."""
    env = os.environ.get("CIAO_CRDS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "crds"


@functools.lru_cache(maxsize=8)
def _load(directory: str) -> dict[str, dict[str, Any]]:
    crds: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("*.y*ml")):
        with path.open() as f:
            for doc in yaml.load_all(f, Loader=_LOADER):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds[doc["metadata"]["name"]] = doc
    if not crds:
        raise FileNotFoundError(f"no CustomResourceDefinition found in {directory}")
    return crds


def load_crds(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    """CRDs by name (`pytorchjobs.kubeflow.org`), deep copies the caller may change."""
    return copy.deepcopy(_load(str(directory or default_crds_dir())))


def crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The openAPIV3Schema of the storage (else first served) version."""
    versions = crd["spec"]["versions"]
    version = next((v for v in versions if v.get("storage")), versions[0])
    return version["schema"]["openAPIV3Schema"]


def crd_for_kind(kind: str, directory: Path | None = None) -> dict[str, Any] | None:
    for crd in _load(str(directory or default_crds_dir())).values():
        if crd["spec"]["names"]["kind"] == kind:
            return crd
    return None


def pod_spec_schema(directory: Path | None = None) -> dict[str, Any] | None:
    """The PodSpec schema embedded in the PyTorchJob CRD: strict checks for plain pods too."""
    crd = crd_for_kind("PyTorchJob", directory)
    if crd is None:
        return None
    replica = crd_schema(crd)["properties"]["spec"]["properties"]["pytorchReplicaSpecs"]
    return replica["additionalProperties"]["properties"]["template"]["properties"]["spec"]
