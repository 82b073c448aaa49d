"""A trial: the cell's own job with one point of the study's space in its environment.

Nothing but the environment and the name sets a trial apart from the cell's job (same
roles, resources, pod settings, carried definitions), so what ran in a trial is what the
cell runs alone, and a Katib trialSpec can be the same plan with `${trialParameters.x}`
for the values (`trial_parameter` with those texts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ciao.hp import env_names
from ciao.interpreter.pod import EnvVar, PodSettings
from ciao.interpreter.tune import TuneSpec
from ciao.interpreter.types import Parameter

#: A trial's parameter values: as Optuna gives them (a float, an int, a choice's value).
Values = Mapping[str, str | int | float]


def trial_name(study: str, number: int) -> str:
    """`<study>-<number>`: a DNS-1035 label as the study's name is (a few characters
    longer), and sorted with its study."""
    return f"{study}-{number}"


def env_text(value: str | int | float) -> str:
    """A value as its variable holds it: a float in full (repr), others as written."""
    return repr(value) if isinstance(value, float) else str(value)


def trial_env(values: Values) -> tuple[EnvVar, ...]:
    """CIAO_HP_<NAME> and KUBEFLOW_TRAINER_OPT_<NAME> of every parameter."""
    return tuple(
        EnvVar(variable, env_text(value))
        for name, value in values.items()
        for variable in env_names(name)
    )


def trial_parameter(
    parameter: Parameter, name: str, values: Values, owner: Mapping[str, str] | None = None
) -> Parameter:
    """The cell's Parameter as one trial's job: its name, the values in every role's
    environment (over any `%env` of the same name), owned by the study (`owner` adds the
    study and trial to the cell's owner), and a plain job: not a study, not a dry run,
    followed by the study's driver (never detached)."""
    env = PodSettings(env=trial_env(values))
    roles = {
        role: dataclasses.replace(spec, pod=env.with_defaults(spec.pod))
        for role, spec in parameter.roles.items()
    }
    return dataclasses.replace(
        parameter,
        generate_name=name,
        roles=roles,
        pod=env.with_defaults(parameter.pod),
        tune=None,
        dry_run=False,
        detach=False,
        on_interrupt="cancel",
        owner={**parameter.owner, **dict(owner or {})},
    )


def placeholders(spec: TuneSpec) -> dict[str, str]:
    """Each parameter's value as `%dryrun` shows a trial's plan: where it will come from
    (`<uniform(-10,10)>`); the study picks the real ones."""
    return {name: f"<{dist.describe()}>" for name, dist in spec.space}
