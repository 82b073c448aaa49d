"""Derive the test cluster's compact CRD schemas from the operators' CRD manifests.

The test cluster (tests/fakecluster) validates every object Ciao creates as the real API
server would: unknown fields, types, enums, required keys, formats, defaults. It needs only
that structural part of each CRD, not the ~2 MB of descriptions around it, so this tool keeps
those keys, hoists subtrees that repeat (the PodTemplateSpec appears in every replica spec)
into shared definitions, and writes one small JSON file per API release that the repository
carries. Run it by hand when a CRD changes; nothing in the tests runs it:

    python tools/derive_crd_schemas.py KUBEFLOW_V1_CRDS_DIR TRAINER_V2_CRDS_DIR

(e.g. the training-operator v1.9 `manifests/base/crds/` and the trainer v2 CRDs).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "tests" / "fakecluster" / "schemas"
# The structural keys the test cluster checks; everything else (descriptions, list-type
# hints for server-side apply) is left out.
STRUCTURAL = {
    "type", "properties", "items", "additionalProperties", "enum", "required", "default",
    "format", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
    "pattern", "nullable", "anyOf", "allOf", "oneOf", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string", "x-kubernetes-validations",
}  # fmt: skip
HOIST_MIN_BYTES = 400
TRAINJOBS = "trainer.kubeflow.org_trainjobs.yaml"


def structural(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in STRUCTURAL:
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = structural(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [structural(sub) for sub in value]
        elif key == "x-kubernetes-validations":
            out[key] = [
                {k: v for k, v in rule.items() if k in ("rule", "message")} for rule in value
            ]
        else:
            out[key] = value
    return out


def _key(node: Any) -> str:
    return hashlib.sha256(json.dumps(node, sort_keys=True).encode()).hexdigest()[:12]


def _count(node: Any, counts: Counter[str]) -> None:
    if isinstance(node, dict):
        if len(json.dumps(node)) >= HOIST_MIN_BYTES:
            counts[_key(node)] += 1
        for value in node.values():
            _count(value, counts)
    elif isinstance(node, list):
        for value in node:
            _count(value, counts)


def _hoist(node: Any, counts: Counter[str], defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        key = _key(node)
        if counts[key] > 1 and len(json.dumps(node)) >= HOIST_MIN_BYTES:
            if key not in defs:
                defs[key] = None  # reserve, then fill: children are hoisted first
                defs[key] = {k: _hoist(v, counts, defs) for k, v in node.items()}
            return {"$def": key}
        return {k: _hoist(v, counts, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_hoist(v, counts, defs) for v in node]
    return node


def compact_crd(crd: dict[str, Any]) -> dict[str, Any]:
    spec = crd["spec"]
    return {
        "name": crd["metadata"]["name"],
        "group": spec["group"],
        "scope": spec["scope"],
        "names": spec["names"],
        "versions": [
            {
                "name": v["name"],
                "served": v.get("served", True),
                "storage": v.get("storage", False),
                "subresources": v.get("subresources", {}),
                "schema": structural(v["schema"]["openAPIV3Schema"]),
            }
            for v in spec["versions"]
        ],
    }


def read_crds(paths: list[Path]) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found = []
    for path in paths:
        with path.open() as f:
            for doc in yaml.load_all(f, Loader=loader):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    found.append(compact_crd(doc))
    return found


def write_release(name: str, source: str, crds: list[dict[str, Any]]) -> Path:
    counts: Counter[str] = Counter()
    for crd in crds:
        _count(crd, counts)
    defs: dict[str, Any] = {}
    hoisted = [_hoist(crd, counts, defs) for crd in crds]
    doc = {"release": name, "derived_from": source, "definitions": defs, "crds": hoisted}
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / f"{name}.json"
    target.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    v1_dir, v2_dir = Path(argv[0]), Path(argv[1])
    releases = {
        "kubeflow-v1": (
            "kubeflow/training-operator v1.9 manifests/base/crds",
            sorted(v1_dir.glob("kubeflow.org_*.yaml")),
        ),
        "trainer-v2.0": ("kubeflow/trainer v2.0.0", [v2_dir / f"v2.0.0-{TRAINJOBS}"]),
        "trainer-v2.1": ("kubeflow/trainer v2.1.0", [v2_dir / f"v2.1.0-{TRAINJOBS}"]),
        "trainer-v2.3": ("kubeflow/trainer v2.3.0", [v2_dir / TRAINJOBS]),
        "trainer-runtimes": (
            "kubeflow/trainer v2.3.0",
            [
                v2_dir / "trainer.kubeflow.org_clustertrainingruntimes.yaml",
                v2_dir / "trainer.kubeflow.org_trainingruntimes.yaml",
            ],
        ),
    }  # fmt: skip
    for name, (source, paths) in releases.items():
        target = write_release(name, source, read_crds(paths))
        print(f"{target.relative_to(OUT.parents[2])}: {target.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
