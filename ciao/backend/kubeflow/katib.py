"""A `%tune` cell as a Katib Experiment (`kubeflow.org/v1beta1`), as a plain dict. Pure.

The trialSpec is the job Ciao plans for the cell (plan.py: a PyTorchJob, TFJob or
TrainJob, with every check a job's plan gets), named like the study, without
metadata.name and namespace (Katib names each trial's job like the trial), with
`${trialParameters.<name>}` as the value of every parameter's variables (CIAO_HP_<NAME>,
KUBEFLOW_TRAINER_OPT_<NAME>), which Katib replaces by the trial's values. The code's
ConfigMap (`<study>-code`) is the trials' one, owned by the Experiment.

Metrics: Katib's File collector reads METRICS_FILE in the primary pod, and the cell's
bootstrap (main.py) appends its metric lines there (`Parameter.metrics_file`), so the
primary container's log stays the one Ciao streams (Katib's default StdOut collector would
send it into the file and leave the log empty). The metric format is Katib's default filter
(ciao/constants.py), so Ciao's view and Katib read the same lines.

Everything Katib would default is written out (success and failure conditions, primary pod
labels, metric strategies, the filter), so `%dryrun` shows the Experiment as it will run.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.discovery import KATIB_VERSION as VERSION
from ciao.backend.kubeflow.manifests import (
    API_GROUP,
    COMPLETION_INDEX_LABEL,
    REPLICATED_JOB_LABEL,
    TRAINJOB,
    JobKind,
    ciao_labels,
)
from ciao.backend.kubeflow.plan import KubeflowPlan, plan_job
from ciao.constants import KATIB_FILTER
from ciao.hp import env_names
from ciao.interpreter.tune import Distribution, TuneSpec

EXPERIMENTS = "experiments"
TRIALS = "trials"
#: Katib's labels: a Trial's experiment, a trial pod's trial.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
TRIAL_LABEL = "katib.kubeflow.org/trial"
#: The namespace label without which Katib's webhook refuses an Experiment (and its pod
#: webhook injects no collector).
INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
INJECTION_ENABLED = "enabled"
#: Where the File collector reads the metric lines (Katib's DefaultFilePath).
METRICS_FILE = "/var/log/katib/metrics.log"
#: Longest Experiment name Katib's webhook takes (kubeflow/katib#2454, PR #2468: the
#: suggestion's Service `<experiment>-<algorithm>` must stay a DNS label).
MAX_NAME = 40
#: Katib's defaults (experiments/v1beta1/constants.go), written out.
SUCCEEDED = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
COMPLETE = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
#: The primary pod (the one whose collector reports): the master role's pod of a v1 job
#: (the operator labels the chief, master, else worker-0 so), node 0 of a TrainJob.
V1_PRIMARY = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_PRIMARY = {REPLICATED_JOB_LABEL: "node", COMPLETION_INDEX_LABEL: "0"}
#: Katib's early stopping for `%earlyStopping=median` (with its own defaults).
EARLY_STOPPING = {"median": "medianstop"}


def experiments_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{API_GROUP}/{VERSION}/namespaces/{namespace}/{EXPERIMENTS}"
    return f"{base}/{name}" if name else base


def trials_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{API_GROUP}/{VERSION}/namespaces/{namespace}/{TRIALS}"
    return f"{base}/{name}" if name else base


def placeholder(name: str) -> str:
    """What Katib replaces by a trial's value of parameter `name`."""
    return "${trialParameters." + name + "}"


def placeholders(spec: TuneSpec) -> dict[str, str]:
    """Every parameter's value as the trialSpec holds it."""
    return {name: placeholder(name) for name in spec.parameter_names()}


def parameter_spec(name: str, distribution: Distribution) -> dict[str, Any]:
    """One search-space entry: uniform and loguniform are `double`, int and logint `int`
    (log ones with distribution logUniform), a choice of numbers `discrete`, else
    `categorical`; every value a string, as Katib takes them."""
    if distribution.kind == "choice":
        numbers = all(
            isinstance(c, int | float) and not isinstance(c, bool) for c in distribution.choices
        )
        return {
            "name": name,
            "parameterType": "discrete" if numbers else "categorical",
            "feasibleSpace": {"list": [str(c) for c in distribution.choices]},
        }
    low, high = distribution.bounds()
    return {
        "name": name,
        "parameterType": "int" if distribution.is_int else "double",
        "feasibleSpace": {
            "min": low,
            "max": high,
            "distribution": "logUniform" if distribution.is_log else "uniform",
        },
    }


def objective_spec(spec: TuneSpec) -> dict[str, Any]:
    objective = spec.objective
    return {
        "type": objective.direction,
        "objectiveMetricName": objective.metric,
        "metricStrategies": [{"name": objective.metric, "value": objective.strategy}],
    }


def algorithm_spec(spec: TuneSpec) -> dict[str, Any]:
    """Katib's algorithm of the same name; `%seed` is its `random_state` (every suggestion
    service of katib-config v0.19.0 takes it)."""
    algorithm: dict[str, Any] = {"algorithmName": spec.algorithm}
    if spec.seed is not None:
        algorithm["algorithmSettings"] = [{"name": "random_state", "value": str(spec.seed)}]
    return algorithm


def metrics_collector() -> dict[str, Any]:
    """The File collector on METRICS_FILE, plain text, Katib's own default filter."""
    return {
        "collector": {"kind": "File"},
        "source": {
            "fileSystemPath": {"path": METRICS_FILE, "kind": "File", "format": "TEXT"},
            "filter": {"metricsFormat": [KATIB_FILTER]},
        },
    }


def trial_spec(job: dict[str, Any]) -> dict[str, Any]:
    """The planned job as a trial's template: without its name and namespace."""
    spec = copy.deepcopy(job)
    metadata = spec.get("metadata") or {}
    metadata.pop("name", None)
    metadata.pop("namespace", None)
    return spec


def trial_template(spec: TuneSpec, job: dict[str, Any], kind: JobKind) -> dict[str, Any]:
    trainjob = kind is TRAINJOB
    return {
        # the trials' jobs and pods stay until the study is deleted, so a trial's log and
        # why it failed can be read (Katib would delete them as each trial ends)
        "retain": True,
        "primaryContainerName": kind.container,
        "primaryPodLabels": dict(TRAINJOB_PRIMARY if trainjob else V1_PRIMARY),
        "successCondition": COMPLETE if trainjob else SUCCEEDED,
        "failureCondition": FAILED,
        "trialParameters": [
            {
                "name": name,
                "description": f"{distribution.describe()}, as {' and '.join(env_names(name))}",
                "reference": name,
            }
            for name, distribution in spec.space
        ],
        "trialSpec": trial_spec(job),
    }


def budget(spec: TuneSpec) -> dict[str, int]:
    """`%trials` and `%parallel`; the study fails only when every trial failed, as with
    Ciao's engine (Katib fails it once maxFailedTrialCount trials failed)."""
    return {
        "parallelTrialCount": spec.parallel,
        "maxTrialCount": spec.trials,
        "maxFailedTrialCount": spec.trials,
    }


def experiment_manifest(
    name: str, namespace: str, labels: dict[str, str], spec: TuneSpec, trial: KubeflowPlan
) -> dict[str, Any]:
    """The Experiment of study `name`, whose trials run `trial`'s job."""
    body: dict[str, Any] = {
        "parameters": [parameter_spec(n, d) for n, d in spec.space],
        "objective": objective_spec(spec),
        "algorithm": algorithm_spec(spec),
        **budget(spec),
        "metricsCollectorSpec": metrics_collector(),
        "trialTemplate": trial_template(spec, trial.job, trial.kind),
    }
    if spec.early_stopping:
        body["earlyStopping"] = {"algorithmName": EARLY_STOPPING[spec.early_stopping]}
    return {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": body,
    }


@dataclass(frozen=True)
class KatibPlan:
    """A study on Katib: the trials' job as Ciao plans it (`trial`: the ConfigMap of the
    code and the job, named like the study), and the Experiment that runs it."""

    trial: KubeflowPlan
    spec: TuneSpec
    experiment: dict[str, Any]

    backend = "kubeflow"

    @property
    def name(self) -> str:
        return str(self.experiment["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return self.trial.namespace

    @property
    def config_map(self) -> dict[str, Any] | None:
        return self.trial.objects[0] if self.trial.objects else None

    @property
    def description(self) -> str:
        return (
            f"a Katib Experiment in namespace {self.namespace}, each trial {self.trial.description}"
        )

    def documents(self) -> list[Any]:
        """What is made, in order: an image build (if any), the ConfigMap, the Experiment."""
        build = [dict(self.trial.shipment.build)] if self.trial.shipment.build else []
        return [*build, *self.trial.objects, self.experiment]

    def renamed(self, name: str) -> KatibPlan:
        """The same study called `name` (when an Experiment has its name)."""
        parameter = self.trial.parameter
        owner = {**parameter.owner, "study": name}
        parameter = dataclasses.replace(parameter, generate_name=name, owner=owner)
        trial = plan_job(parameter, self.trial.shipment, self.namespace, self.trial.target)
        return katib_plan(trial, self.spec)


def katib_plan(trial: KubeflowPlan, spec: TuneSpec) -> KatibPlan:
    """The Experiment of a study whose trials run `trial` (named like the study)."""
    name = trial.parameter.generate_name
    labels = ciao_labels(trial.parameter)
    experiment = experiment_manifest(name, trial.namespace, labels, spec, trial)
    return KatibPlan(trial, spec, experiment)
