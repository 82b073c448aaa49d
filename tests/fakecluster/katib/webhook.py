"""Katib's Experiment webhooks: the defaulter and the validator
(pkg/webhook/v1beta1/experiment, experiments/v1beta1/experiment_defaults.go).

The CRDs are schemaless, so these are an Experiment's only checks. The mutating
`defaulter.experiment.katib.kubeflow.org` decodes the spec into Katib's Go types (gotypes.py:
a wrong JSON type is refused, unknown fields are dropped), sets the defaults (parallelTrialCount
3, resumePolicy Never, metric strategies min/max/latest by objective type, the success and
failure conditions and primary pod labels of Job, the v1 Kubeflow kinds and TrainJob, the
StdOut collector or a File collector's path/kind/format, distribution uniform) and answers
with the result. The validating `validator.experiment.katib.kubeflow.org` refuses an
Experiment in a namespace without the label `katib.kubeflow.org/metrics-collector-injection:
enabled`, then applies validator.go's rules in its order, early returns included. Both refuse
as controller-runtime's admission.Errored(400): HTTP 400, no reason, `admission webhook "..."
denied the request: <message>` (several field errors as `[a, b]`).

Not simulated: the check that a batch Job trialSpec converts to batchv1.Job without losing
fields, and the FromVolume rule about an existing PersistentVolume.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from .. import errors as E
from ..errors import FieldError, GoLiteral
from ..resources import ResourceInfo
from ..store import Obj
from . import config as C
from .gotypes import (
    EXPERIMENT_SPEC,
    FEASIBLE_SPACE,
    PARAMETER,
    STRING,
    TRIAL_PARAMETER,
    GoDecodeError,
    decode,
    encode,
    go_sharp_v,
    go_v,
    slice_of,
)
from .template import PARAM_FORMAT, PARAM_PATTERN, TemplateError, is_meta_key, parse, template_text

NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")  # unanchored at the end, as upstream
NAME_MESSAGE = (
    "name must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex "
    "used for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 "
    "characters. "
)
PARAMETER_TYPES = ("int", "double", "categorical", "discrete", "unknown")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal", "unknown")
RESUME_POLICIES = ("", "Never", "LongRunning", "FromVolume")
COLLECTOR_KINDS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "Push")
_TWO_GROUPS = re.compile(r".*\(.*\).*\(.*\).*")

#: (namespace, name) -> a ConfigMap or None: what the webhook reads of the cluster.
Lookup = Callable[[str, str], "Obj | None"]


def denied(webhook: str, message: str) -> E.StatusError:
    """admission.Errored(http.StatusBadRequest, err), as the API server relays it."""
    return E.StatusError(400, "", f'admission webhook "{webhook}" denied the request: {message}')


# -- the defaulter -------------------------------------------------------------------------
def default_spec(spec: Any) -> Obj:
    """Decode into ExperimentSpec, SetDefault, encode; GoDecodeError on a wrong type."""
    decoded = decode(spec, EXPERIMENT_SPEC, "Experiment", "spec") or {}
    out: Obj = encode(decoded, EXPERIMENT_SPEC)
    out.setdefault("parallelTrialCount", C.DEFAULT_PARALLEL_TRIALS)
    if not out.get("resumePolicy"):
        out["resumePolicy"] = "Never"
    _default_objective(out.get("objective"))
    _default_trial_template(out.get("trialTemplate"))
    _default_metrics_collector(out.setdefault("metricsCollectorSpec", {}))
    for param in out.get("parameters") or []:
        param.setdefault("feasibleSpace", {}).setdefault("distribution", "uniform")
    return encode(out, EXPERIMENT_SPEC)  # type: ignore[no-any-return]


def _by_type(objective_type: str) -> str:
    return {"minimize": "min", "maximize": "max"}.get(objective_type, "latest")


def _default_objective(objective: Obj | None) -> None:
    if objective is None:
        return
    strategies = objective.setdefault("metricStrategies", [])
    name = objective.get("objectiveMetricName", "")
    others = {s.get("name") for s in strategies if s.get("name") != name}
    value = _by_type(objective.get("type", ""))
    if not any(s.get("name") == name for s in strategies):
        strategies.append({"name": name, "value": value})
    for metric in objective.get("additionalMetricNames") or []:
        if metric not in others:
            strategies.append({"name": metric, "value": value})


def _default_trial_template(template: Obj | None) -> None:
    if template is None or template.get("trialSpec") is None:
        return
    kind = template["trialSpec"].get("kind")
    if kind == "Job":
        conditions = C.JOB_CONDITIONS
    elif kind in C.KUBEFLOW_KINDS:
        conditions = C.TRAINJOB_CONDITIONS if kind == "TrainJob" else C.KUBEFLOW_CONDITIONS
        if not template.get("primaryPodLabels"):
            template["primaryPodLabels"] = dict(
                C.TRAINJOB_PRIMARY_POD_LABELS
                if kind == "TrainJob"
                else C.KUBEFLOW_PRIMARY_POD_LABELS
            )
    else:
        return
    if not template.get("successCondition"):
        template["successCondition"] = conditions[0]
    if not template.get("failureCondition"):
        template["failureCondition"] = conditions[1]


def _default_metrics_collector(spec: Obj) -> None:
    collector = spec.setdefault("collector", {"kind": "StdOut"})
    kind = collector.get("kind", "")
    if kind == "PrometheusMetric":
        http = spec.setdefault("source", {}).setdefault("httpGet", {})
        if not http.get("path"):
            http["path"] = "/metrics"
        if str(http.get("port", 0)) == "0":
            http["port"] = 8080
    elif kind in ("File", "TensorFlowEvent"):
        path = spec.setdefault("source", {}).setdefault("fileSystemPath", {})
        if not path.get("kind"):
            path["kind"] = "File" if kind == "File" else "Directory"
        if not path.get("path"):
            path["path"] = C.DEFAULT_FILE_PATH if kind == "File" else C.DEFAULT_TFEVENT_DIR
        if kind == "File" and not path.get("format"):
            path["format"] = "TEXT"


# -- the validator --------------------------------------------------------------------------
def namespace_refusal(name: str, namespace: str, labels: dict[str, str]) -> str:
    """validation_webhook.go: the label every Experiment's namespace must carry."""
    if labels.get(C.INJECTION_LABEL) == C.INJECTION_ENABLED:
        return ""
    return (
        f'Cannot create the Experiment "{name}" in namespace "{namespace}": the namespace '
        f'lacks label "{C.INJECTION_LABEL}: {C.INJECTION_ENABLED}"'
    )


def completed(status: Obj | None) -> bool:
    conds = {c.get("type"): c.get("status") for c in (status or {}).get("conditions") or []}
    return "True" in (conds.get("Succeeded"), conds.get("Failed"))


def restartable(old: Obj) -> bool:
    """IsCompletedExperimentRestartable: succeeded by max trials, LongRunning/FromVolume."""
    cond = next(
        (c for c in (old.get("status") or {}).get("conditions") or [] if c["type"] == "Succeeded"),
        None,
    )
    return (
        cond is not None
        and cond.get("status") == "True"
        and cond.get("reason") == "ExperimentMaxTrialsReached"
        and old["spec"].get("resumePolicy") in ("LongRunning", "FromVolume")
    )


def validate(experiment: Obj, old: Obj | None, configmap: Lookup) -> list[FieldError]:
    """ValidateExperiment, on the defaulted Experiment."""
    errs: list[FieldError] = []
    name = experiment["metadata"]["name"]
    spec = experiment.get("spec") or {}
    if not NAME_PATTERN.match(name) or len(name) > 40:
        errs.append(E.invalid("metadata.name", name, NAME_MESSAGE))
    max_failed = spec.get("maxFailedTrialCount")
    max_trials = spec.get("maxTrialCount")
    parallel = spec.get("parallelTrialCount")
    if max_failed is not None and max_failed < 0:
        errs.append(E.invalid("spec.maxFailedTrialCount", max_failed, "should not be less than 0"))
    if max_trials is not None and max_trials <= 0:
        errs.append(E.invalid("spec.maxTrialCount", max_trials, "must be greater than 0"))
    if parallel is not None and parallel <= 0:
        errs.append(E.invalid("spec.parallelTrialCount", parallel, "must be greater than 0"))
    above = "should be less than or equal to spec.maxTrialCount"
    if max_failed is not None and max_trials is not None and max_failed > max_trials:
        errs.append(E.invalid("spec.maxFailedTrialCount", max_failed, above))
    if parallel is not None and max_trials is not None and parallel > max_trials:
        errs.append(E.invalid("spec.parallelTrialCount", parallel, above))
    if old is not None:
        errs += _update_errors(spec, old)
    objective = _objective_errors(spec.get("objective"))
    if objective:
        return errs + objective
    errs += _algorithm_errors(spec.get("algorithm"))
    errs += _early_stopping_errors(spec.get("earlyStopping"))
    if spec.get("resumePolicy", "") not in RESUME_POLICIES:
        errs.append(
            E.invalid("spec.resumePolicy", spec["resumePolicy"], "invalid ResumePolicyType")
        )
    errs += _trial_template_errors(spec, configmap)
    parameters = spec.get("parameters") or []
    if not parameters and spec.get("nasConfig") is None:
        errs.append(E.required("spec", "spec.parameters or spec.nasConfig must be specified"))
    if parameters and spec.get("nasConfig") is not None:
        errs.append(
            E.invalid(
                "spec",
                GoLiteral(f"v1beta1.ExperimentSpec{{Parameters:{go_v(parameters, _PARAMS)}, ...}}"),
                "only one of spec.parameters and spec.nasConfig can be specified",
            )
        )
    errs += _parameter_errors(parameters)
    errs += _metrics_collector_errors(spec.get("metricsCollectorSpec") or {})
    return errs


_PARAMS = slice_of(PARAMETER)
_TRIAL_PARAMS = slice_of(TRIAL_PARAMETER)
_STRINGS = slice_of(STRING)


def _update_errors(spec: Obj, old: Obj) -> list[FieldError]:
    errs = []
    old_spec = old.get("spec") or {}
    restarting = spec != old_spec
    if restarting and completed(old.get("status")) and not restartable(old):
        errs.append(
            E.invalid(
                "spec.resumePolicy",
                spec.get("resumePolicy", ""),
                "Experiment can be restarted if it is in succeeded state by reaching max trials "
                "and spec.resumePolicy = LongRunning or spec.resumePolicy = FromVolume, when "
                "experiment is completed",
            )
        )
    trials = int((old.get("status") or {}).get("trials", 0))
    if restarting and spec.get("maxTrialCount") is not None and spec["maxTrialCount"] <= trials:
        errs.append(
            E.invalid(
                "spec.maxTrialCount",
                spec["maxTrialCount"],
                "must be greater than status.trials count",
            )
        )
    editable = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")
    rest = {k: v for k, v in spec.items() if k not in editable}
    old_rest = {k: v for k, v in old_spec.items() if k not in editable}
    if rest != old_rest:
        errs.append(
            E.forbidden(
                "spec",
                "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount "
                "are editable",
            )
        )
    return errs


def _objective_errors(objective: Obj | None) -> list[FieldError]:
    if objective is None:
        return [E.required("spec.objective", "must be specified")]
    errs = []
    kind = objective.get("type", "")
    if kind not in ("minimize", "maximize"):
        errs.append(E.invalid("spec.objective.type", kind, "must be minimize or maximize"))
    name = objective.get("objectiveMetricName", "")
    if not name:
        errs.append(E.required("spec.objective.objectiveMetricName", "must be specified"))
    additional = objective.get("additionalMetricNames") or []
    if name in additional:
        errs.append(
            E.invalid(
                "spec.objective.additionalMetricNames",
                GoLiteral(go_sharp_v(additional, _STRINGS)),
                "should not contain spec.objective.objectiveMetricName",
            )
        )
    return errs


def _algorithm_errors(algorithm: Obj | None) -> list[FieldError]:
    if algorithm is None:
        return [E.required("spec.algorithm", "must be specified")]
    errs = []
    name = algorithm.get("algorithmName", "")
    if not name:
        errs.append(E.required("spec.algorithm.algorithmName", "must be specified"))
    if name not in C.SUGGESTIONS:
        reason = C.config_missing("suggestion config", f"algorithm: {name}")
        errs.append(
            E.invalid(
                "spec.algorithm.algorithmName",
                name,
                f"unable to get Suggestion config data for algorithm {name}: {reason}",
            )
        )
    return errs


def _early_stopping_errors(early: Obj | None) -> list[FieldError]:
    if early is None:
        return []
    errs = []
    name = early.get("algorithmName", "")
    if not name:
        errs.append(E.required("spec.earlyStopping.algorithmName", "must be specified"))
    if name not in C.EARLY_STOPPINGS:
        reason = C.config_missing("early stopping config", f"algorithm: {name}")
        errs.append(
            E.invalid(
                "spec.earlyStopping.algorithmName",
                name,
                f"unable to get EarlyStopping config data for algorithm {name}: {reason}",
            )
        )
    return errs


def _trial_template_errors(spec: Obj, configmap: Lookup) -> list[FieldError]:
    path = "spec.trialTemplate"
    template = spec.get("trialTemplate")
    if template is None:
        return [E.required(path, "must be specified")]
    errs = []
    if not template.get("primaryContainerName"):
        errs.append(E.required(f"{path}.primaryContainerName", "must be specified"))
    if not template.get("successCondition") or not template.get("failureCondition"):
        errs.append(E.required(path, "successCondition and failureCondition must be specified"))
    trial_params = template.get("trialParameters")
    if trial_params is None:
        return [*errs, E.required(f"{path}.trialParameters", "must be specified")]
    source, cm = template.get("trialSpec"), template.get("configMap")
    if source is None and cm is None:
        return [
            *errs,
            E.required(
                f"{path}.TrialSource",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            ),
        ]
    if source is not None and cm is not None:
        return [
            *errs,
            E.required(
                path,
                "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be "
                "specified",
            ),
        ]
    if cm is not None and not all(
        cm.get(k) for k in ("configMapName", "configMapNamespace", "templatePath")
    ):
        return [
            *errs,
            E.required(
                f"{path}.configMap",
                "configMapName, configMapNamespace and templatePath must be specified",
            ),
        ]
    try:
        text = template_text(spec, configmap)
    except TemplateError as exc:
        return [*errs, E.invalid(path, "", f"unable to parse spec.trialTemplate: {exc}")]
    parameters = spec.get("parameters") or []
    names = {p.get("name") for p in parameters}
    seen_names: set[str] = set()
    seen_refs: set[str] = set()
    shown = go_v(trial_params, _TRIAL_PARAMS)
    ppath = f"{path}.trialParameters"
    for i, param in enumerate(trial_params):
        name, ref = param.get("name", ""), param.get("reference", "")
        if not name or not ref or "{" in name or "}" in name:
            errs.append(
                E.invalid(
                    f"{ppath}[{i}]",
                    "",
                    "name and reference must be specified and name must not contain '{' or '}'",
                )
            )
            continue
        if name in seen_names:
            errs.append(
                E.invalid(
                    f"{ppath}[{i}].name",
                    name,
                    f"parameter name {name} can't be duplicated in "
                    f"spec.trialTemplate.trialParameters: {shown}",
                )
            )
            continue
        if ref in seen_refs:
            errs.append(
                E.invalid(
                    f"{ppath}[{i}].reference",
                    ref,
                    f"parameter reference {ref} can't be duplicated in "
                    f"spec.trialTemplate.trialParameters: {shown}",
                )
            )
            continue
        seen_names.add(name)
        seen_refs.add(ref)
        if names and not is_meta_key(ref) and ref not in names:
            errs.append(
                E.invalid(
                    f"{ppath}[{i}].reference",
                    ref,
                    f"parameter reference {ref} does not exist in spec.parameters: "
                    f"{go_v(parameters, _PARAMS)}",
                )
            )
        placeholder = PARAM_FORMAT.format(name)
        if placeholder not in text:
            errs.append(
                E.invalid(
                    f"{ppath}[{i}].name",
                    name,
                    f"parameter name: {name} in spec.trialParameters not found in "
                    f"spec.trialTemplate: {text}",
                )
            )
            return errs
        text = text.replace(placeholder, "test-value")
    left = PARAM_PATTERN.findall(text)
    if left:
        errs.append(
            E.invalid(
                path,
                "",
                f"parameters: [{' '.join(left)}] in spec.trialTemplate not found in "
                f"spec.trialParameters: {shown}",
            )
        )
    try:
        run_spec = parse(text)
    except TemplateError:
        errs.append(
            E.invalid(path, "", f"unable to convert spec.trialTemplate: {text} to unstructured")
        )
        return errs
    meta = run_spec.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        errs.append(
            E.invalid(
                path,
                "",
                "metadata.name and metadata.namespace in spec.trialTemplate must be omitted",
            )
        )
    if not run_spec.get("apiVersion") or not run_spec.get("kind"):
        errs.append(E.required(path, "APIVersion and Kind in spec.trialTemplate must be specified"))
    return errs


def _parameter_errors(parameters: list[Obj]) -> list[FieldError]:
    errs = []
    for i, param in enumerate(parameters):
        path = f"spec.parameters[{i}]"
        kind = param.get("parameterType", "")
        space = param.get("feasibleSpace") or {}
        if kind not in PARAMETER_TYPES:
            errs.append(
                E.invalid(f"{path}.parameterType", kind, f"parameterType: {kind} is not supported")
            )
        distribution = space.get("distribution", "")
        if distribution and distribution not in DISTRIBUTIONS:
            errs.append(
                E.invalid(
                    f"{path}.feasibleSpace.distribution",
                    distribution,
                    f"distribution: {distribution} is not supported",
                )
            )
        if not space:
            errs.append(E.required(f"{path}.feasibleSpace", "feasibleSpace must be specified"))
        elif kind in ("double", "int"):
            if space.get("list"):
                errs.append(
                    E.invalid(
                        f"{path}.feasibleSpace.list",
                        GoLiteral(go_sharp_v(space["list"], _STRINGS)),
                        f"feasibleSpace.list is not supported for parameterType: {kind}",
                    )
                )
            if not space.get("max") or not space.get("min"):
                errs.append(
                    E.required(
                        f"{path}.feasibleSpace.max",
                        "feasibleSpace.max or feasibleSpace.min must be specified for "
                        f"parameterType: {kind}",
                    )
                )
        elif kind in ("categorical", "discrete") and (
            space.get("max") or space.get("min") or space.get("step")
        ):
            errs.append(
                E.invalid(
                    f"{path}.feasibleSpace",
                    GoLiteral(go_sharp_v(space, FEASIBLE_SPACE)),
                    "feasibleSpace .max, .min and .step is not supported for parameterType: "
                    f"{kind}",
                )
            )
    return errs


def _metrics_collector_errors(mc: Obj) -> list[FieldError]:
    errs = []
    base = "spec.metricsCollectorSpec"
    kind = (mc.get("collector") or {}).get("kind", "")
    source = mc.get("source") or {}
    fs = source.get("fileSystemPath") or {}
    if kind in C.AUTO_INJECT and kind not in C.METRICS_COLLECTORS:
        reason = C.config_missing("metrics collector config", f"kind: {kind}")
        errs.append(
            E.invalid(
                f"{base}.collector.kind", kind, f"GetMetricsCollectorConfigData failed: {reason}"
            )
        )
    if kind in ("Push", "StdOut"):
        return errs
    if kind == "File":
        if fs.get("kind") != "File" or not str(fs.get("path", "")).startswith("/"):
            errs.append(
                E.required(
                    f"{base}.source.fileSystemPath.path",
                    "file path where metrics file exists is required",
                )
            )
        if fs.get("format") not in ("TEXT", "JSON"):
            errs.append(
                E.required(
                    f"{base}.source.fileSystemPath.format",
                    "format of metrics file is required for metrics collector",
                )
            )
        if fs.get("format") == "JSON" and source.get("filter") is not None:
            errs.append(
                E.invalid(
                    f"{base}.source.filter",
                    "",
                    "filter must be nil when format of metrics file is json",
                )
            )
    elif kind == "TensorFlowEvent":
        if fs.get("kind") != "Directory" or not str(fs.get("path", "")).startswith("/"):
            errs.append(
                E.required(
                    f"{base}.source",
                    "directory path where tensorflow event files exist is required by "
                    ".spec.metricsCollectorSpec.source.fileSystemPath.path",
                )
            )
        if fs.get("format"):
            errs.append(
                E.invalid(f"{base}.source.fileSystemPath.format", fs["format"], "must be empty")
            )
    elif kind == "PrometheusMetric":
        http = source.get("httpGet") or {}
        port = str(http.get("port", 0))
        if not port.isdigit() or int(port) <= 0:
            errs.append(
                E.invalid(
                    f"{base}.source.httpGet.port",
                    port,
                    f"must be a positive integer value for metrics collector kind: {kind}",
                )
            )
        if not str(http.get("path", "")).startswith("/"):
            errs.append(
                E.invalid(
                    f"{base}.source.httpGet.path",
                    http.get("path", ""),
                    f"path is invalid for metrics collector kind: {kind}",
                )
            )
    elif kind == "Custom":
        if (mc.get("collector") or {}).get("customCollector") is None:
            errs.append(
                E.required(
                    f"{base}.collector.customCollector",
                    f"metrics collector kind: {kind} is required",
                )
            )
        if fs and (
            not str(fs.get("path", "")).startswith("/")
            or fs.get("kind") not in ("Directory", "File")
        ):
            errs.append(
                E.invalid(
                    f"{base}.source.fileSystemPath",
                    "",
                    ".spec.metricsCollectorSpec.source is invalid",
                )
            )
    else:
        errs.append(
            E.invalid(f"{base}.collector.kind", kind, f"invalid metrics collector kind: {kind}")
        )
    for fmt in (source.get("filter") or {}).get("metricsFormat") or []:
        try:
            re.compile(fmt)
        except re.error as exc:
            errs.append(
                E.invalid(
                    f"{base}.source.filter.metricsFormat",
                    fmt,
                    f"invalid filter: error parsing regexp: {exc}",
                )
            )
            continue
        if not _TWO_GROUPS.match(fmt):
            errs.append(
                E.invalid(
                    f"{base}.source.filter.metricsFormat",
                    fmt,
                    "two top subexpressions are required",
                )
            )
    return errs


def validate_experiment(obj: Obj, configmap: Lookup | None = None) -> list[str]:
    """Every problem the two webhooks would refuse an Experiment for, as text, without a
    server (the namespace label aside), so a manifest test can assert `== []`."""
    problems = []
    if obj.get("apiVersion") != C.API_VERSION or obj.get("kind") != "Experiment":
        problems.append(
            f"apiVersion/kind: {obj.get('apiVersion')}/{obj.get('kind')}: must be "
            f"{C.API_VERSION}/Experiment"
        )
    body = copy.deepcopy(obj)
    try:
        body["spec"] = default_spec(body.get("spec"))
    except GoDecodeError as exc:
        return [*problems, str(exc)]
    body.setdefault("metadata", {}).setdefault("name", "")
    found = validate(body, None, configmap or (lambda namespace, name: None))
    return problems + [str(e) for e in found]


# -- the admission hooks --------------------------------------------------------------------
class ExperimentWebhooks:
    """The two webhooks as the registry's admission hooks for `experiments`."""

    def __init__(
        self, namespace_labels: Callable[[str], dict[str, str]], configmap: Lookup
    ) -> None:
        self.namespace_labels = namespace_labels
        self.configmap = configmap

    def mutate(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> list[str]:
        try:
            obj["spec"] = default_spec(copy.deepcopy(obj.get("spec")))
        except GoDecodeError as exc:
            raise denied(C.DEFAULTER, str(exc)) from None
        return []

    def validate(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> list[str]:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        refusal = namespace_refusal(meta["name"], namespace, self.namespace_labels(namespace))
        if refusal:
            raise denied(C.VALIDATOR, refusal)
        errs = validate(obj, old, self.configmap)
        if errs:
            raise denied(C.VALIDATOR, E.aggregate([str(e) for e in errs]))
        return []
