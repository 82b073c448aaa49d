"""A stand-in for Kueue's job integration: its mutating webhook suspends a job labelled
with a queue (`kueue.x-k8s.io/queue-name`) at creation, and its controller resumes the job
when the queue admits it (`admit`). TrainJobs are suspended by `spec.suspend`, PyTorchJobs
and TFJobs by `spec.runPolicy.suspend`, as Kueue's integrations do.
"""

from __future__ import annotations

from typing import Any

from .registry import Registry
from .resources import ResourceInfo

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: Where each job kind says it is suspended.
SUSPEND_FIELD = {
    "trainjobs": ("spec",),
    "pytorchjobs": ("spec", "runPolicy"),
    "tfjobs": ("spec", "runPolicy"),
}

Obj = dict[str, Any]


def _holder(job: Obj, plural: str) -> Obj:
    holder = job
    for key in SUSPEND_FIELD[plural]:
        holder = holder.setdefault(key, {})
    return holder


class Kueue:
    """Installed on a registry's job resources until `uninstall()`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.queued: list[tuple[str, str, str]] = []  # (plural, namespace, name)
        self._hooks = {plural: self._webhook(plural) for plural in SUSPEND_FIELD}
        for plural, hook in self._hooks.items():
            registry.add_admission(plural, mutate=hook)

    def _webhook(self, plural: str) -> Any:
        def suspend_queued(info: ResourceInfo, job: Obj, old: Obj | None) -> list[str]:
            labels = job.get("metadata", {}).get("labels") or {}
            if old is None and labels.get(QUEUE_LABEL):
                _holder(job, plural)["suspend"] = True
                self.queued.append((plural, job["metadata"]["namespace"], job["metadata"]["name"]))
            return []

        return suspend_queued

    def admit(self, plural: str, namespace: str, name: str) -> None:
        """The queue has room: resume the job, as Kueue's controller does."""

        def resume(job: Obj) -> None:
            _holder(job, plural)["suspend"] = False

        self.registry.mutate(plural, namespace, name, resume)

    def uninstall(self) -> None:
        for plural, hook in self._hooks.items():
            self.registry.mutators[plural].remove(hook)
