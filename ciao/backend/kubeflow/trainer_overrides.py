"""Which of a cell's pod settings each Kubeflow Trainer v2 release can carry, and the
refusal of the others while the job is planned, before anything is built or created.

A TrainJob sets its pods through one override field whose schema grew with every release
(checked against the TrainJob CRDs of v2.0.0, v2.1.0, v2.2.0 and v2.3.0; see
docs/kubeflow-trainer-v2.md): v2.0's podSpecOverrides has volumes, mounts, nodeSelector,
tolerations and serviceAccountName; v2.1's podTemplateOverrides adds pod metadata,
affinity and imagePullSecrets; v2.2's runtimePatches add the pod's and the container's
securityContext. None has priorityClassName, schedulerName or a container's envFrom.
Created with strict field validation, a field the release lacks would fail the create;
refusing it at plan time also says what to do instead, and `%dryrun` shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from ciao.backend.kubeflow.pod_settings import say
from ciao.errors import BackendError
from ciao.interpreter.pod import OBJECT_KEYS, SETTING_OF_FIELD, PodSettings, as_magics
from ciao.interpreter.types import Parameter

_FROM_V2_1 = ("v2.1", "v2.2", "v2.3")
#: The releases whose pod override can carry a securityContext (runtimePatches: the pod's
#: and a container's); in v2.0 and v2.1 only the runtime's pod template can set one.
SECURITY_CONTEXT_RELEASES = ("v2.2", "v2.3")
#: The alternative for a field only the runtime's own pod template can set.
_IN_THE_RUNTIME = (
    "set {field} in the runtime instead: a TrainingRuntime (or ClusterTrainingRuntime) "
    "whose pod template of replicated job `node` has {field}, named with %runtime=NAME"
)


@dataclass(frozen=True)
class Carried:
    """One pod setting (its magic or config key), the field it becomes, the releases
    whose override field has that field, and what to do on the others."""

    setting: str
    field: str
    releases: tuple[str, ...]
    alternative: str


CARRIED: tuple[Carried, ...] = (
    Carried(
        "priorityClass",
        "the pod's priorityClassName",
        (),
        _IN_THE_RUNTIME.format(field="priorityClassName"),
    ),
    Carried(
        "schedulerName",
        "the pod's schedulerName",
        (),
        _IN_THE_RUNTIME.format(field="schedulerName")
        + " (for Volcano's gang scheduling: from v2.1, a runtime whose podGroupPolicy is "
        "volcano)",
    ),
    Carried(
        "imagePullSecret",
        "the pod's imagePullSecrets",
        _FROM_V2_1,
        "give the pods' service account the pull secret: kubectl patch serviceaccount "
        "{account} -p '{{\"imagePullSecrets\":[{secrets}]}}', and run as it "
        "with %serviceAccount={account}",
    ),
    Carried("labels", "the pod's labels", _FROM_V2_1, _IN_THE_RUNTIME.format(field="the labels")),
    Carried(
        "annotations",
        "the pod's annotations",
        _FROM_V2_1,
        _IN_THE_RUNTIME.format(field="the annotations"),
    ),
    Carried(
        "affinity",
        "the pod's affinity",
        _FROM_V2_1,
        "use %nodeSelector=LABEL=VALUE, or " + _IN_THE_RUNTIME.format(field="affinity"),
    ),
    Carried(
        "securityContext",
        "the pod's securityContext",
        SECURITY_CONTEXT_RELEASES,
        _IN_THE_RUNTIME.format(field="securityContext"),
    ),
    Carried(
        "envFrom",
        "the container's envFrom",
        (),
        "name each key instead: %env=NAME=secret:SECRET/KEY (or configMap:NAME/KEY)",
    ),
)


def check_release(settings: PodSettings, release: str, override_field: str) -> None:
    """Refuse every setting `release`'s override field cannot carry, naming each of its
    values and where it was given, the release and the alternative; all in one error."""
    given = _given(settings)
    problems = []
    for carried in CARRIED:
        if carried.setting not in given or release in carried.releases:
            continue
        texts = given[carried.setting]
        account = settings.service_account or "NAME"
        secrets = ",".join(f'{{"name":"{text}"}}' for text in texts)
        alternative = carried.alternative.format(account=account, secrets=secrets)
        named = ", ".join(say(settings, carried.setting, text) for text in texts)
        problems.append(
            f"{named}: Kubeflow Trainer {release}'s TrainJob cannot set {carried.field} (its "
            f"{override_field} has no such field): {alternative}"
        )
    if problems:
        raise BackendError("; ".join(problems))


def _given(settings: PodSettings) -> dict[str, list[str]]:
    """Every setting given: its values as the magic writes them (one "" for a config-only
    object), in order."""
    given: dict[str, list[str]] = {}
    for magic, text in as_magics(settings):
        given.setdefault(magic, []).append("" if magic in OBJECT_KEYS else text)
    return given


def node_settings(parameter: Parameter) -> PodSettings:
    """The pod settings of every node: a TrainJob's nodes are one pod template, so the
    roles' lines (`%master`, `%worker`) must not set different ones."""
    by_role = {role: parameter.pod_of(role) for role in parameter.roles}
    if not by_role:
        return parameter.pod
    first_role, first = next(iter(by_role.items()))
    for role, settings in by_role.items():
        differ = [
            _named(SETTING_OF_FIELD[f.name], first, settings)
            for f in fields(PodSettings)
            if f.name != "origins" and _canonical(settings, f.name) != _canonical(first, f.name)
        ]
        if differ:
            raise BackendError(
                "Kubeflow Trainer v2 gives every node the same pod, but this cell gives the "
                f"{first_role} and {role} replicas different {', '.join(differ)}: write them "
                "on their own line (for every node), not on a role's line"
            )
    return first


def _named(setting: str, one: PodSettings, other: PodSettings) -> str:
    """`%toleration (line 2)`: the setting, and the lines of the values one role has and
    the other has not (a role's line: only one can make two roles differ)."""
    ones, others = _values(one, setting), _values(other, setting)
    lines = {one.origin(setting, text) for text in ones - others} | {
        other.origin(setting, text) for text in others - ones
    }
    lines = {where for where in lines if where.startswith("line ")}
    name = setting if setting in OBJECT_KEYS else f"%{setting}"
    return f"{name} ({', '.join(sorted(lines))})" if lines else name


def _values(settings: PodSettings, setting: str) -> set[str]:
    return {text for magic, text in as_magics(settings) if magic == setting}


def _canonical(settings: PodSettings, name: str) -> str:
    return json.dumps(getattr(settings, name), sort_keys=True, default=repr)
