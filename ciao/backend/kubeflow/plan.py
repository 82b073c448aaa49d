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
    QUEUE_LABEL,
    RESTRICTED,
    TRAINJOB,
    JobKind,
    PodSecurity,
    config_map_manifest,
    job_manifest,
)
from ciao.backend.kubeflow.pod_settings import gang_scheduled
from ciao.backend.kubeflow.trainer_overrides import SECURITY_CONTEXT_RELEASES
from ciao.backend.kubeflow.trainjob import Runtime, trainjob_manifest
from ciao.interpreter.types import Parameter
from ciao.s2i.types import Shipment


@dataclass(frozen=True)
class Target:
    """Which API the job goes to, and why; for v2 its runtime and release."""

    api: str = "v1"
    why: str = ""
    runtime: Runtime | None = None
    release: str = ""
    release_why: str = ""
    #: The queue the job waits in (`%queue`, else `kubeflow.queue`): Kueue's LocalQueue,
    #: or Volcano's queue when the job goes to Volcano (v1); empty: none.
    queue: str = ""
    #: The securityContext of the job's pods (config `kubeflow.pod_security`).
    security: PodSecurity = RESTRICTED


@dataclass(frozen=True)
class KubeflowPlan:
    """The ConfigMap of the shipped files (if any), then the TFJob / PyTorchJob / TrainJob."""

    parameter: Parameter
    shipment: Shipment
    namespace: str
    job: dict[str, Any]
    objects: tuple[dict[str, Any], ...] = ()
    target: Target = Target()

    backend = "kubeflow"

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])

    @property
    def kind(self) -> JobKind:
        return TRAINJOB if self.target.api == "v2" else KINDS[self.parameter.framework]

    @property
    def config_map(self) -> str:
        """The name of the plan's ConfigMap, empty when nothing rides beside the image."""
        return str(self.objects[0]["metadata"]["name"]) if self.objects else ""

    @property
    def description(self) -> str:
        """What runs where, and why this API, for %dryrun."""
        what = f"a {self.kind.kind} in namespace {self.namespace}"
        target = self.target
        if target.api == "v2" and target.runtime is not None:
            what += (
                f", runtime {target.runtime.name} ({target.runtime.kind}), Kubeflow Trainer "
                f"{target.release} ({target.release_why})"
            )
        if target.queue:
            what += f", queued in {target.queue} ({'Volcano' if self.volcano else 'Kueue'})"
        what += f"; {self.security_note}"
        return f"{what}; {target.why}" if target.why else what

    @property
    def volcano(self) -> bool:
        """Whether Volcano gang-schedules the job (v1, `%schedulerName=volcano`): then the
        queue is Volcano's (`runPolicy.schedulingPolicy.queue`), not Kueue's label."""
        return self.target.api == "v1" and gang_scheduled(self.parameter)

    @property
    def security_note(self) -> str:
        """Who the pods run as; on Trainer v2.0/v2.1, that the runtime decides it."""
        target = self.target
        if (
            target.api == "v2"
            and target.security.restricted
            and target.release not in SECURITY_CONTEXT_RELEASES
        ):
            return (
                f"Kubeflow Trainer {target.release}'s TrainJob cannot set a securityContext: "
                "the runtime's pod template decides whether the pods pass Pod Security"
            )
        return target.security.describe()

    def documents(self) -> list[Any]:
        build = [dict(self.shipment.build)] if self.shipment.build else []
        return [*build, *self.objects, self.job]

    def renamed(self, name: str) -> KubeflowPlan:
        """The same plan for a job called `name` (when the name is taken)."""
        parameter = dataclasses.replace(self.parameter, generate_name=name)
        return plan_job(parameter, self.shipment, self.namespace, self.target)


def plan_job(
    parameter: Parameter, shipment: Shipment, namespace: str, target: Target | None = None
) -> KubeflowPlan:
    target = target or Target()
    objects = (config_map_manifest(parameter, shipment, namespace),) if shipment.files else ()
    if target.api == "v2":
        assert target.runtime is not None
        job = trainjob_manifest(
            parameter, shipment, namespace, target.runtime, target.release, target.security
        )
    else:
        job = job_manifest(parameter, shipment, namespace, target.security, target.queue)
    plan = KubeflowPlan(parameter, shipment, namespace, job, objects, target)
    # on the job only: Kueue would take a labelled pod for one of its own; with Volcano
    # the queue is in the job's schedulingPolicy instead
    if target.queue and not plan.volcano:
        job["metadata"]["labels"][QUEUE_LABEL] = target.queue
    return plan
