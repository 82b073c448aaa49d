"""A `%tune` cell as a Katib Experiment: its search space, objective, algorithm, budget
and File collector in Katib's terms; its trialSpec is the job Ciao plans for the cell
(PyTorchJob, TFJob, TrainJob) with `${trialParameters.<name>}` in its env; and Katib's
webhook rules, checked before anything is made, with Katib's own messages."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest
from fakecluster import validate_experiment

from ciao.backend.kubeflow.katib import (
    COMPLETE,
    FAILED,
    METRICS_FILE,
    SUCCEEDED,
    TRAINJOB_PRIMARY,
    V1_PRIMARY,
    KatibPlan,
    katib_plan,
)
from ciao.backend.kubeflow.katib_rules import label_problem, webhook_problems
from ciao.backend.kubeflow.plan import KubeflowPlan, Target, plan_job
from ciao.backend.kubeflow.trainjob import Runtime
from ciao.constants import KATIB_FILTER
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter
from ciao.s2i.configmap import ConfigMapCode
from ciao.tune.katib_engine import katib_trial

IMAGES = {"pytorch": "pytorch/pytorch:2.5.1", "tensorflow": "tensorflow/tensorflow:2.18.0"}
OWNER = {"kernel-id": "0b4c2f9e-1234", "session": "abcdef0123", "cell": "7"}
CODE = 'import ciao.hp\nx = ciao.hp.float("x")\nprint(f"loss={(x - 2) ** 2}")\n'
STUDY = "%tune x=uniform(-10,10)\n%objective=minimize:loss\n%trials=6;%parallel=2;%seed=1\n"
V1 = Target()
V2 = Target("v2", "auto", Runtime("torch-distributed"), "v2.3", "served")


def parameter_of(cell: str, name: str = "ciao-abcde") -> Parameter:
    parameter = MagicInterpreter(name_factory=lambda: name).preprocess(cell)
    return dataclasses.replace(parameter, owner=dict(OWNER))


def trial_plan(parameter: Parameter, target: Target = V1) -> KubeflowPlan:
    """The trials' job exactly as the Kubeflow backend plans a job (configmap provider)."""
    shipment = ConfigMapCode(IMAGES).plan(parameter)
    return plan_job(parameter, shipment, "team", target)


def study_plan(cell: str, target: Target = V1, name: str = "ciao-abcde") -> KatibPlan:
    parameter = parameter_of(cell, name)
    assert parameter.tune is not None
    return katib_plan(trial_plan(katib_trial(parameter), target), parameter.tune)


def spec_of(cell: str, target: Target = V1) -> dict:
    return study_plan(cell, target).experiment["spec"]


def containers(job: dict) -> list[dict]:
    """Every container of a v1 job's pod templates (or a TrainJob's trainer, as one)."""
    if job["kind"] == "TrainJob":
        return [job["spec"]["trainer"]]
    specs = next(v for k, v in job["spec"].items() if k.endswith("ReplicaSpecs"))
    return [c for role in specs.values() for c in role["template"]["spec"]["containers"]]


# ---- the study in Katib's terms ----------------------------------------------------------


def test_each_distribution_is_katibs_parameter_type_with_its_values_as_strings():
    cell = (
        "%tune x=uniform(-10,10) lr=loguniform(1e-4,0.1) layers=int(2,6) "
        "units=logint(8,512) batch=choice(32,64,128) drop=choice(0.1,0.5) "
        "opt=choice(adam,sgd)\n%objective=minimize:loss\n" + CODE
    )
    parameters = {p["name"]: p for p in spec_of(cell)["parameters"]}

    assert parameters["x"] == {
        "name": "x",
        "parameterType": "double",
        "feasibleSpace": {"min": "-10", "max": "10", "distribution": "uniform"},
    }
    assert parameters["lr"]["parameterType"] == "double"
    assert parameters["lr"]["feasibleSpace"] == {
        "min": "0.0001",
        "max": "0.1",
        "distribution": "logUniform",
    }
    assert parameters["layers"]["parameterType"] == "int"
    assert parameters["layers"]["feasibleSpace"] == {
        "min": "2",
        "max": "6",
        "distribution": "uniform",
    }
    assert parameters["units"]["parameterType"] == "int"
    assert parameters["units"]["feasibleSpace"]["distribution"] == "logUniform"
    assert parameters["batch"] == {
        "name": "batch",
        "parameterType": "discrete",
        "feasibleSpace": {"list": ["32", "64", "128"]},
    }
    assert parameters["drop"]["parameterType"] == "discrete"
    assert parameters["drop"]["feasibleSpace"] == {"list": ["0.1", "0.5"]}
    assert parameters["opt"] == {
        "name": "opt",
        "parameterType": "categorical",
        "feasibleSpace": {"list": ["adam", "sgd"]},
    }


def test_the_objective_names_the_metric_and_its_strategy():
    spec = spec_of(STUDY + CODE)
    assert spec["objective"] == {
        "type": "minimize",
        "objectiveMetricName": "loss",
        "metricStrategies": [{"name": "loss", "value": "min"}],
    }
    latest = spec_of("%tune x=uniform(0,1)\n%objective=maximize:accuracy:latest\n" + CODE)
    assert latest["objective"]["type"] == "maximize"
    assert latest["objective"]["metricStrategies"] == [{"name": "accuracy", "value": "latest"}]


def test_the_algorithm_is_katibs_of_the_same_name_and_the_seed_its_random_state():
    spec = spec_of(STUDY + "%algorithm=tpe\n" + CODE)
    assert spec["algorithm"] == {
        "algorithmName": "tpe",
        "algorithmSettings": [{"name": "random_state", "value": "1"}],
    }
    unseeded = spec_of("%tune x=uniform(0,1)\n%objective=minimize:loss\n%algorithm=random\n" + CODE)
    assert unseeded["algorithm"] == {"algorithmName": "random"}
    assert "earlyStopping" not in unseeded


def test_median_early_stopping_is_katibs_medianstop():
    spec = spec_of(STUDY + "%earlyStopping=median\n" + CODE)
    assert spec["earlyStopping"] == {"algorithmName": "medianstop"}


def test_the_budget_fails_the_study_only_when_every_trial_failed():
    spec = spec_of(STUDY + CODE)
    assert (spec["parallelTrialCount"], spec["maxTrialCount"], spec["maxFailedTrialCount"]) == (
        2,
        6,
        6,
    )


def test_metrics_are_read_by_the_file_collector_with_katibs_default_filter():
    assert spec_of(STUDY + CODE)["metricsCollectorSpec"] == {
        "collector": {"kind": "File"},
        "source": {
            "fileSystemPath": {"path": METRICS_FILE, "kind": "File", "format": "TEXT"},
            "filter": {"metricsFormat": [KATIB_FILTER]},
        },
    }
    assert METRICS_FILE == "/var/log/katib/metrics.log"


def test_the_experiment_is_named_and_labelled_like_the_study():
    plan = study_plan(STUDY + CODE)
    metadata = plan.experiment["metadata"]
    assert plan.experiment["apiVersion"] == "kubeflow.org/v1beta1"
    assert plan.experiment["kind"] == "Experiment"
    assert metadata["name"] == "ciao-abcde" and metadata["namespace"] == "team"
    assert metadata["labels"]["app.kubernetes.io/managed-by"] == "ciao"
    assert metadata["labels"]["ciao.kubeflow.org/study"] == "ciao-abcde"


# ---- the trialSpec is the cell's job -------------------------------------------------------


def without_trial_values(job: dict) -> dict:
    """The job without the study's variables (CIAO_HP_*, KUBEFLOW_TRAINER_OPT_*)."""
    job = copy.deepcopy(job)
    for container in containers(job):
        container["env"] = [
            e
            for e in container.get("env", [])
            if not e["name"].startswith(("CIAO_HP_", "KUBEFLOW_TRAINER_OPT_"))
        ]
    return job


@pytest.mark.parametrize(
    "roles, target",
    [
        ("%framework=pytorch\n%master=1\n%worker=1;%cpu=1\n", Target()),
        ("%framework=tensorflow\n%chief=1\n%worker=2\n", Target()),
        ("%framework=pytorch\n%nodes=2\n", V2),
    ],
    ids=["PyTorchJob", "TFJob", "TrainJob"],
)
def test_the_trial_spec_is_the_job_planned_for_the_cell_with_the_values_in_its_env(roles, target):
    plan = study_plan(STUDY + roles + CODE, target)
    trial_spec = plan.experiment["spec"]["trialTemplate"]["trialSpec"]
    # the same cell without %tune, as a job of the study's name and owner
    alone = dataclasses.replace(parameter_of(roles + CODE), owner={**OWNER, "study": "ciao-abcde"})
    job = trial_plan(alone, target).job

    assert "name" not in trial_spec["metadata"] and "namespace" not in trial_spec["metadata"]
    del job["metadata"]["name"], job["metadata"]["namespace"]
    assert without_trial_values(trial_spec) == job
    for container in containers(trial_spec):
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert env["CIAO_HP_X"] == env["KUBEFLOW_TRAINER_OPT_X"] == "${trialParameters.x}"


def test_the_trials_share_the_studys_code_configmap_which_the_experiment_will_own():
    plan = study_plan(STUDY + "%framework=pytorch\n%master=1\n" + CODE)
    assert plan.config_map is not None
    assert plan.config_map["metadata"]["name"] == "ciao-abcde-code"
    shipped = json.loads(plan.config_map["data"]["carried.json"])
    assert shipped["metrics"] == {"file": METRICS_FILE, "filter": KATIB_FILTER}
    assert [d["kind"] for d in plan.documents()] == ["ConfigMap", "Experiment"]
    volumes = plan.experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]
    master = volumes["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]
    assert {"name": "ciao-code", "configMap": {"name": "ciao-abcde-code"}} in master


def test_a_trials_command_with_requirements_ends_so_that_katibs_wrapper_runs_after_it():
    plan = study_plan(STUDY + "%framework=pytorch\n%master=1\n%requirements=numpy\n" + CODE)
    spec = plan.experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]
    command = spec["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"]
    # Katib runs `<command> && echo completed > /var/log/katib/$$.pid`: an exec would skip it
    assert "exec" not in command[2] and command[2].endswith("python -u /opt/ciao/main.py")


@pytest.mark.parametrize(
    "roles, target, container, success, primary",
    [
        ("%framework=pytorch\n%master=1\n%worker=1\n", Target(), "pytorch", SUCCEEDED, V1_PRIMARY),
        ("%framework=tensorflow\n%worker=2\n", Target(), "tensorflow", SUCCEEDED, V1_PRIMARY),
        ("%framework=pytorch\n%nodes=2\n", V2, "node", COMPLETE, TRAINJOB_PRIMARY),
    ],
    ids=["PyTorchJob", "TFJob", "TrainJob"],
)
def test_the_trial_template_names_the_primary_container_pod_and_conditions(
    roles, target, container, success, primary
):
    template = spec_of(STUDY + roles + CODE, target)["trialTemplate"]
    assert template["primaryContainerName"] == container
    assert template["primaryPodLabels"] == primary
    assert template["successCondition"] == success
    assert template["failureCondition"] == FAILED
    assert template["retain"] is True
    assert template["trialParameters"] == [
        {
            "name": "x",
            "description": "uniform(-10,10), as CIAO_HP_X and KUBEFLOW_TRAINER_OPT_X",
            "reference": "x",
        }
    ]


def test_the_trial_pods_opt_out_of_istio():
    v1 = study_plan(STUDY + "%framework=pytorch\n%master=1\n%worker=1\n" + CODE)
    specs = v1.experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["pytorchReplicaSpecs"]
    for role in specs.values():
        assert role["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    v2 = study_plan(STUDY + "%framework=pytorch\n%nodes=2\n" + CODE, V2)
    patch = v2.experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["runtimePatches"][0]
    job = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod = job["template"]["spec"]["template"]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


# ---- Katib's webhook rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    "roles, target",
    [
        ("%framework=pytorch\n%master=1\n%worker=1\n", Target()),
        ("%framework=tensorflow\n%chief=1\n%ps=1\n%worker=1\n", Target()),
        ("%framework=pytorch\n%nodes=3\n", V2),
    ],
    ids=["PyTorchJob", "TFJob", "TrainJob"],
)
def test_every_study_ciao_plans_passes_katibs_webhook_rules(roles, target):
    cell = (
        "%tune lr=loguniform(1e-4,0.1) batch=choice(32,64) opt=choice(adam,sgd) n=int(1,4)\n"
        "%objective=maximize:accuracy\n%trials=20;%parallel=4;%algorithm=tpe;%seed=3\n"
        "%earlyStopping=median\n" + roles + CODE
    )
    experiment = study_plan(cell, target).experiment
    assert webhook_problems(experiment) == []
    assert validate_experiment(experiment) == []  # the test cluster's Katib webhooks agree


def experiment() -> dict:
    return copy.deepcopy(study_plan(STUDY + "%framework=pytorch\n%master=1\n" + CODE).experiment)


def test_a_name_over_40_characters_or_not_a_dns_label_is_refused_with_katibs_words():
    long = experiment()
    long["metadata"]["name"] = "a" * 41
    (problem,) = webhook_problems(long)
    assert problem.startswith(f'metadata.name: Invalid value: "{"a" * 41}": name must consist')
    assert "may not be longer than 40 characters" in problem
    assert [p for p in validate_experiment(long) if "metadata.name" in p]
    upper = experiment()
    upper["metadata"]["name"] = "Ciao-abcde"
    assert len(webhook_problems(upper)) == 1
    assert webhook_problems(study_plan(STUDY + CODE, name="a" * 40).experiment) == []


def test_a_trial_parameter_the_template_does_not_use_is_refused():
    unused = experiment()
    unused["spec"]["parameters"].append(
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
    )
    unused["spec"]["trialTemplate"]["trialParameters"].append({"name": "y", "reference": "y"})
    (problem,) = webhook_problems(unused)
    assert problem.startswith('spec.trialTemplate.trialParameters[1].name: Invalid value: "y"')
    assert "parameter name: y in spec.trialParameters not found in spec.trialTemplate" in problem


def test_a_placeholder_no_trial_parameter_names_is_refused():
    unknown = experiment()
    job = unknown["spec"]["trialTemplate"]["trialSpec"]
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    master["env"].append({"name": "Y", "value": "${trialParameters.y}"})
    (problem,) = webhook_problems(unknown)
    assert "parameters: [${trialParameters.y}] in spec.trialTemplate not found in" in problem


def test_a_trial_parameter_referencing_no_parameter_is_refused():
    wrong = experiment()
    wrong["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "z"
    (problem,) = webhook_problems(wrong)
    assert "parameter reference z does not exist in spec.parameters" in problem


def test_the_primary_container_and_the_conditions_are_required():
    missing = experiment()
    template = missing["spec"]["trialTemplate"]
    del template["primaryContainerName"], template["successCondition"]
    problems = webhook_problems(missing)
    assert "spec.trialTemplate.primaryContainerName: Required value: must be specified" in problems
    assert (
        "spec.trialTemplate: Required value: successCondition and failureCondition must be "
        "specified" in problems
    )
    wrong = experiment()
    wrong["spec"]["trialTemplate"]["primaryContainerName"] = "trainer"
    (problem,) = webhook_problems(wrong)
    assert "pod template has no container trainer (it has: pytorch)" in problem


def test_a_named_trial_spec_and_an_impossible_budget_are_refused():
    named = experiment()
    named["spec"]["trialTemplate"]["trialSpec"]["metadata"]["name"] = "x"
    named["spec"]["parallelTrialCount"] = 7
    problems = webhook_problems(named)
    assert (
        "spec.parallelTrialCount: Invalid value: 7: should be less than or equal to "
        "spec.maxTrialCount" in problems
    )
    assert any("metadata.name and metadata.namespace in spec.trialTemplate" in p for p in problems)


def test_a_namespace_without_the_injection_label_is_refused_with_the_command_that_fixes_it():
    problem = label_problem("team", {"kubernetes.io/metadata.name": "team"})
    assert 'lacks label "katib.kubeflow.org/metrics-collector-injection: enabled"' in problem
    assert problem.endswith(
        "kubectl label namespace team katib.kubeflow.org/metrics-collector-injection=enabled"
    )
    enabled = {"katib.kubeflow.org/metrics-collector-injection": "enabled"}
    assert label_problem("team", enabled) == ""
    assert re.search(r"kubectl label namespace team ", label_problem("team", None))
