"""Hints for stuck or failed replicas, from Events and pod statuses."""

from __future__ import annotations

import pytest

from ciao.backend.kubeflow.client import ApiError
from ciao.backend.kubeflow.errors import explain
from ciao.backend.kubeflow.log_follower import parse_timestamp, since_time
from ciao.backend.kubeflow.pods import diagnose_event, diagnose_pod


def warning(reason: str, message: str) -> dict:
    return {"type": "Warning", "reason": reason, "message": message}


@pytest.mark.parametrize(
    "resource, advice",
    [("cpu", "lower %cpu"), ("memory", "lower %memory"), ("nvidia.com/gpu", "lower %gpu")],
)
def test_failed_scheduling_names_the_missing_resource(resource, advice):
    event = warning("FailedScheduling", f"0/1 nodes are available: 1 Insufficient {resource}.")
    diagnosis = diagnose_event(event, "worker-0")
    assert diagnosis.reason == "FailedScheduling"
    assert advice in diagnosis.hint and f"Insufficient {resource}" in diagnosis.hint


def test_an_image_pull_failure_tells_a_missing_tag_from_missing_credentials():
    missing = warning(
        "Failed",
        'Failed to pull image "registry.example/ciao:nope": rpc error: manifest unknown',
    )
    auth = warning(
        "Failed",
        'Failed to pull image "registry.example/private:1": pull access denied, '
        "unauthorized: authentication required",
    )
    assert "does not exist" in diagnose_event(missing, "master-0").hint
    assert "registry.example/ciao:nope" in diagnose_event(missing, "master-0").hint
    assert "imagePullSecret" in diagnose_event(auth, "master-0").hint


def test_crash_loops_and_oom_kills_are_read_off_the_pod():
    pod = {
        "spec": {"containers": [{"name": "pytorch", "resources": {"limits": {"memory": "1Gi"}}}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "pytorch",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        },
    }
    reasons = {d.reason: d.hint for d in diagnose_pod(pod, "worker-1")}
    assert set(reasons) == {"CrashLoopBackOff", "OOMKilled"}
    assert "raise %memory" in reasons["OOMKilled"] and "1Gi" in reasons["OOMKilled"]


def test_normal_events_are_not_diagnoses():
    assert diagnose_event({"type": "Normal", "reason": "Pulled", "message": "ok"}, "x") is None


def test_a_403_names_the_verb_the_resource_and_the_rule_that_would_allow_it():
    error = ApiError(
        'pytorchjobs.kubeflow.org is forbidden: User "system:serviceaccount:default:ciao" '
        'cannot create resource "pytorchjobs" in API group "kubeflow.org"',
        403,
        "Forbidden",
    )
    text = str(explain(error, "create", "pytorchjobs", "team", "kubeflow.org", "PyTorchJob"))
    assert text.startswith("create pytorchjobs.kubeflow.org in namespace team is forbidden")
    assert 'resources: ["pytorchjobs"]' in text and 'verbs: ["create"]' in text
    assert 'apiGroups: ["kubeflow.org"]' in text


def test_a_404_on_the_job_resource_says_the_operator_is_missing():
    error = ApiError("404 page not found", 404, "", "404 page not found")
    text = str(explain(error, "create", "tfjobs", "ns", "kubeflow.org", "TFJob"))
    assert "training operator is not installed" in text and "TFJob" in text


def test_a_missing_namespace_is_named():
    body = {"reason": "NotFound", "details": {"name": "nope", "kind": "namespaces"}}
    error = ApiError('namespaces "nope" not found', 404, "NotFound", body)
    assert "namespace 'nope' does not exist" in str(explain(error, "create", "configmaps", "nope"))


def test_a_webhook_rejection_is_shown_verbatim():
    message = (
        'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the '
        "request: spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1"
    )
    text = str(explain(ApiError(message, 422), "create", "pytorchjobs", "ns", "kubeflow.org"))
    assert message in text


@pytest.mark.parametrize(
    "stamp, nanos",
    [
        ("2026-11-22T01:02:03Z", 1795309323 * 10**9),
        ("2026-11-22T01:02:03.5Z", 1795309323 * 10**9 + 500_000_000),
        ("2026-11-22T01:02:03.123456789Z", 1795309323 * 10**9 + 123_456_789),
    ],
)
def test_kubelet_timestamps_parse_to_nanoseconds(stamp, nanos):
    assert parse_timestamp(stamp) == nanos
    assert since_time(nanos) == "2026-11-22T01:02:03Z"


def test_text_that_is_not_a_timestamp_is_not_one():
    assert parse_timestamp("hello") is None
    assert parse_timestamp("2026-11-22T01:02:03+02:00") is None


def test_an_unschedulable_pod_is_explained_from_its_own_condition():
    """The scheduler's verdict is on the pod: no Event is needed to say why it is Pending."""
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    pod = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
        }
    }
    [diagnosis] = diagnose_pod(pod, "node-1")
    assert (diagnosis.replica, diagnosis.reason) == ("node-1", "FailedScheduling")
    assert "lower %gpu" in diagnosis.hint and message in diagnosis.hint


def test_a_scheduled_pod_has_no_scheduling_diagnosis():
    pod = {"status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}
    assert diagnose_pod(pod, "node-0") == []


@pytest.mark.parametrize(
    "reason, message, says",
    [
        (
            "FailedCreate",
            'Error creating: pods "t-node-0-1-abcde" is forbidden: exceeded quota: gpus, '
            "requested: requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=0, "
            "limited: requests.nvidia.com/gpu=1",
            "ResourceQuota does not allow the pod: lower %cpu, %memory or %gpu",
        ),
        (
            "FailedCreate",
            'Error creating: pods "t-node-0-0-abcde" is forbidden: failed quota: compute: '
            "must specify limits.cpu for: node; requests.memory for: node",
            "set %cpu and %memory for every role",
        ),
        (
            "FailedCreatePod",
            'Error creating: pods "j-worker-0" is forbidden: violates PodSecurity '
            '"restricted:latest": allowPrivilegeEscalation != false',
            "Pod Security level (label pod-security.kubernetes.io/enforce) refuses the job's",
        ),
        (
            "FailedCreatePod",
            'Error creating: pods "j-worker-0" is forbidden: violates PodSecurity '
            '"restricted:latest": allowPrivilegeEscalation != false (container "init-pytorch" '
            "must set securityContext.allowPrivilegeEscalation=false)",
            "deploy/training-operator-init-container.yaml",
        ),
        (
            "FailedCreatePod",
            'Error creating: pods "j-worker-0" is forbidden: violates PodSecurity '
            '"baseline:latest": hostPath volumes (volume "volume-data")',
            "refuses hostPath volumes, so a %volume=hostPath:... (a folder of the node) cannot",
        ),
        (
            "FailedCreate",
            'Error creating: pods "t-node-0-0-abcde" is forbidden: violates PodSecurity '
            '"restricted:latest": restricted volume types (volume "volume-data" uses '
            'restricted volume type "hostPath")',
            "put the data on a claim (%volume=pvc:NAME:/path)",
        ),
        (
            "TrainJobResourcesCreationFailed",
            "TrainJob resources reconciliation failed: not found ClusterTrainingRuntime "
            'specified in TrainJob: clustertrainingruntimes.trainer.kubeflow.org "x" not found',
            "%runtime=NAME",
        ),
        (
            "JobCreationFailed",
            'admission webhook "vjob.kb.io" denied the request: something else',
            "cannot be created (the controller keeps trying): admission webhook",
        ),
    ],
)
def test_a_controller_that_cannot_create_the_jobs_pods_says_why(reason, message, says):
    """Nothing is Pending to explain these: the controller's Warning is the explanation."""
    diagnosis = diagnose_event(warning(reason, message), "job")
    assert (diagnosis.replica, diagnosis.reason) == ("job", reason)
    assert says in diagnosis.hint and message in diagnosis.hint


def test_a_normal_creation_is_no_diagnosis():
    assert (
        diagnose_event(warning("SuccessfulCreate", "Created pod: t-node-0-0-abcde"), "job") is None
    )


@pytest.mark.parametrize(
    "webhook, group, owner",
    [
        (
            "validator.trainjob.trainer.kubeflow.org",
            "trainer.kubeflow.org",
            "Kubeflow Trainer's webhook",
        ),
        (
            "validator.pytorchjob.training-operator.kubeflow.org",
            "kubeflow.org",
            "the training operator's webhook",
        ),
        ("vpytorchjob.kb.io", "kubeflow.org", 'the admission webhook "vpytorchjob.kb.io"'),
    ],
)
def test_a_webhook_refusal_names_whose_webhook_refused(webhook, group, owner):
    """Kueue's webhooks act on Kubeflow's jobs too: the webhook's name says whose it is."""
    message = f'admission webhook "{webhook}" denied the request: queue not found'
    text = str(explain(ApiError(message, 403), "create", "pytorchjobs", "ns", group))
    assert f"create pytorchjobs.{group}: {owner} rejected the job" in text
    assert message in text


def test_a_container_the_kubelet_will_not_run_as_root_says_which_config_key_helps():
    message = (
        'container has runAsNonRoot and image will run as root (pod: "j-master-0_team(u)", '
        "container: pytorch)"
    )
    waiting = {"reason": "CreateContainerConfigError", "message": message}
    pod = {"status": {"containerStatuses": [{"name": "pytorch", "state": {"waiting": waiting}}]}}
    (diagnosis,) = diagnose_pod(pod, "master-0")
    assert diagnosis.reason == "CreateContainerConfigError"
    assert "kubeflow.run_as_user" in diagnosis.hint and message in diagnosis.hint
