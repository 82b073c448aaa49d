"""Katib v0.19.0 (kubeflow.org/v1beta1 Experiment, Suggestion, Trial) on the test cluster.

`FakeCluster(kubeflow=(..., "katib"))` installs it: the three CRDs, schemaless as upstream's
(`x-kubernetes-preserve-unknown-fields` at the root, a status subresource, printer columns);
the Experiment webhooks (webhook.py: Katib's Go types, defaults and validator rules, the
namespace label); the pod webhook injecting the metrics collector (injector.py); the
collector itself, run by the kubelet for its image (collector.py) and reporting to an
in-process katib-db-manager (metrics.py); and the Experiment, Suggestion and Trial
controllers (experiment.py, suggestion.py, trial.py), the Suggestion's algorithm being
Optuna's (suggestion.py). config.py is katib-config.

A client's view, step by step:
1. `kubectl label namespace NS katib.kubeflow.org/metrics-collector-injection=enabled`
   (without it: 400 `admission webhook "validator.experiment.katib.kubeflow.org" denied the
   request: Cannot create the Experiment "x" in namespace "NS": the namespace lacks label
   "katib.kubeflow.org/metrics-collector-injection: enabled"`).
2. create the Experiment; read back its defaults.
3. follow `status` (conditions, trial lists and counts, currentOptimalTrial) and the Trials
   labelled `katib.kubeflow.org/experiment=<name>` (conditions, `observation.metrics`); each
   trial's job is named like the trial, its pods are labelled `katib.kubeflow.org/trial`.
4. delete the Experiment: the Suggestion, the Trials, their jobs and pods go with it.
"""

from __future__ import annotations

from typing import Any

from ..controller import Controller
from ..programs import repository
from ..registry import Registry
from ..resources import CORE
from ..store import Obj
from .collector import collector_program
from .config import FILE_COLLECTOR_IMAGE, GROUP
from .experiment import ExperimentController
from .injector import PodInjector
from .metrics import ObservationDB
from .suggestion import SuggestionController
from .trial import TrialController
from .webhook import ExperimentWebhooks

__all__ = ["CRDS", "Katib", "katib_crds"]

CRDS = ("experiments.kubeflow.org", "suggestions.kubeflow.org", "trials.kubeflow.org")
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_TYPE = {"name": "Type", "type": "string", "jsonPath": ".status.conditions[-1:].type"}
_STATUS = {"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].status"}


def _crd(kind: str, columns: list[Obj]) -> Obj:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "singular": kind.lower(),
                "plural": plural,
                "categories": ["all", "kubeflow", "katib"],
            },
            "versions": [
                {
                    "name": "v1beta1",
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": columns,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def katib_crds() -> dict[str, Obj]:
    """manifests/v1beta1/components/crd/{experiment,suggestion,trial}.yaml."""
    requested = {"name": "Requested", "type": "string", "jsonPath": ".spec.requests"}
    assigned = {"name": "Assigned", "type": "string", "jsonPath": ".status.suggestionCount"}
    crds = [
        _crd("Experiment", [_TYPE, _STATUS, _AGE]),
        _crd("Suggestion", [_TYPE, _STATUS, requested, assigned, _AGE]),
        _crd("Trial", [_TYPE, _STATUS, _AGE]),
    ]
    return {c["metadata"]["name"]: c for c in crds}


class Katib:
    """Katib's webhooks, collector and DB, wired into a registry (and a kubelet)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = ObservationDB()
        registry.crds.update(katib_crds())
        webhooks = ExperimentWebhooks(self._namespace_labels, self._configmap)
        registry.add_admission("experiments", validate=webhooks.validate, mutate=webhooks.mutate)
        registry.add_admission(
            "pods", mutate=PodInjector(self._namespace_labels, self._lookup).mutate
        )

    def install(self) -> None:
        for name in CRDS:
            self.registry.install_crd(name)

    def attach(self, kubelet: Any) -> None:
        """The collector's image runs the collector stand-in."""
        kubelet.add_program(repository(FILE_COLLECTOR_IMAGE), collector_program(self.db))

    def controllers(self, resync: float = 0.5) -> list[Controller]:
        return [
            ExperimentController(self.registry, resync),
            SuggestionController(self.registry, resync),
            TrialController(self.registry, self.db, resync),
        ]

    # -- what the webhooks read -----------------------------------------------------------
    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.registry.store.get("namespaces", None, namespace) or {}
        return dict((ns.get("metadata") or {}).get("labels") or {})

    def _configmap(self, namespace: str, name: str) -> Obj | None:
        return self.registry.store.get(CORE["configmaps"].plural, namespace, name)

    def _lookup(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        info = self.registry.by_kind(api_version, kind)
        if info is None:
            return None
        return self.registry.store.get(info.plural, namespace if info.namespaced else None, name)
