"""Katib v0.19.0 on the test cluster, seen through the real `kubernetes` client: the
Experiment webhooks' defaults and refusals, Experiments of Job, PyTorchJob and TrainJob
trials searched by Optuna, the File and StdOut metrics collectors, and clean-up."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
from fakecluster import FakeCluster, validate_experiment
from fakecluster.jobs import batch_job, experiment, pytorchjob, trainjob
from fakecluster.testing import conditions, connected, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(120)
KATIB = ("kubeflow.org", "v1beta1")
LABEL = "katib.kubeflow.org/metrics-collector-injection"
VALIDATOR = 'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: '
DEFAULTER = 'admission webhook "defaulter.experiment.katib.kubeflow.org" denied the request: '
X = {"x": ("double", {"min": "-10", "max": "10"})}
ENV = [{"name": "X", "value": "${trialParameters.x}"}]
#: Three epochs of loss = (x-2)^2 + 3, + 1, + 2: min, max and latest differ.
EPOCHS = (
    "import os; x = float(os.environ['X']); "
    "print('\\n'.join('epoch=%d loss=%r' % (e, (x - 2) ** 2 + d) "
    "for e, d in ((1, 3), (2, 1), (3, 2))))"
)
FILE = {
    "collector": {"kind": "File"},
    "source": {
        "fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": "TEXT"}
    },
}


def train(code: str = EPOCHS, to_file: bool = False) -> list[str]:
    """`sh -c "python -u -c '...'"`: prints the epochs (also appended to the metrics file)."""
    script = f'python -u -c "{code}"'
    if to_file:
        script += " | tee -a /var/log/katib/metrics.log"
    return ["sh", "-c", script]


def job_trial(command: list[str] | None = None, **container: Any) -> dict[str, Any]:
    return batch_job(command or train(), env=[dict(e) for e in ENV], **container)


@pytest.fixture(scope="module")
def katib() -> Iterator[FakeCluster]:
    """Training operator v1, Trainer v2 and Katib; `default` labelled for Katib's collector,
    `plain` not."""
    with FakeCluster(
        namespaces=("default", "plain"), kubeflow=("v1", "v2", "katib"), backoff_base=0.02
    ) as c:
        c.label_namespace("default", {LABEL: "enabled"})
        yield c


@pytest.fixture(scope="module")
def kube(katib: FakeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    with connected(katib, tmp_path_factory.mktemp("kube") / "config") as k:
        yield k


def create(
    kube: SimpleNamespace, body: dict[str, Any], namespace: str = "default", dry_run: bool = False
) -> dict:
    extra = {"dry_run": "All"} if dry_run else {}
    created: dict = kube.custom.create_namespaced_custom_object(
        *KATIB, namespace, "experiments", body, **extra
    )
    return created


def refusal(kube: SimpleNamespace, body: dict[str, Any], namespace: str = "default") -> dict:
    with pytest.raises(ApiException) as exc:
        create(kube, body, namespace)
    return status_of(exc.value)


def ended(cluster: FakeCluster, name: str) -> Callable[[], dict | None]:
    def check() -> dict | None:
        exp = cluster.get("experiments", "default", name) or {}
        conds = (exp.get("status") or {}).get("conditions") or []
        done = any(c["type"] in ("Succeeded", "Failed") and c["status"] == "True" for c in conds)
        return exp if done else None

    return check


def run(cluster: FakeCluster, kube: SimpleNamespace, body: dict[str, Any]) -> dict:
    """Create the Experiment and wait for its end."""
    create(kube, body)
    name = body["metadata"]["name"]
    return cluster.wait_for(ended(cluster, name), 60, f"experiment {name} to end")


def trials_of(kube: SimpleNamespace, name: str) -> list[dict]:
    listing = kube.custom.list_namespaced_custom_object(
        *KATIB, "default", "trials", label_selector=f"katib.kubeflow.org/experiment={name}"
    )
    return sorted(listing["items"], key=lambda t: t["metadata"]["name"])


def last_condition(obj: dict) -> tuple[str, str, str, str]:
    c = obj["status"]["conditions"][-1]
    return c["type"], c["status"], c["reason"], c["message"]


def loss(x: str) -> float:
    return (float(x) - 2) ** 2


# -- the API -----------------------------------------------------------------------------------
def test_discovery_serves_the_three_schemaless_katib_resources(kube: SimpleNamespace) -> None:
    resources = {r.name: r for r in kube.custom.get_api_resources(*KATIB).resources}
    assert {"experiments", "suggestions", "trials", "experiments/status"} <= set(resources)
    assert resources["experiments"].kind == "Experiment" and resources["trials"].namespaced
    crd = kube.ext.read_custom_resource_definition("experiments.kubeflow.org")
    version = crd.spec.versions[0]
    assert version.name == "v1beta1"
    assert version.schema.open_apiv3_schema.x_kubernetes_preserve_unknown_fields
    assert version.schema.open_apiv3_schema.properties is None
    assert [c.json_path for c in version.additional_printer_columns][:2] == [
        ".status.conditions[-1:].type",
        ".status.conditions[-1:].status",
    ]
    assert crd.spec.names.categories == ["all", "kubeflow", "katib"]


def test_an_experiment_needs_the_collector_label_on_its_namespace(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment("unlabelled", job_trial(), X, "training", max_trials=1, parallel=1)
    status = refusal(kube, body, "plain")
    assert status["code"] == 400 and "reason" not in status
    assert status["message"] == VALIDATOR + (
        'Cannot create the Experiment "unlabelled" in namespace "plain": the namespace lacks '
        'label "katib.kubeflow.org/metrics-collector-injection: enabled"'
    )
    assert katib.list("experiments", "plain") == []


# -- the defaulter -----------------------------------------------------------------------------
TRAINJOB_SPEC = trainjob(
    "t", train(), num_nodes=1, image="python:3.11", env={"X": "${trialParameters.x}"}
)
del TRAINJOB_SPEC["metadata"]
PYTORCH_SPEC = pytorchjob("p", train(), workers=0)
del PYTORCH_SPEC["metadata"]
PYTORCH_SPEC["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
    "env"
] = ENV


@pytest.mark.parametrize(
    ("name", "trial_spec", "primary", "success", "labels"),
    [
        ("defaults-job", job_trial(), "training", "Complete", None),
        (
            "defaults-pytorch",
            PYTORCH_SPEC,
            "pytorch",
            "Succeeded",
            {"training.kubeflow.org/job-role": "master"},
        ),
        (
            "defaults-trainjob",
            TRAINJOB_SPEC,
            "node",
            "Complete",
            {
                "jobset.sigs.k8s.io/replicatedjob-name": "node",
                "batch.kubernetes.io/job-completion-index": "0",
            },
        ),
    ],
)
def test_the_defaulter_fills_in_katibs_defaults(
    kube: SimpleNamespace,
    name: str,
    trial_spec: dict,
    primary: str,
    success: str,
    labels: dict | None,
) -> None:
    body = experiment(name, trial_spec, X, primary, objective="maximize", max_trials=3)
    del body["spec"]["parallelTrialCount"]
    body["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
    spec = create(kube, body, dry_run=True)["spec"]
    assert spec["parallelTrialCount"] == 3
    assert spec["resumePolicy"] == "Never"
    assert spec["objective"]["metricStrategies"] == [
        {"name": "loss", "value": "max"},
        {"name": "accuracy", "value": "max"},
    ]
    assert spec["parameters"][0]["feasibleSpace"] == {
        "min": "-10",
        "max": "10",
        "distribution": "uniform",
    }
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    template = spec["trialTemplate"]
    assert (
        template["successCondition"]
        == f'status.conditions.#(type=="{success}")#|#(status=="True")#'
    )
    assert template["failureCondition"] == 'status.conditions.#(type=="Failed")#|#(status=="True")#'
    assert template.get("primaryPodLabels") == labels


def test_the_defaulter_fills_in_a_file_collector_and_drops_unknown_fields(
    kube: SimpleNamespace,
) -> None:
    body = experiment(
        "defaults-file", job_trial(), X, "training", collector={"collector": {"kind": "File"}}
    )
    body["spec"]["trialTemplate"]["retain"] = False
    body["spec"]["parallelTrialCounts"] = 2  # a typo: Katib's Go types have no such field
    spec = create(kube, body, dry_run=True)["spec"]
    assert spec["metricsCollectorSpec"]["source"] == {
        "fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": "TEXT"}
    }
    assert "parallelTrialCounts" not in spec and spec["parallelTrialCount"] == 3
    assert "retain" not in spec["trialTemplate"]  # omitempty


def test_the_defaulter_refuses_values_of_the_wrong_json_type(kube: SimpleNamespace) -> None:
    body = experiment(
        "numbers", job_trial(), {"x": ("double", {"min": -10, "max": "10"})}, "training"
    )
    status = refusal(kube, body)
    assert status["code"] == 400
    assert status["message"] == DEFAULTER + (
        "json: cannot unmarshal number into Go struct field FeasibleSpace.spec.parameters."
        "feasibleSpace.min of type string"
    )
    body = experiment("counts", job_trial(), X, "training", max_trials="3")  # type: ignore[arg-type]
    assert refusal(kube, body)["message"] == DEFAULTER + (
        "json: cannot unmarshal string into Go struct field ExperimentSpec.spec.maxTrialCount "
        "of type int32"
    )
    body = experiment("kindless", job_trial(), X, "training")
    del body["spec"]["trialTemplate"]["trialSpec"]["kind"]
    message = refusal(kube, body)["message"]
    assert message.startswith(
        DEFAULTER + 'Object \'Kind\' is missing in \'{"apiVersion":"batch/v1"'
    )


# -- the validator -----------------------------------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


def _many(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        for c in changes:
            c(body)

    return change


NAME_RULE = (
    ": name must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex "
    "used for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 "
    "characters. "
)
CONTAINER = "spec.trialTemplate.trialSpec.spec.template.spec.containers.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("metadata.name", "a" * 41), f'metadata.name: Invalid value: "{"a" * 41}"{NAME_RULE}'),
        (
            _set("metadata.name", "1st-study"),
            f'metadata.name: Invalid value: "1st-study"{NAME_RULE}',
        ),
        (
            _set("spec.maxFailedTrialCount", 5),
            "spec.maxFailedTrialCount: Invalid value: 5: should be less than or equal to "
            "spec.maxTrialCount",
        ),
        (
            _set("spec.maxTrialCount", 0),
            "[spec.maxTrialCount: Invalid value: 0: must be greater than 0, "
            "spec.parallelTrialCount: Invalid value: 3: should be less than or equal to "
            "spec.maxTrialCount]",
        ),
        (
            _set("spec.objective.type", "minimise"),
            'spec.objective.type: Invalid value: "minimise": must be minimize or maximize',
        ),
        (
            _set("spec.algorithm.algorithmName", "annealing"),
            'spec.algorithm.algorithmName: Invalid value: "annealing": unable to get Suggestion '
            "config data for algorithm annealing: failed to find suggestion config for "
            "algorithm: annealing in ConfigMap: katib-config",
        ),
        (
            _set("spec.trialTemplate.primaryContainerName", None),
            "spec.trialTemplate.primaryContainerName: Required value: must be specified",
        ),
        (
            _set("spec.trialTemplate.trialParameters", [{"name": "x", "reference": "lr"}]),
            'spec.trialTemplate.trialParameters[0].reference: Invalid value: "lr": parameter '
            "reference lr does not exist in spec.parameters: [{x double {10 -10 []  uniform}}]",
        ),
        (
            _set(f"{CONTAINER}.args", ["${trialParameters.y}"]),
            'spec.trialTemplate: Invalid value: "": parameters: [${trialParameters.y}] in '
            "spec.trialTemplate not found in spec.trialParameters: [{x  x}]",
        ),
        (
            _set("spec.trialTemplate.trialSpec.metadata", {"name": "fixed"}),
            'spec.trialTemplate: Invalid value: "": metadata.name and metadata.namespace in '
            "spec.trialTemplate must be omitted",
        ),
        (
            _set(
                "spec.metricsCollectorSpec",
                {
                    "collector": {"kind": "File"},
                    "source": {"fileSystemPath": {"path": "metrics.log"}},
                },
            ),
            "spec.metricsCollectorSpec.source.fileSystemPath.path: Required value: file path "
            "where metrics file exists is required",
        ),
        (
            _set(
                "spec.metricsCollectorSpec",
                {
                    "source": {"filter": {"metricsFormat": ["loss=(\\d+)"]}},
                    "collector": {"kind": "File"},
                },
            ),
            "spec.metricsCollectorSpec.source.filter.metricsFormat: Invalid value: "
            '"loss=(\\\\d+)": two top subexpressions are required',
        ),
        (
            _set("spec.earlyStopping", {"algorithmName": "median"}),
            'spec.earlyStopping.algorithmName: Invalid value: "median": unable to get '
            "EarlyStopping config data for algorithm median: failed to find early stopping "
            "config for algorithm: median in ConfigMap: katib-config",
        ),
        (
            _set("spec.objective", None),
            "spec.objective: Required value: must be specified",
        ),
    ],
    ids=[
        "name-over-40",
        "name-not-dns1035",
        "max-failed-over-max",
        "max-zero",
        "objective-type",
        "algorithm-not-in-katib-config",
        "primary-container",
        "reference-not-a-parameter",
        "unknown-placeholder",
        "trial-spec-named",
        "file-path-relative",
        "filter-one-group",
        "early-stopping-name",
        "objective-missing",
    ],
)
def test_the_validator_refuses_with_upstreams_messages(
    kube: SimpleNamespace, change: Callable[[dict], None], message: str
) -> None:
    body = experiment("refused", job_trial(), X, "training")
    change(body)
    status = refusal(kube, body)
    assert status["code"] == 400
    assert status["message"] == VALIDATOR + message


def test_every_trial_parameter_must_appear_in_the_trial_template(kube: SimpleNamespace) -> None:
    params = {**X, "y": ("int", {"min": "1", "max": "3"})}
    body = experiment("unused", job_trial(), params, "training")
    message = refusal(kube, body)["message"]
    head = (
        'spec.trialTemplate.trialParameters[1].name: Invalid value: "y": parameter name: y in '
        'spec.trialParameters not found in spec.trialTemplate: {"apiVersion":"batch/v1",'
        '"kind":"Job","spec":{"backoffLimit":0,'
    )
    assert message.startswith(VALIDATOR + head)
    # upstream checks the parameters in turn, each replaced by test-value once found
    assert '"value":"test-value"' in message and message.endswith("}\n")


def test_validate_experiment_says_the_same_without_a_server() -> None:
    good = experiment("offline", job_trial(), X, "training")
    assert validate_experiment(good) == []
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "b" * 41
    bad["spec"]["parameters"][0]["feasibleSpace"]["max"] = 10
    assert validate_experiment(bad) == [
        "json: cannot unmarshal number into Go struct field FeasibleSpace.spec.parameters."
        "feasibleSpace.max of type string"
    ]
    bad["spec"]["parameters"][0]["feasibleSpace"]["max"] = "10"
    assert validate_experiment(bad) == [f'metadata.name: Invalid value: "{"b" * 41}"{NAME_RULE}']


def test_only_the_trial_budget_of_an_experiment_is_editable(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    pending = job_trial()
    pending["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "none"}  # never scheduled
    create(kube, experiment("budget", pending, X, "training", max_trials=4, parallel=1))
    katib.wait_for(
        lambda: len(katib.list("trials", "default", "katib.kubeflow.org/experiment=budget")) == 1
    )
    with pytest.raises(ApiException) as exc:
        kube.custom.patch_namespaced_custom_object(
            *KATIB,
            "default",
            "experiments",
            "budget",
            {"spec": {"algorithm": {"algorithmName": "tpe"}}},
        )
    assert status_of(exc.value)["message"] == VALIDATOR + (
        "spec: Forbidden: only spec.parallelTrialCount, spec.maxTrialCount and "
        "spec.maxFailedTrialCount are editable"
    )
    kube.custom.patch_namespaced_custom_object(
        *KATIB, "default", "experiments", "budget", {"spec": {"parallelTrialCount": 2}}
    )
    katib.wait_for(
        lambda: len(katib.list("trials", "default", "katib.kubeflow.org/experiment=budget")) == 2,
        message="a second trial",
    )
    kube.custom.delete_namespaced_custom_object(*KATIB, "default", "experiments", "budget")


# -- searching -------------------------------------------------------------------------------
def test_a_random_search_of_job_trials_ends_with_the_best_trial(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment(
        "search",
        job_trial(train(to_file=True)),
        X,
        "training",
        seed=3,
        max_trials=4,
        parallel=2,
        collector=FILE,
    )
    done = run(katib, kube, body)
    assert last_condition(done) == (
        "Succeeded",
        "True",
        "ExperimentMaxTrialsReached",
        "Experiment has succeeded because max trial count has reached",
    )
    status = done["status"]
    trials = trials_of(kube, "search")
    names = [t["metadata"]["name"] for t in trials]
    assert all(re.fullmatch(r"search-[bcdfghjklmnpqrstvwxz2456789]{8}", n) for n in names)
    assert (status["trials"], status["trialsSucceeded"]) == (4, 4)
    assert sorted(status["succeededTrialList"]) == names
    assert status["completionTime"] and status["startTime"]
    for trial in trials:
        assert last_condition(trial) == (
            "Succeeded",
            "True",
            "TrialSucceeded. Job reason: CompletionsReached",
            "Trial has succeeded. Job message: Reached expected number of succeeded pods",
        )
        assert conditions(trial)["Running"]["status"] == "False"
        x = trial["spec"]["parameterAssignments"][0]["value"]
        assert trial["status"]["observation"]["metrics"] == [
            {
                "name": "loss",
                "min": repr(loss(x) + 1),
                "max": repr(loss(x) + 3),
                "latest": repr(loss(x) + 2),
            }
        ]
        run_spec = trial["spec"]["runSpec"]
        assert run_spec["metadata"] == {"name": trial["metadata"]["name"], "namespace": "default"}
        assert run_spec["spec"]["template"]["spec"]["containers"][0]["env"] == [
            {"name": "X", "value": x}
        ]
        assert trial["spec"]["objective"]["metricStrategies"] == [{"name": "loss", "value": "min"}]
        assert trial["spec"]["metricsCollector"] == done["spec"]["metricsCollectorSpec"]
        assert trial["spec"]["primaryContainerName"] == "training"
        assert trial["metadata"]["finalizers"] == ["clean-metrics-in-db"]
        owner = trial["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("Experiment", "search", True)
    best = min(trials, key=lambda t: loss(t["spec"]["parameterAssignments"][0]["value"]))
    assert status["currentOptimalTrial"] == {
        "bestTrialName": best["metadata"]["name"],
        "parameterAssignments": best["spec"]["parameterAssignments"],
        "observation": best["status"]["observation"],
    }
    suggestion = kube.custom.get_namespaced_custom_object(
        *KATIB, "default", "suggestions", "search"
    )
    assert suggestion["spec"]["requests"] == 4 and suggestion["status"]["suggestionCount"] == 4
    assert sorted(s["name"] for s in suggestion["status"]["suggestions"]) == names
    assert last_condition(suggestion) == (
        "Succeeded",
        "True",
        "Experiment is succeeded",
        "Suggestion is succeeded, can't be restarted",
    )
    # not retained: each trial's job (and so its pods) is deleted once the trial ends
    katib.wait_for(
        lambda: not any(katib.get("jobs", "default", n) for n in names), message="the jobs to go"
    )
    reasons = [
        e["reason"]
        for e in katib.events("default", involved=names[0])
        if e["involvedObject"]["kind"] == "Trial"
    ]
    assert reasons == ["JobCreated", "JobRunning", "JobSucceeded", "JobDeleted"]


def test_a_file_collector_trial_pod_is_mutated_as_upstreams_webhook_does(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    trial_spec = job_trial(train(to_file=True))
    trial_spec["spec"]["template"]["metadata"] = {
        "annotations": {"sidecar.istio.io/inject": "false"}
    }
    body = experiment("file", trial_spec, X, "training", max_trials=1, parallel=1, collector=FILE)
    body["spec"]["trialTemplate"]["retain"] = True
    run(katib, kube, body)
    [trial] = trials_of(kube, "file")
    name = trial["metadata"]["name"]
    batch = kubernetes.client.BatchV1Api(kube.api)
    job = batch.read_namespaced_job(name, "default")  # retained, named like the trial
    assert job.metadata.owner_references[0].kind == "Trial"
    assert "katib.kubeflow.org/trial" not in (job.metadata.labels or {})
    [pod] = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    assert pod.metadata.labels["katib.kubeflow.org/experiment"] == "file"
    assert pod.metadata.annotations["sidecar.istio.io/inject"] == "false"
    assert pod.spec.share_process_namespace is True
    primary, sidecar = pod.spec.containers
    assert primary.command == ["sh", "-c"]
    assert primary.args == [train(to_file=True)[2] + " && echo completed > /var/log/katib/$$$$.pid"]
    assert primary.env[-1].name == "KATIB_TRIAL_NAME"
    assert (
        primary.env[-1].value_from.field_ref.field_path
        == "metadata.labels['katib.kubeflow.org/trial']"
    )
    assert [(m.name, m.mount_path) for m in primary.volume_mounts] == [
        ("metrics-volume", "/var/log/katib")
    ]
    assert sidecar.name == "metrics-logger-and-collector"
    assert sidecar.image == "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0"
    assert sidecar.args == [
        "-t", name, "-m", "loss", "-o-type", "minimize", "-s-db", "katib-db-manager.kubeflow:6789",
        "-path", "/var/log/katib/metrics.log", "-format", "TEXT",
    ]  # fmt: skip
    assert sidecar.resources.requests == {
        "cpu": "50m",
        "memory": "10Mi",
        "ephemeral-storage": "500Mi",
    }
    assert [(v.name, v.empty_dir is not None) for v in pod.spec.volumes] == [
        ("metrics-volume", True)
    ]
    # File: the training's output stays in its own log; the sidecar re-prints the file
    x = float(trial["spec"]["parameterAssignments"][0]["value"])
    lines = [f"epoch={e} loss={(x - 2) ** 2 + d!r}" for e, d in ((1, 3), (2, 1), (3, 2))]
    assert katib.logs("default", pod.metadata.name, "training").splitlines() == lines
    collected = katib.logs(
        "default", pod.metadata.name, "metrics-logger-and-collector"
    ).splitlines()
    klog = r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ main\.go:(\d+)\] (.*)"
    parsed = [re.fullmatch(klog, line) for line in collected[:-1]]
    assert all(parsed), collected
    assert [(m.group(1), m.group(2)) for m in parsed if m] == [
        ("400", f"Trial Name: {name}"),
        *(("143", line) for line in lines),
        ("459", "Metrics reported. :"),
    ]
    assert collected[-1].startswith(
        'metric_logs:{time_stamp:"0001-01-01T00:00:00Z" metric:{name:"loss"'
    )


def test_the_stdout_collector_moves_the_training_output_to_the_sidecar(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    code = EPOCHS + "; print('trial', os.environ['KATIB_TRIAL_NAME'])"
    body = experiment("stdout", job_trial(train(code)), X, "training", max_trials=1, parallel=1)
    body["spec"]["trialTemplate"]["retain"] = True
    done = run(katib, kube, body)
    assert done["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    [trial] = trials_of(kube, "stdout")
    name = trial["metadata"]["name"]
    [pod] = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    assert pod.spec.containers[0].args == [
        train(code)[2]
        + " 1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid"
    ]
    assert pod.spec.containers[1].args[-2:] == ["-format", "TEXT"]
    assert katib.logs("default", pod.metadata.name, "training") == ""  # upstream's pain point
    sidecar = katib.logs("default", pod.metadata.name, "metrics-logger-and-collector")
    assert re.search(rf"main\.go:143\] trial {name}\n", sidecar)
    assert re.search(r"main\.go:143\] epoch=3 loss=", sidecar)
    assert trial["status"]["observation"]["metrics"][0]["name"] == "loss"
    assert done["status"]["currentOptimalTrial"]["bestTrialName"] == name


def test_a_trial_whose_metric_never_appears_is_metrics_unavailable(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    code = "print('accuracy=0.5')"
    body = experiment(
        "nometric",
        job_trial(train(code)),
        X,
        "training",
        max_trials=2,
        parallel=1,
        maxFailedTrialCount=1,
    )
    done = run(katib, kube, body)
    assert last_condition(done) == (
        "Failed",
        "True",
        "ExperimentFailed",
        "Experiment has failed because max failed count has reached",
    )
    [trial] = trials_of(kube, "nometric")
    assert last_condition(trial) == (
        "MetricsUnavailable",
        "True",
        "MetricsUnavailable. Job reason: CompletionsReached",
        "Metrics are not available. Job message: Reached expected number of succeeded pods",
    )
    assert trial["status"]["observation"] == {
        "metrics": [
            {"name": "loss", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}
        ]
    }
    assert done["status"]["metricsUnavailableTrialList"] == [trial["metadata"]["name"]]
    assert done["status"]["trialMetricsUnavailable"] == 1
    assert done["status"]["currentOptimalTrial"] == {"observation": {}}
    [event] = katib.events(
        "default", involved=trial["metadata"]["name"], reason="MetricsUnavailable"
    )
    assert (event["type"], event["message"]) == (
        "Warning",
        f"Metrics are not available for Job {trial['metadata']['name']}",
    )


def test_a_failing_trial_fails_with_its_jobs_reason(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment(
        "failing",
        job_trial(["sh", "-c", "echo x=$X; exit 3"]),
        X,
        "training",
        max_trials=1,
        parallel=1,
    )
    body["spec"]["trialTemplate"]["retain"] = True
    done = run(katib, kube, body)
    assert done["status"]["trialsFailed"] == 1
    [trial] = trials_of(kube, "failing")
    assert last_condition(trial) == (
        "Failed",
        "True",
        "TrialFailed. Job reason: BackoffLimitExceeded",
        "Trial has failed. Job message: Job has reached the specified backoff limit",
    )
    name = trial["metadata"]["name"]
    [pod] = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    sidecar = katib.logs("default", pod.metadata.name, "metrics-logger-and-collector")
    assert re.search(
        r"F\d{4} [\d:.]+ +\d+ main\.go:425\] Failed to wait for worker container: training "
        r"container is failed\. Unable to read file /var/log/katib/(\d+)\.pid for pid \1, "
        r"error: open /var/log/katib/\1\.pid: no such file or directory",
        sidecar,
    )
    statuses = {s.name: s.state.terminated.exit_code for s in pod.status.container_statuses}
    assert statuses == {"training": 3, "metrics-logger-and-collector": 255}


def test_a_file_collector_whose_file_never_appears_fails_the_trial(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment(
        "nofile", job_trial(), X, "training", max_trials=1, parallel=1, collector=FILE
    )
    body["spec"]["trialTemplate"]["retain"] = True
    run(katib, kube, body)
    [trial] = trials_of(kube, "nofile")
    assert last_condition(trial)[2] == "TrialFailed. Job reason: BackoffLimitExceeded"
    name = trial["metadata"]["name"]
    [pod] = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    assert katib.logs("default", pod.metadata.name, "training").startswith("epoch=1 loss=")
    last = katib.logs("default", pod.metadata.name, "metrics-logger-and-collector").splitlines()[-1]
    assert re.fullmatch(
        r"F\d{4} [\d:.]+ +\d+ main\.go:449\] Failed to collect logs: failed to open the file: "
        r"open /var/log/katib/metrics\.log: no such file or directory",
        last,
    )


def test_pytorchjob_trials_collect_from_the_master(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    spec = pytorchjob("p", train(), workers=1)
    del spec["metadata"]
    for replica in spec["spec"]["pytorchReplicaSpecs"].values():
        replica["template"]["spec"]["containers"][0]["env"] = list(ENV)
    body = experiment("torch", spec, X, "pytorch", max_trials=1, parallel=1)
    body["spec"]["trialTemplate"]["retain"] = True
    done = run(katib, kube, body)
    [trial] = trials_of(kube, "torch")
    name = trial["metadata"]["name"]
    assert last_condition(trial)[2:] == (
        "TrialSucceeded. Job reason: PyTorchJobSucceeded",
        f"Trial has succeeded. Job message: PyTorchJob {name} is successfully completed.",
    )
    pods = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    containers = {p.metadata.name: [c.name for c in p.spec.containers] for p in pods}
    assert containers == {
        f"{name}-master-0": ["pytorch", "metrics-logger-and-collector"],
        f"{name}-worker-0": ["pytorch"],  # not a primary pod: labels and env only
    }
    worker = next(p for p in pods if p.metadata.name.endswith("worker-0"))
    assert worker.spec.containers[0].env[-1].name == "KATIB_TRIAL_NAME"
    assert done["status"]["currentOptimalTrial"]["bestTrialName"] == name


def test_trainjob_trials_collect_from_node_zero(katib: FakeCluster, kube: SimpleNamespace) -> None:
    spec = trainjob(
        "t", train(), num_nodes=2, image="python:3.11", env={"X": "${trialParameters.x}"}
    )
    del spec["metadata"]
    body = experiment("train", spec, X, "node", max_trials=1, parallel=1)
    body["spec"]["trialTemplate"]["retain"] = True
    done = run(katib, kube, body)
    [trial] = trials_of(kube, "train")
    name = trial["metadata"]["name"]
    assert last_condition(trial)[2:] == (
        "TrialSucceeded. Job reason: AllJobsCompleted",
        "Trial has succeeded. Job message: jobset completed successfully",
    )
    pods = kube.core.list_namespaced_pod(
        "default", label_selector=f"katib.kubeflow.org/trial={name}"
    ).items
    by_rank = {p.metadata.labels["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert [c.name for c in by_rank["0"].spec.containers] == [
        "node",
        "metrics-logger-and-collector",
    ]
    assert [c.name for c in by_rank["1"].spec.containers] == ["node"]
    assert katib.logs("default", by_rank["1"].metadata.name).startswith("epoch=1 loss=")
    assert done["status"]["trialsSucceeded"] == 1


def test_reaching_the_goal_ends_the_experiment(katib: FakeCluster, kube: SimpleNamespace) -> None:
    body = experiment(
        "goal", job_trial(), X, "training", objective="maximize", max_trials=6, parallel=1
    )
    body["spec"]["objective"]["goal"] = -1000.0  # any first trial reaches it
    done = run(katib, kube, body)
    assert last_condition(done)[2:] == (
        "ExperimentGoalReached",
        "Experiment has succeeded because Objective goal has reached",
    )
    assert done["status"]["trials"] == 1
    best = done["status"]["currentOptimalTrial"]["observation"]["metrics"][0]
    x = done["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"]
    assert best["max"] == repr(loss(x) + 3)  # maximize: the max strategy


def test_a_seeded_search_asks_the_same_parameters_again(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    def asked(name: str, seed: int) -> list[str]:
        params = {
            "x": ("double", {"min": "-10", "max": "10"}),
            "n": ("int", {"min": "1", "max": "100"}),
            "act": ("categorical", {"list": ["relu", "tanh", "gelu"]}),
        }
        trial_spec = job_trial(["sh", "-c", "echo loss=1 $N $ACT"])
        trial_spec["spec"]["template"]["spec"]["containers"][0]["env"] += [
            {"name": "N", "value": "${trialParameters.n}"},
            {"name": "ACT", "value": "${trialParameters.act}"},
        ]
        run(katib, kube, experiment(name, trial_spec, params, "training", seed=seed, max_trials=3))
        suggestion = katib.get("suggestions", "default", name) or {}
        return [json.dumps(s["parameterAssignments"]) for s in suggestion["status"]["suggestions"]]

    first = asked("seeded-a", 42)
    assert asked("seeded-b", 42) == first
    assert asked("seeded-c", 43) != first
    assignments = json.loads(first[0])
    assert [a["name"] for a in assignments] == ["x", "n", "act"]
    assert assignments[2]["value"] in ("relu", "tanh", "gelu") and assignments[1]["value"].isdigit()


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "grid"])
def test_optunas_samplers_serve_katibs_algorithm_names(
    katib: FakeCluster, kube: SimpleNamespace, algorithm: str
) -> None:
    params = {
        "x": ("double", {"min": "-2", "max": "2", "step": "1"}),
        "n": ("int", {"min": "1", "max": "2"}),
    }
    trial_spec = job_trial(["sh", "-c", "echo loss=$X$N"])
    trial_spec["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "N", "value": "${trialParameters.n}"}
    )
    name = f"algo-{algorithm}"
    done = run(
        katib,
        kube,
        experiment(
            name,
            trial_spec,
            params,
            "training",
            algorithm=algorithm,
            seed=1,
            max_trials=4,
            parallel=2,
        ),
    )
    assert last_condition(done)[2] == "ExperimentMaxTrialsReached"
    assigned = [
        tuple(a["value"] for a in t["spec"]["parameterAssignments"]) for t in trials_of(kube, name)
    ]
    assert len(assigned) == 4
    assert all(-2 <= float(x) <= 2 and n in ("1", "2") for x, n in assigned)
    if algorithm == "grid":
        assert len(set(assigned)) == 4 and all(float(x).is_integer() for x, _ in assigned)


def test_an_invalid_algorithm_setting_fails_the_suggestion_and_the_experiment(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment("badsetting", job_trial(), X, "training", max_trials=1)
    body["spec"]["parallelTrialCount"] = 1
    body["spec"]["algorithm"]["algorithmSettings"] = [{"name": "temperature", "value": "1"}]
    done = run(katib, kube, body)
    assert last_condition(done) == ("Failed", "True", "ExperimentFailed", "Suggestion has failed")
    suggestion = katib.get("suggestions", "default", "badsetting") or {}
    assert last_condition(suggestion) == (
        "Failed",
        "True",
        "SuggestionFailed",
        "Validation failed: ValidateAlgorithmSettings Error: unknown setting temperature for "
        "algorithm random",
    )
    assert katib.list("trials", "default", "katib.kubeflow.org/experiment=badsetting") == []


def test_a_trial_kind_the_cluster_does_not_serve_is_a_reconcile_error(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    mpi = {"apiVersion": "kubeflow.org/v1", "kind": "MPIJob", "spec": {"x": "${trialParameters.x}"}}
    create(kube, experiment("mpi", mpi, X, "launcher", max_trials=1, parallel=1))
    trial = katib.wait_for(
        lambda: katib.list("trials", "default", "katib.kubeflow.org/experiment=mpi")
    )[0]
    name = trial["metadata"]["name"]
    event = katib.wait_for(lambda: katib.events("default", involved=name, reason="ReconcileError"))[
        0
    ]
    assert (event["type"], event["message"]) == (
        "Warning",
        'Failed to reconcile: no matches for kind "MPIJob" in version "kubeflow.org/v1"',
    )
    assert event["source"]["component"] == "trial-controller"
    kube.custom.delete_namespaced_custom_object(*KATIB, "default", "experiments", "mpi")


def test_deleting_an_experiment_removes_its_suggestion_trials_jobs_and_pods(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    body = experiment("doomed", job_trial(), X, "training", max_trials=2, parallel=2)
    body["spec"]["trialTemplate"]["retain"] = True
    run(katib, kube, body)
    names = [t["metadata"]["name"] for t in trials_of(kube, "doomed")]
    assert len(names) == 2 and all(katib.get("jobs", "default", n) for n in names)
    assert katib.katib is not None and katib.katib.db.get(names[0], "loss")
    experiment_obj = katib.get("experiments", "default", "doomed") or {}
    assert experiment_obj["metadata"]["finalizers"] == ["update-prometheus-metrics"]
    kube.custom.delete_namespaced_custom_object(*KATIB, "default", "experiments", "doomed")

    def gone() -> bool:
        selector = "katib.kubeflow.org/experiment=doomed"
        return not (
            katib.get("experiments", "default", "doomed")
            or katib.get("suggestions", "default", "doomed")
            or katib.list("trials", "default", selector)
            or any(katib.get("jobs", "default", n) for n in names)
            or katib.list("pods", "default", selector)
        )

    katib.wait_for(gone, 30, "the experiment and all it made to go")
    assert not katib.katib.db.get(names[0], "loss")  # the trial's finalizer cleaned the DB


def test_rbac_denies_experiments_like_any_resource(
    katib: FakeCluster, kube: SimpleNamespace
) -> None:
    rule = katib.deny("create", "experiments")
    try:
        status = refusal(kube, experiment("denied", job_trial(), X, "training"))
    finally:
        katib.allow(rule)
    assert status["code"] == 403
    assert status["message"] == (
        'experiments.kubeflow.org is forbidden: User "system:serviceaccount:default:ciao" '
        'cannot create resource "experiments" in API group "kubeflow.org" in the namespace '
        '"default"'
    )


def test_katib_is_not_installed_by_default(tmp_path: Path) -> None:
    with FakeCluster(operator=False) as cluster, connected(cluster, tmp_path / "config") as k:
        assert cluster.katib is None
        names = {r.name for r in k.custom.get_api_resources("kubeflow.org", "v1").resources}
        assert not names & {"experiments", "suggestions", "trials"}
        with pytest.raises(ApiException) as exc:
            k.custom.get_api_resources(*KATIB)
        assert exc.value.status == 404
