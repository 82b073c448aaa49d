"""Katib's admission rules for an Experiment, checked before anything is made. Pure.

Katib's CRDs are schemaless: its validating webhook is the validation
(pkg/webhook/v1beta1/experiment/validator/validator.go, v0.19.0). A study that breaks one
is refused here with Katib's own words, field path first as Kubernetes writes them, so
`%dryrun` shows an Experiment the webhook takes, and a run never makes half a study (the
messages leave out the Go dumps of the template and parameters Katib appends). The
namespace label the webhook also asks for needs the cluster: `label_problem` words it.

Beyond Katib's rules: the name is a whole DNS-1035 label (Katib's regular expression
matches a prefix only, and Kubernetes takes more in a name than the suggestion's Service
can), and the primary container is in the primary replica's pod template (Katib finds out
only when it injects the collector into a running trial's pod).
"""

from __future__ import annotations

import json
import os.path
import re
from typing import Any

from ciao.backend.kubeflow.katib import INJECTION_ENABLED, INJECTION_LABEL, MAX_NAME

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
NAME_RULE = (
    "name must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or "
    "'abc-123', regex used for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not "
    f"be longer than {MAX_NAME} characters. "
)
PLACEHOLDER = re.compile(r"\$\{trialParameters\..+?\}")
META_REFERENCE = re.compile(r"\$\{trialSpec\.(.+?)\}")
#: katib-config v0.19.0: the algorithms of `runtime.suggestions` and `earlyStoppings`.
SUGGESTIONS = (
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
)
EARLY_STOPPINGS = ("medianstop",)
PARAMETER_TYPES = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")


def _invalid(path: str, value: object, message: str) -> str:
    shown = json.dumps(value) if isinstance(value, str) else str(value)
    return f"{path}: Invalid value: {shown}: {message}"


def _required(path: str, message: str) -> str:
    return f"{path}: Required value: {message}"


def webhook_problems(experiment: dict[str, Any]) -> list[str]:
    """What Katib's validating webhook would refuse in `experiment`, in its words."""
    problems = _name(str((experiment.get("metadata") or {}).get("name", "")))
    spec = experiment.get("spec") or {}
    problems += _budget(spec)
    problems += _objective(spec.get("objective"))
    problems += _algorithm(spec.get("algorithm"), spec.get("earlyStopping"))
    problems += _trial_template(spec)
    problems += _parameters(spec.get("parameters") or [])
    problems += _metrics_collector(spec.get("metricsCollectorSpec") or {})
    return problems


def _name(name: str) -> list[str]:
    if DNS_1035.fullmatch(name) and len(name) <= MAX_NAME:
        return []
    return [_invalid("metadata.name", name, NAME_RULE)]


def _budget(spec: dict[str, Any]) -> list[str]:
    problems = []
    most, failed = spec.get("maxTrialCount"), spec.get("maxFailedTrialCount")
    parallel = spec.get("parallelTrialCount")
    if failed is not None and failed < 0:
        problems.append(_invalid("spec.maxFailedTrialCount", failed, "should not be less than 0"))
    if most is not None and most <= 0:
        problems.append(_invalid("spec.maxTrialCount", most, "must be greater than 0"))
    if parallel is not None and parallel <= 0:
        problems.append(_invalid("spec.parallelTrialCount", parallel, "must be greater than 0"))
    if failed is not None and most is not None and failed > most:
        problems.append(
            _invalid(
                "spec.maxFailedTrialCount",
                failed,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    if parallel is not None and most is not None and parallel > most:
        problems.append(
            _invalid(
                "spec.parallelTrialCount",
                parallel,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    return problems


def _objective(objective: dict[str, Any] | None) -> list[str]:
    if objective is None:
        return [_required("spec.objective", "must be specified")]
    problems = []
    if objective.get("type") not in ("minimize", "maximize"):
        problems.append(
            _invalid(
                "spec.objective.type", objective.get("type", ""), "must be minimize or maximize"
            )
        )
    if not objective.get("objectiveMetricName"):
        problems.append(_required("spec.objective.objectiveMetricName", "must be specified"))
    return problems


def _algorithm(algorithm: dict[str, Any] | None, early: dict[str, Any] | None) -> list[str]:
    if algorithm is None:
        return [_required("spec.algorithm", "must be specified")]
    problems = []
    name = algorithm.get("algorithmName", "")
    if name not in SUGGESTIONS:
        problems.append(
            _invalid(
                "spec.algorithm.algorithmName",
                name,
                f"unable to get Suggestion config data for algorithm {name}: failed to "
                f'find algorithm "{name}" config in configmap katib-config',
            )
        )
    if early is not None and early.get("algorithmName") not in EARLY_STOPPINGS:
        name = early.get("algorithmName", "")
        problems.append(
            _invalid(
                "spec.earlyStopping.algorithmName",
                name,
                f"unable to get EarlyStopping config data for algorithm {name}",
            )
        )
    return problems


def _trial_template(spec: dict[str, Any]) -> list[str]:
    path = "spec.trialTemplate"
    template = spec.get("trialTemplate")
    if template is None:
        return [_required(path, "must be specified")]
    problems = []
    if not template.get("primaryContainerName"):
        problems.append(_required(f"{path}.primaryContainerName", "must be specified"))
    if not template.get("successCondition") or not template.get("failureCondition"):
        problems.append(_required(path, "successCondition and failureCondition must be specified"))
    parameters = template.get("trialParameters")
    if parameters is None:
        return [*problems, _required(f"{path}.trialParameters", "must be specified")]
    job = template.get("trialSpec")
    if job is None:
        return [
            *problems,
            _required(
                f"{path}.TrialSource",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            ),
        ]
    text = json.dumps(job, sort_keys=True, separators=(",", ":"))
    names = {p.get("name") for p in spec.get("parameters") or []}
    seen_names: set[str] = set()
    seen_references: set[str] = set()
    for index, parameter in enumerate(parameters):
        at = f"{path}.trialParameters[{index}]"
        name, reference = parameter.get("name", ""), parameter.get("reference", "")
        if not name or not reference or "{" in name or "}" in name:
            problems.append(
                _invalid(
                    at,
                    "",
                    "name and reference must be specified and name must not contain '{' or '}'",
                )
            )
            continue
        if name in seen_names:
            problems.append(
                _invalid(
                    f"{at}.name",
                    name,
                    f"parameter name {name} can't be duplicated in "
                    "spec.trialTemplate.trialParameters",
                )
            )
            continue
        if reference in seen_references:
            problems.append(
                _invalid(
                    f"{at}.reference",
                    reference,
                    f"parameter reference {reference} can't be duplicated in "
                    "spec.trialTemplate.trialParameters",
                )
            )
            continue
        seen_names.add(name)
        seen_references.add(reference)
        if names and not META_REFERENCE.fullmatch(reference) and reference not in names:
            problems.append(
                _invalid(
                    f"{at}.reference",
                    reference,
                    f"parameter reference {reference} does not exist in spec.parameters",
                )
            )
        mark = "${trialParameters." + name + "}"
        if mark not in text:
            problems.append(
                _invalid(
                    f"{at}.name",
                    name,
                    f"parameter name: {name} in spec.trialParameters not found in "
                    "spec.trialTemplate",
                )
            )
            return problems
        text = text.replace(mark, "test-value")
    unknown = PLACEHOLDER.findall(text)
    if unknown:
        problems.append(
            _invalid(
                path,
                "",
                f"parameters: [{' '.join(unknown)}] in spec.trialTemplate not found in "
                "spec.trialParameters",
            )
        )
    metadata = job.get("metadata") or {}
    if metadata.get("name") or metadata.get("namespace"):
        problems.append(
            _invalid(
                path,
                "",
                "metadata.name and metadata.namespace in spec.trialTemplate must be omitted",
            )
        )
    if not job.get("apiVersion") or not job.get("kind"):
        problems.append(
            _required(path, "APIVersion and Kind in spec.trialTemplate must be specified")
        )
    return problems + _primary_container(template, job)


def _primary_container(template: dict[str, Any], job: dict[str, Any]) -> list[str]:
    """A v1 job's primary pod template has the primary container (a TrainJob's pods come
    from its runtime, whose trainer container Ciao does not read)."""
    name = template.get("primaryContainerName")
    specs = next(
        (v for k, v in (job.get("spec") or {}).items() if k.endswith("ReplicaSpecs")), None
    )
    if not name or not isinstance(specs, dict):
        return []
    primary = next((specs[r] for r in ("Chief", "Master", "Worker") if r in specs), None)
    if primary is None:
        return []
    containers = ((primary.get("template") or {}).get("spec") or {}).get("containers") or []
    if any(c.get("name") == name for c in containers):
        return []
    found = ", ".join(c.get("name", "") for c in containers) or "none"
    return [
        _invalid(
            "spec.trialTemplate.primaryContainerName",
            name,
            f"the primary replica's pod template has no container {name} (it has: {found})",
        )
    ]


def _parameters(parameters: list[dict[str, Any]]) -> list[str]:
    if not parameters:
        return [_required("spec", "spec.parameters or spec.nasConfig must be specified")]
    problems = []
    for index, parameter in enumerate(parameters):
        at = f"spec.parameters[{index}]"
        kind = parameter.get("parameterType", "")
        space = parameter.get("feasibleSpace") or {}
        if kind not in PARAMETER_TYPES:
            problems.append(
                _invalid(f"{at}.parameterType", kind, f"parameterType: {kind} is not supported")
            )
        distribution = space.get("distribution")
        if distribution and distribution not in DISTRIBUTIONS:
            problems.append(
                _invalid(
                    f"{at}.feasibleSpace.distribution",
                    distribution,
                    f"distribution: {distribution} is not supported",
                )
            )
        if not space:
            problems.append(_required(f"{at}.feasibleSpace", "feasibleSpace must be specified"))
        elif kind in ("double", "int"):
            if space.get("list"):
                problems.append(
                    _invalid(
                        f"{at}.feasibleSpace.list",
                        space["list"],
                        f"feasibleSpace.list is not supported for parameterType: {kind}",
                    )
                )
            if not space.get("max") or not space.get("min"):
                problems.append(
                    _required(
                        f"{at}.feasibleSpace.max",
                        "feasibleSpace.max or feasibleSpace.min must be specified for "
                        f"parameterType: {kind}",
                    )
                )
        elif space.get("max") or space.get("min") or space.get("step"):
            problems.append(
                _invalid(
                    f"{at}.feasibleSpace",
                    space,
                    "feasibleSpace .max, .min and .step is not supported for parameterType: "
                    f"{kind}",
                )
            )
    return problems


def _metrics_collector(collector: dict[str, Any]) -> list[str]:
    """Ciao's studies use the File collector; its path and format."""
    if (collector.get("collector") or {}).get("kind") != "File":
        return []
    path = ((collector.get("source") or {}).get("fileSystemPath")) or {}
    problems = []
    at = "spec.metricsCollectorSpec.source.fileSystemPath"
    if path.get("kind") != "File" or not os.path.isabs(str(path.get("path", ""))):
        problems.append(_required(f"{at}.path", "file path where metrics file exists is required"))
    if path.get("format") not in ("TEXT", "JSON"):
        problems.append(
            _required(f"{at}.format", "format of metrics file is required for metrics collector")
        )
    return problems


def label_problem(namespace: str, labels: dict[str, str] | None) -> str:
    """Why Katib refuses an Experiment in `namespace` with `labels` (its webhook's words
    and the command that fixes it); "" when it does not."""
    if labels is not None and labels.get(INJECTION_LABEL) == INJECTION_ENABLED:
        return ""
    return (
        f'the namespace lacks label "{INJECTION_LABEL}: {INJECTION_ENABLED}", without which '
        "Katib refuses Experiments there and injects no metrics collector. A namespace "
        "admin adds it with: kubectl label namespace "
        f"{namespace} {INJECTION_LABEL}={INJECTION_ENABLED}"
    )
