"""A Kubeflow job's plan: the objects to create and the job, as they will be sent.

`KubeflowBackend.dry_run` builds it, `%dryrun` shows it, `exec_code` sends exactly it (a
name clash makes a renamed plan, never an edited one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.manifests import (
    KINDS,
    JobKind,
    config_map_manifest,
    job_manifest,
)
from ciao.interpreter.types import Parameter
from ciao.s2i.types import Shipment


@dataclass(frozen=True)
class KubeflowPlan:
    """The ConfigMap of the shipped files (if any), then the TFJob / PyTorchJob."""

    parameter: Parameter
    shipment: Shipment
    namespace: str
    job: dict[str, Any]
    objects: tuple[dict[str, Any], ...] = ()

    backend = "kubeflow"

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def kind(self) -> JobKind:
        return KINDS[self.parameter.framework]

    @property
    def config_map(self) -> str:
        """The name of the plan's ConfigMap, empty when nothing rides beside the image."""
        return str(self.objects[0]["metadata"]["name"]) if self.objects else ""

    def documents(self) -> list[Any]:
        build = [dict(self.shipment.build)] if self.shipment.build else []
        return [*build, *self.objects, self.job]

    def renamed(self, name: str) -> KubeflowPlan:
        """The same plan for a job called `name` (when the name is taken)."""
        parameter = dataclasses.replace(self.parameter, generate_name=name)
        return plan_job(parameter, self.shipment, self.namespace)


def plan_job(parameter: Parameter, shipment: Shipment, namespace: str) -> KubeflowPlan:
    objects = (config_map_manifest(parameter, shipment, namespace),) if shipment.files else ()
    return KubeflowPlan(
        parameter, shipment, namespace, job_manifest(parameter, shipment, namespace), objects
    )
