"""The `configmap` provider: no image build; the code rides in a ConfigMap mounted into
the stock framework image, and the container runs it with `python -u`. The cell's
`%requirements` go in the same ConfigMap (requirements.txt), and the container
pip-installs them before it runs the code.

The ConfigMap is created before the job (pods mount it at start) and is given an
ownerReference to the job once the job exists, so it goes away with the job.
"""

from __future__ import annotations

from typing import Any

from ciao.backend.kube_client import ApiError, Cluster
from ciao.backend.kube_errors import explain
from ciao.backend.manifests import CODE_FILE, REQUIREMENTS_FILE, ciao_labels, code_command
from ciao.errors import BackendError
from ciao.interpreter.magics import random_name
from ciao.interpreter.types import Parameter
from ciao.s2i.requirements import requirements_text
from ciao.s2i.types import Progress

#: What one ConfigMap may hold (the API server's limit is 1 MiB, metadata included).
MAX_CODE_BYTES = 1024 * 1024 - 16 * 1024


class ConfigMapCode:
    """S2IClient that ships the code in a ConfigMap and runs it in the stock image."""

    def __init__(self, cluster: Cluster, images: dict[str, str]) -> None:
        self.cluster = cluster
        self.images = images

    def manifest(self, code: str, parameter: Parameter, name: str) -> dict[str, Any]:
        data = {CODE_FILE: code}
        if parameter.requirements:
            data[REQUIREMENTS_FILE] = requirements_text(parameter.requirements)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.cluster.namespace,
                "labels": ciao_labels(parameter),
            },
            "data": data,
        }

    def source_to_image(
        self, code: str, parameter: Parameter, progress: Progress | None = None
    ) -> str:
        size = len(code.encode("utf-8"))
        size += len(requirements_text(parameter.requirements).encode("utf-8"))
        if size > MAX_CODE_BYTES:
            what = "code and requirements are" if parameter.requirements else "code is"
            raise BackendError(
                f"the cell's {what} {size} bytes, more than a ConfigMap holds "
                f"({MAX_CODE_BYTES} bytes): ship it in an image with `s2i: {{provider: s2i}}`, "
                "or load large data from storage instead of embedding it"
            )
        namespace = self.cluster.namespace
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        for _ in range(5):
            name = f"{parameter.generate_name}-code"
            try:
                self.cluster.request("POST", path, body=self.manifest(code, parameter, name))
                break
            except ApiError as exc:
                if exc.status != 409:
                    raise explain(exc, "create", "configmaps", namespace) from None
                parameter.generate_name = random_name()
        else:
            raise BackendError("create configmaps: no free name after 5 tries")
        parameter.code_config_map = name
        parameter.command = code_command(bool(parameter.requirements))
        return self.images[parameter.framework]

    def cancel(self) -> None:
        """Nothing to stop: writing the code takes no time worth interrupting."""

    def plan(self, code: str, parameter: Parameter) -> tuple[str, list[dict[str, Any]]]:
        """What source_to_image would do, without doing it (for %dryrun): the image, and
        the ConfigMap it would create."""
        name = f"{parameter.generate_name}-code"
        parameter.code_config_map = name
        parameter.command = code_command(bool(parameter.requirements))
        return self.images[parameter.framework], [self.manifest(code, parameter, name)]
