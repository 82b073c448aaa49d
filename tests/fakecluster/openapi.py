"""OpenAPI v3 discovery: GET /openapi/v3 (the index) and /openapi/v3/<group-version path>.

For a custom resource the document carries, as the real apiextensions server publishes it,
`components.schemas["<reversed group>.<version>.<Kind>"]` (e.g.
`org.kubeflow.trainer.v1alpha1.TrainJob`) built from the served openAPIV3Schema, with
`x-kubernetes-group-version-kind` and metadata referring to ObjectMeta, plus the `List`
kind and the resource paths; so a client can read which fields the installed release has.
Built-in group versions get a document without schemas. Each index entry's
serverRelativeURL carries `?hash=` (SHA-512 of the document, upper-case hex, as the real
server does), which changes when a CRD is installed or removed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .registry import Registry
from .resources import BUILTIN, CORE, ResourceInfo

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"


def schema_prefix(group: str, version: str) -> str:
    """`trainer.kubeflow.org`, `v1alpha1` -> `org.kubeflow.trainer.v1alpha1`."""
    return ".".join(reversed(group.split("."))) + "." + version


def _served(registry: Registry) -> dict[str, list[ResourceInfo]]:
    out: dict[str, list[ResourceInfo]] = {"api/v1": list(CORE.values())}
    for gv, infos in BUILTIN.items():
        out[f"apis/{gv}"] = list(infos)
    for info in registry.custom_resources():
        out.setdefault(f"apis/{info.group}/{info.version}", []).append(info)
    return out


def _paths(info: ResourceInfo, ref: str) -> dict[str, Any]:
    ok = {"200": {"content": {"application/json": {"schema": {"$ref": ref}}}}}
    root = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
    base = (
        f"{root}/namespaces/{{namespace}}/{info.plural}"
        if info.namespaced
        else (f"{root}/{info.plural}")
    )
    kind = info.kind
    out = {
        base: {
            "get": {"operationId": f"list{kind}", "responses": ok},
            "post": {"operationId": f"create{kind}", "responses": ok},
        },
        f"{base}/{{name}}": {
            "get": {"operationId": f"read{kind}", "responses": ok},
            "put": {"operationId": f"replace{kind}", "responses": ok},
            "patch": {"operationId": f"patch{kind}", "responses": ok},
            "delete": {"operationId": f"delete{kind}", "responses": {"200": {}}},
        },
    }
    if "status" in info.subresources:
        out[f"{base}/{{name}}/status"] = {
            "get": {"operationId": f"read{kind}Status", "responses": ok},
            "put": {"operationId": f"replace{kind}Status", "responses": ok},
            "patch": {"operationId": f"patch{kind}Status", "responses": ok},
        }
    return out


def document(registry: Registry, path: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version (`apis/<group>/<version>`), or None."""
    infos = _served(registry).get(path)
    if infos is None:
        return None
    doc: dict[str, Any] = {
        "openapi": "3.0.0",
        "info": {
            "title": "Kubernetes CRD Swagger" if path.startswith("apis/") else "Kubernetes",
            "version": "v0.1.0",
        },
        "paths": {},
        "components": {"schemas": {}},
    }
    schemas = doc["components"]["schemas"]
    for info in infos:
        if not info.custom:
            continue
        served = registry.schema(info.plural)
        if served is None:
            continue
        name = f"{schema_prefix(info.group, info.version)}.{info.kind}"
        gvk = [{"group": info.group, "kind": info.kind, "version": info.version}]
        schema = copy.deepcopy(served)
        props = schema.setdefault("properties", {})
        props["metadata"] = {
            "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
            "default": {},
        }
        schema["x-kubernetes-group-version-kind"] = gvk
        schemas[name] = schema
        schemas[f"{name}List"] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                "kind": {"type": "string"},
                "metadata": {
                    "allOf": [{"$ref": f"#/components/schemas/{LIST_META}"}],
                    "default": {},
                },
            },
            "x-kubernetes-group-version-kind": [{**gvk[0], "kind": f"{info.kind}List"}],
        }
        doc["paths"].update(_paths(info, f"#/components/schemas/{name}"))
    if schemas:
        schemas[OBJECT_META] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schemas[LIST_META] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return doc


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()


def index(registry: Registry) -> dict[str, Any]:
    """GET /openapi/v3: every served group version and its document's URL."""
    paths: dict[str, Any] = {}
    for path in _served(registry):
        doc = document(registry, path)
        assert doc is not None
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(doc)}"}
    return {"paths": paths}
