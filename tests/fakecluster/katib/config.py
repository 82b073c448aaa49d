"""Katib v0.19.0's configuration (the katib-config ConfigMap of the standalone install) and
the names its components share (pkg/controller.v1beta1/consts, pkg/webhook/v1beta1,
pkg/metricscollector/v1beta1/common).

The ConfigMap itself is not created (it lives in the `kubeflow` namespace, which a Katib
user does not read): the webhook and controllers read this module as they read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GROUP = "kubeflow.org"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
CONFIG_MAP = "katib-config"
KATIB_NAMESPACE = "kubeflow"

# -- katib-config.yaml (manifests/v1beta1/installs/katib-standalone) ----------------------
#: init.controller.trialResources: the kinds a trial may run, `Kind.version.group`.
TRIAL_RESOURCES = (
    "TrainJob.v1alpha1.trainer.kubeflow.org",
    "Job.v1.batch",
    "TFJob.v1.kubeflow.org",
    "PyTorchJob.v1.kubeflow.org",
    "MPIJob.v1.kubeflow.org",
    "XGBoostJob.v1.kubeflow.org",
)
_IMAGE = "ghcr.io/kubeflow/katib/{}:v0.19.0"
#: runtime.suggestions: algorithmName -> image.
SUGGESTIONS = {
    "random": _IMAGE.format("suggestion-hyperopt"),
    "tpe": _IMAGE.format("suggestion-hyperopt"),
    "grid": _IMAGE.format("suggestion-optuna"),
    "hyperband": _IMAGE.format("suggestion-hyperband"),
    "bayesianoptimization": _IMAGE.format("suggestion-skopt"),
    "cmaes": _IMAGE.format("suggestion-goptuna"),
    "sobol": _IMAGE.format("suggestion-goptuna"),
    "multivariate-tpe": _IMAGE.format("suggestion-optuna"),
    "enas": _IMAGE.format("suggestion-enas"),
    "darts": _IMAGE.format("suggestion-darts"),
    "pbt": _IMAGE.format("suggestion-pbt"),
}
#: runtime.earlyStoppings: algorithmName -> image.
EARLY_STOPPINGS = {"medianstop": _IMAGE.format("earlystopping-medianstop")}


@dataclass(frozen=True)
class CollectorConfig:
    """runtime.metricsCollectors[]: image and the resources katibconfig defaults fill in."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    requests: dict[str, str] = field(
        default_factory=lambda: {"cpu": "50m", "memory": "10Mi", "ephemeral-storage": "500Mi"}
    )
    limits: dict[str, str] = field(
        default_factory=lambda: {"cpu": "500m", "memory": "100Mi", "ephemeral-storage": "5Gi"}
    )


FILE_COLLECTOR_IMAGE = _IMAGE.format("file-metrics-collector")
METRICS_COLLECTORS = {
    "StdOut": CollectorConfig(FILE_COLLECTOR_IMAGE),
    "File": CollectorConfig(FILE_COLLECTOR_IMAGE),
    "TensorFlowEvent": CollectorConfig(
        _IMAGE.format("tfevent-metrics-collector"),
        limits={"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "5Gi"},
    ),
}


def config_missing(what: str, name: str) -> str:
    """katibconfig's error for a name katib-config does not list."""
    return f"failed to find {what} for {name} in ConfigMap: {CONFIG_MAP}"


# -- labels, finalizers, names --------------------------------------------------------------
LABEL_EXPERIMENT = "katib.kubeflow.org/experiment"
LABEL_TRIAL = "katib.kubeflow.org/trial"
#: The namespace label the Experiment validator requires and the pod webhook selects.
INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"
INJECTION_ENABLED = "enabled"
ENV_TRIAL_NAME = "KATIB_TRIAL_NAME"
EXPERIMENT_FINALIZER = "update-prometheus-metrics"
TRIAL_FINALIZER = "clean-metrics-in-db"
VALIDATOR = "validator.experiment.katib.kubeflow.org"
DEFAULTER = "defaulter.experiment.katib.kubeflow.org"
POD_MUTATOR = "mutator.pod.katib.kubeflow.org"
#: katib-db-manager's address as the collector's `-s-db` flag names it.
DB_MANAGER_ADDR = "katib-db-manager.kubeflow:6789"

# -- metrics collection (pkg/metricscollector/v1beta1/common/const.go) -----------------------
DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
DEFAULT_FILE_PATH = "/var/log/katib/metrics.log"
DEFAULT_TFEVENT_DIR = "/var/log/katib/tfevent/"
METRICS_VOLUME = "metrics-volume"
COLLECTOR_CONTAINER = "metrics-logger-and-collector"  # StdOut and File
OTHER_COLLECTOR_CONTAINER = "metrics-collector"
TRAINING_COMPLETED = "completed"
TRAINING_EARLY_STOPPED = "early-stopped"
UNAVAILABLE = "unavailable"
#: Collector kinds whose sidecar the pod webhook injects, and whose worker it wraps.
AUTO_INJECT = ("StdOut", "TensorFlowEvent", "File", "PrometheusMetric")
WRAPPED = ("StdOut", "TensorFlowEvent", "File")

# -- experiment defaults (experiments/v1beta1/constants.go) ------------------------------------
DEFAULT_PARALLEL_TRIALS = 3
_JOB_SUCCESS = 'status.conditions.#(type=="{}")#|#(status=="True")#'
JOB_CONDITIONS = (_JOB_SUCCESS.format("Complete"), _JOB_SUCCESS.format("Failed"))
KUBEFLOW_CONDITIONS = (_JOB_SUCCESS.format("Succeeded"), _JOB_SUCCESS.format("Failed"))
TRAINJOB_CONDITIONS = (_JOB_SUCCESS.format("Complete"), _JOB_SUCCESS.format("Failed"))
KUBEFLOW_PRIMARY_POD_LABELS = {"training.kubeflow.org/job-role": "master"}
TRAINJOB_PRIMARY_POD_LABELS = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}
KUBEFLOW_KINDS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob")


def trial_resource(api_version: str, kind: str) -> bool:
    """Whether katib-config lets a trial run `kind` of `api_version` (the controller watches
    only those)."""
    group, _, version = api_version.rpartition("/")
    return f"{kind}.{version}.{group}".rstrip(".") in TRIAL_RESOURCES
