"""A Katib study as its objects say it (the Experiment is the record): the study read back
as its magics said it, each Trial a row of the view (state, typed parameters, objective by
Katib's strategy, why it failed), the best Katib's currentOptimalTrial, the verdict its
condition."""

from __future__ import annotations

import copy

import pytest
from test_katib_manifest import CODE, V2, study_plan

from ciao.backend.kubeflow import katib_state as S
from ciao.backend.types import JobDone

JOB = "%framework=pytorch\n%master=1\n%worker=1\n"


def experiment(tune: str, roles: str = JOB, target=None) -> dict:
    plan = study_plan(tune + roles + CODE, *(() if target is None else (target,)))
    return copy.deepcopy(plan.experiment)


def trial(name: str, created: str, conditions: list[str], **status) -> dict:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {
            "parameterAssignments": [
                {"name": "lr", "value": "0.0123"},
                {"name": "batch", "value": "64"},
                {"name": "opt", "value": "adam"},
                {"name": "n", "value": "3"},
            ]
        },
        "status": {
            "conditions": [
                {"type": c, "status": "True", "reason": f"Trial{c}", "message": f"Trial {c}"}
                for c in conditions
            ],
            **status,
        },
    }


SPACE = "%tune lr=loguniform(1e-4,0.1) batch=choice(32,64) opt=choice(adam,sgd) n=int(1,4)\n"


@pytest.mark.parametrize(
    "tune",
    [
        SPACE + "%objective=minimize:loss\n%trials=8;%parallel=2;%algorithm=tpe;%seed=3\n",
        SPACE + "%objective=maximize:acc:latest\n%earlyStopping=median\n%algorithm=random\n",
        "%tune u=logint(2,64) x=uniform(-10,10)\n%objective=minimize:loss:max\n",
    ],
)
def test_the_study_is_read_back_from_the_experiment_as_its_magics_said_it(tune):
    plan = study_plan(tune + JOB + CODE)
    assert S.study(plan.experiment) == plan.spec.describe()


def test_the_roles_and_primary_replica_are_the_trial_specs():
    tune = SPACE + "%objective=minimize:loss\n"
    assert S.roles(experiment(tune)) == {"master": 1, "worker": 1}
    assert S.primary_replica(experiment(tune)) == "master-0"
    v2 = experiment(tune, "%framework=pytorch\n%nodes=3\n", V2)
    assert S.roles(v2) == {"node": 3} and S.primary_replica(v2) == "node-0"


def test_a_trial_is_a_row_with_its_values_typed_as_its_parameters_are():
    exp = experiment(SPACE + "%objective=minimize:loss\n")
    running = trial("ciao-abcde-x1", "2026-01-01T00:00:01Z", ["Created", "Running"])
    row = S.trial_update(4, running, exp, "2 Running")
    assert (row.number, row.state, row.job, row.replicas) == (
        4,
        "Running",
        "ciao-abcde-x1",
        "2 Running",
    )
    assert row.params == {"lr": 0.0123, "batch": 64, "opt": "adam", "n": 3}
    assert row.value is None and not row.best


@pytest.mark.parametrize(
    "conditions, state",
    [
        (["Created"], "Pending"),
        (["Created", "Running"], "Running"),
        (["Created", "Succeeded"], "Succeeded"),
        (["Created", "Failed"], "Failed"),
        (["Created", "EarlyStopped"], "Pruned"),
        (["Created", "Killed"], "Cancelled"),
        (["Created", "MetricsUnavailable"], "Failed"),
    ],
)
def test_katibs_trial_conditions_are_the_views_states(conditions, state):
    exp = experiment(SPACE + "%objective=minimize:loss\n")
    assert S.trial_update(0, trial("t", "", conditions), exp).state == state


def test_the_objective_is_the_strategys_value_and_unavailable_is_none():
    observed = {"metrics": [{"name": "loss", "min": "0.1", "max": "0.9", "latest": "0.3"}]}
    done = trial("t", "", ["Succeeded"], observation=observed)
    assert S.trial_update(0, done, experiment(SPACE + "%objective=minimize:loss\n")).value == 0.1
    latest = experiment(SPACE + "%objective=minimize:loss:latest\n")
    assert S.trial_update(0, done, latest).value == 0.3
    nothing = {"metrics": [{"name": "loss", "min": "unavailable", "latest": "unavailable"}]}
    missing = trial("t", "", ["MetricsUnavailable"], observation=nothing)
    assert S.trial_update(0, missing, latest).value is None


def test_a_trial_without_the_metric_says_where_katib_looked_and_what_to_print():
    exp = experiment(SPACE + "%objective=minimize:val_loss\n")
    row = S.trial_update(0, trial("t", "", ["Created", "MetricsUnavailable"]), exp)
    assert row.message == (
        "MetricsUnavailable: Katib's File collector found no val_loss in "
        "/var/log/katib/metrics.log of the primary replica (master-0, container pytorch): it "
        "must print a line like `val_loss=0.42` (Katib's filter "
        r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)), which Ciao's main.py also "
        "appends to that file"
    )


def test_a_failed_trial_says_what_its_job_said_else_katibs_condition():
    exp = experiment(SPACE + "%objective=minimize:loss\n")
    failed = trial("t", "", ["Created", "Failed"])
    assert S.trial_update(0, failed, exp).message == "Trial Failed"
    said = S.trial_update(0, failed, exp, job_failure="exit code 1 (master-0)")
    assert said.message == "exit code 1 (master-0)"


def test_the_best_is_katibs_current_optimal_trial():
    exp = experiment(SPACE + "%objective=minimize:loss\n")
    exp["status"] = {"currentOptimalTrial": {"bestTrialName": "t2"}}
    assert S.trial_update(2, trial("t2", "", ["Succeeded"]), exp).best
    assert not S.trial_update(1, trial("t1", "", ["Succeeded"]), exp).best


def test_trials_are_numbered_in_the_order_katib_made_them():
    trials = [
        trial("ciao-abcde-zz", "2026-01-01T00:00:02Z", []),
        trial("ciao-abcde-bb", "2026-01-01T00:00:01Z", []),
        trial("ciao-abcde-aa", "2026-01-01T00:00:01Z", []),
    ]
    numbered = [(n, S.name_of(t)) for n, t in S.numbered(trials)]
    assert numbered == [(0, "ciao-abcde-aa"), (1, "ciao-abcde-bb"), (2, "ciao-abcde-zz")]


def condition(kind: str, message: str) -> dict:
    return {"type": kind, "status": "True", "message": message}


def test_the_verdict_is_the_experiments_condition_ok_only_with_a_best():
    exp = experiment(SPACE + "%objective=minimize:loss\n")
    exp["status"] = {"conditions": [condition("Running", "Experiment is running")]}
    assert S.verdict(exp) is None and S.state_of(exp) == "Running"
    done = "Experiment has succeeded because max trial count has reached"
    exp["status"]["conditions"].append(condition("Succeeded", done))
    assert S.verdict(exp) == JobDone(
        False, "Failed", f"no trial reported the objective (Katib: {done})"
    )
    exp["status"]["currentOptimalTrial"] = {"bestTrialName": "t2"}
    assert S.verdict(exp) == JobDone(True, "Succeeded", f"Katib: {done}")
    assert S.state_of(exp) == "Succeeded"
    failed = "Experiment has failed because max failed count has reached"
    exp["status"]["conditions"][-1] = condition("Failed", failed)
    assert S.verdict(exp) == JobDone(False, "Failed", f"Katib: {failed}")
