"""The trial template: its text, and a trial's run spec made from it
(pkg/controller.v1beta1/experiment/manifest/generator.go).

Substitution is textual, over the template as encoding/json writes it (keys sorted, compact,
a trailing newline): every `${trialParameters.<name>}` is replaced by the value of the
parameter its trialParameter references, or by trial metadata for references
`${trialSpec.Name}`, `.Namespace`, `.Kind`, `.APIVersion`, `.Labels[key]`,
`.Annotations[key]`; the result is parsed again and named like the trial.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from ..store import Obj
from .gotypes import go_json

PARAM_FORMAT = "${{trialParameters.{}}}"
PARAM_PATTERN = re.compile(r"\$\{trialParameters\..+?\}")
META_PATTERN = re.compile(r"\$\{trialSpec\.(.+?)\}")
META_INDEX = re.compile(r"(.+)\[(.+)]")
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")


class TemplateError(Exception):
    """The generator's error text."""


def is_meta_key(reference: str) -> bool:
    """A reference to trial metadata (`${trialSpec.Name}`, `${trialSpec.Labels[x]}`)."""
    m = META_PATTERN.search(reference)
    if not m:
        return False
    key = m.group(1)
    if key in META_KEYS:
        return True
    sub = META_INDEX.search(key)
    return sub is not None and sub.group(1) in META_KEYS


def template_text(spec: Obj, configmap: Callable[[str, str], Obj | None]) -> str:
    """GetTrialTemplate: the trialSpec as JSON, or the ConfigMap's template text."""
    template = spec.get("trialTemplate") or {}
    if template.get("trialSpec") is not None:
        return go_json(template["trialSpec"]) + "\n"
    source = template.get("configMap") or {}
    name, namespace = source.get("configMapName", ""), source.get("configMapNamespace", "")
    cm = configmap(namespace, name)
    if cm is None:
        raise TemplateError(f'configMap not found: configmaps "{name}" not found')
    data = cm.get("data") or {}
    path = source.get("templatePath", "")
    if path not in data:
        shown = " ".join(f"{k}:{v}" for k, v in sorted(data.items()))
        raise TemplateError(
            f"unable to find trial template in ConfigMap: TemplatePath: {path}, "
            f"ConfigMap: map[{shown}]"
        )
    return str(data[path])


def parse(text: str) -> Obj:
    """ConvertStringToUnstructured: JSON or YAML, an object with a kind."""
    try:
        obj = json.loads(text)
    except ValueError:
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateError(str(exc)) from exc
    if not isinstance(obj, dict):
        raise TemplateError(f"cannot unmarshal {type(obj).__name__} into an object")
    if not obj.get("kind"):
        raise TemplateError(f"Object 'Kind' is missing in '{text.strip()}'")
    return obj


def run_spec(
    experiment: Obj,
    trial_name: str,
    namespace: str,
    assignments: list[Obj],
    configmap: Callable[[str, str], Obj | None],
) -> Obj:
    """GetRunSpecWithHyperParameters: the trial's job, parameters in, named like the trial."""
    spec = experiment["spec"]
    text = template_text(spec, configmap)
    template = spec["trialTemplate"]
    trial_spec = template.get("trialSpec") or parse(text)
    values = {a.get("name", ""): a.get("value", "") for a in assignments}
    placeholders: dict[str, str] = {}
    used = 0
    for param in template.get("trialParameters") or []:
        reference = param.get("reference", "")
        m = META_PATTERN.search(reference)
        if m is None:
            if reference not in values:
                raise TemplateError(
                    "unable to find non-meta parameter from TrialParameters in "
                    f"ParameterAssignment: parameter: {reference}, parameter assignment: "
                    f"map[{' '.join(f'{k}:{v}' for k, v in sorted(values.items()))}]"
                )
            placeholders[param["name"]] = values[reference]
            used += 1
            continue
        placeholders[param["name"]] = _meta_value(
            reference, m.group(1), trial_spec, trial_name, namespace
        )
    if len(assignments) != used:
        raise TemplateError(
            "unable to find parameter from ParameterAssignment in TrialParameters: parameter "
            f"assignments: {assignments}, non-meta trial parameter count: {used}"
        )
    for name, value in placeholders.items():
        text = text.replace(PARAM_FORMAT.format(name), value)
    job = parse(text)
    meta = job.setdefault("metadata", {})
    meta["name"] = trial_name
    meta["namespace"] = namespace
    return job


def _meta_value(reference: str, key: str, trial_spec: Obj, name: str, namespace: str) -> str:
    index = ""
    sub = META_INDEX.search(key)
    if sub:
        key, index = sub.group(1), sub.group(2)
    meta: dict[str, Any] = trial_spec.get("metadata") or {}
    if key == "Name":
        return name
    if key == "Namespace":
        return namespace
    if key == "Kind":
        return str(trial_spec.get("kind", ""))
    if key == "APIVersion":
        return str(trial_spec.get("apiVersion", ""))
    for field, what in (("Annotations", "Annotation"), ("Labels", "Label")):
        if key == field:
            found = (meta.get(field.lower()) or {}).get(index)
            if found is None:
                raise TemplateError(
                    f"illegal reference of trial metadata: {reference}; failed to fetch "
                    f"{what}: {index}"
                )
            return str(found)
    raise TemplateError(f"illegal reference of trial metadata: {reference}")
