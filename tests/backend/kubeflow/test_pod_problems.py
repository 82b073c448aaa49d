"""What a job's pods refer to that the namespace lacks, from upstream's own words (the
kubelet's, the scheduler's, the attach/detach controller's, the admission plugins'), said
with the object's name and the setting that asks for it."""

from __future__ import annotations

import copy

import pytest

from ciao.backend.kubeflow.pods import creation_hint, diagnose_event, diagnose_pod, never_created

NS = "team"

#: A replica's pod as the API server returns it, with the settings of a real-cluster cell:
#: %volume=pvc:datasets:/data:ro, %volume=secret:gcs-key:/etc/gcs, %env=TOKEN=secret:hf/token,
#: %volume=configMap:hparams:/etc/hparams, %envFrom=secret:s3-creds,
#: %imagePullSecret=regcred, %nodeSelector, %gpu=1; and Ciao's own code volume.
POD = {
    "metadata": {
        "name": "ciao-fit-worker-1",
        "namespace": NS,
        "labels": {
            "training.kubeflow.org/replica-type": "worker",
            "training.kubeflow.org/replica-index": "1",
        },
    },
    "spec": {
        "containers": [
            {
                "name": "pytorch",
                "image": "registry.example/team/train:1",
                "env": [
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
                    },
                ],
                "envFrom": [{"secretRef": {"name": "s3-creds"}}],
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
                "volumeMounts": [
                    {"name": "ciao-code", "mountPath": "/opt/ciao"},
                    {"name": "data", "mountPath": "/data", "readOnly": True},
                    {"name": "gcs", "mountPath": "/etc/gcs", "readOnly": True},
                    {"name": "hp", "mountPath": "/etc/hparams", "readOnly": True},
                    {"name": "kube-api-access-x2k9p", "mountPath": "/var/run/secrets"},
                ],
            }
        ],
        "volumes": [
            {"name": "ciao-code", "configMap": {"name": "ciao-fit-code"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}},
            {"name": "gcs", "secret": {"secretName": "gcs-key"}},
            {"name": "hp", "configMap": {"name": "hparams"}},
            {"name": "kube-api-access-x2k9p", "projected": {"sources": []}},
        ],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "imagePullSecrets": [{"name": "regcred"}],
        "schedulerName": "default-scheduler",
    },
    "status": {"phase": "Pending"},
}


def event(reason: str, message: str, name: str = "ciao-fit-worker-1") -> dict:
    return {
        "type": "Warning",
        "reason": reason,
        "message": message,
        "involvedObject": {"kind": "Pod", "name": name, "namespace": NS},
        "metadata": {"namespace": NS},
    }


def waiting(reason: str, message: str) -> dict:
    pod = copy.deepcopy(POD)
    pod["status"]["containerStatuses"] = [
        {
            "name": "pytorch",
            "ready": False,
            "restartCount": 0,
            "image": "registry.example/team/train:1",
            "state": {"waiting": {"reason": reason, "message": message}},
        }
    ]
    return pod


# --- a PVC that does not exist, or is not bound ----------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        # the scheduler's VolumeBinding PreFilter (Kubernetes 1.28 on)...
        '0/3 nodes are available: persistentvolumeclaim "datasets" not found. preemption: 0/3 '
        "nodes are available: 3 Preemption is not helpful for scheduling.",
        # ... and before, counted per node
        '0/3 nodes are available: 3 persistentvolumeclaim "datasets" not found.',
    ],
)
def test_a_pvc_that_does_not_exist_is_named_with_the_setting_that_asks_for_it(message):
    diagnosis = diagnose_event(event("FailedScheduling", message), "worker-1", POD)
    assert (diagnosis.replica, diagnosis.reason) == ("worker-1", "FailedScheduling")
    assert diagnosis.hint.startswith(f'PVC "datasets" does not exist in namespace {NS}: create it')
    assert "fix %volume=pvc:datasets:/data:ro" in diagnosis.hint
    assert f"kubectl get pvc -n {NS}" in diagnosis.hint and message in diagnosis.hint


def test_a_missing_pvc_is_named_even_before_the_pod_is_seen():
    """The event watch can outrun the pod watch: the message alone names the claim."""
    message = '0/3 nodes are available: persistentvolumeclaim "datasets" not found.'
    hint = diagnose_event(event("FailedScheduling", message), "worker-1").hint
    assert hint.startswith(f'PVC "datasets" does not exist in namespace {NS}')
    assert "%volume=pvc:datasets:/PATH" in hint


def test_the_kubelets_word_for_a_missing_pvc_says_the_same():
    """A pod placed before its claim was deleted: the kubelet's volume manager says it."""
    message = (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "
        f"failed to process volumes=[data]: error processing PVC {NS}/datasets: failed to "
        'fetch PVC from API server: persistentvolumeclaims "datasets" not found'
    )
    diagnosis = diagnose_event(event("FailedMount", message), "worker-1", POD)
    assert diagnosis.reason == "FailedMount"
    assert diagnosis.hint.startswith(f'PVC "datasets" does not exist in namespace {NS}')
    assert "%volume=pvc:datasets:/data:ro" in diagnosis.hint


def test_an_unbound_pvc_says_where_to_look():
    message = (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    hint = diagnose_event(event("FailedScheduling", message), "worker-1", POD).hint
    assert hint.startswith(f'PVC "datasets" in namespace {NS} is not bound to a volume yet')
    assert f"kubectl describe pvc datasets -n {NS}" in hint


def test_a_readwriteonce_volume_on_another_node_says_to_use_readwritemany_or_one_node():
    """A multi-node job on a ReadWriteOnce claim: the second node's pod cannot attach it."""
    message = (
        'Multi-Attach error for volume "pvc-0c4e1c2a-6f1d-4c0e-9a55-3f1b0b3e9d21" Volume is '
        "already used by pod(s) ciao-fit-worker-0"
    )
    diagnosis = diagnose_event(event("FailedAttachVolume", message), "worker-1", POD)
    assert diagnosis.reason == "FailedAttachVolume"
    hint = diagnosis.hint
    assert 'volume pvc-0c4e1c2a-6f1d-4c0e-9a55-3f1b0b3e9d21 (PVC "datasets")' in hint
    assert "for pod(s) ciao-fit-worker-0" in hint and "ReadWriteOnce" in hint
    assert "ReadWriteMany" in hint and "%volume=pvc:datasets:/PATH:ro" in hint
    assert "one node" in hint


def test_a_volume_attached_elsewhere_without_a_pod_named_still_explains_it():
    message = (
        'Multi-Attach error for volume "pvc-0c4e" Volume is already exclusively attached to one '
        "node and can't be attached to another"
    )
    hint = diagnose_event(event("FailedAttachVolume", message), "worker-1", POD).hint
    assert "already attached to another node" in hint and "ReadWriteMany" in hint


# --- Secrets and ConfigMaps ------------------------------------------------------------------


def test_a_secret_that_does_not_exist_names_the_env_settings_that_read_it():
    (diagnosis,) = diagnose_pod(
        waiting("CreateContainerConfigError", 'secret "hf" not found'), "worker-1"
    )
    assert diagnosis.reason == "CreateContainerConfigError"
    assert diagnosis.hint.startswith(
        f'Secret "hf" does not exist in namespace {NS}, and %env=TOKEN=secret:hf/token needs it'
    )
    assert f"kubectl create secret generic hf --from-literal=KEY=VALUE -n {NS}" in diagnosis.hint


def test_a_secret_read_whole_by_envfrom_is_named_as_envfrom():
    (diagnosis,) = diagnose_pod(
        waiting("CreateContainerConfigError", 'secret "s3-creds" not found'), "worker-1"
    )
    assert "%envFrom=secret:s3-creds needs it" in diagnosis.hint


def test_a_missing_key_names_the_key_the_secret_and_the_setting():
    message = f"couldn't find key token in Secret {NS}/hf"
    (diagnosis,) = diagnose_pod(waiting("CreateContainerConfigError", message), "worker-1")
    assert diagnosis.hint.startswith(
        f'Secret {NS}/hf has no key "token", which %env=TOKEN=secret:hf/token reads'
    )
    assert f"kubectl describe secret hf -n {NS} lists its keys" in diagnosis.hint


def test_a_configmap_key_is_told_apart_from_a_secret_key():
    pod = waiting("CreateContainerConfigError", f"couldn't find key lr in ConfigMap {NS}/hparams")
    pod["spec"]["containers"][0]["env"].append(
        {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "hparams", "key": "lr"}}}
    )
    (diagnosis,) = diagnose_pod(pod, "worker-1")
    assert diagnosis.hint.startswith(
        f'ConfigMap {NS}/hparams has no key "lr", which %env=LR=configMap:hparams/lr reads'
    )


def test_other_container_config_errors_are_shown_as_the_kubelet_says_them():
    message = 'failed to prepare subPath for volumeMount "data" of container "pytorch"'
    (diagnosis,) = diagnose_pod(waiting("CreateContainerConfigError", message), "worker-1")
    assert diagnosis.hint == message


@pytest.mark.parametrize(
    "message, says",
    [
        (
            'MountVolume.SetUp failed for volume "gcs" : secret "gcs-key" not found',
            f'Secret "gcs-key" does not exist in namespace {NS}, and '
            "%volume=secret:gcs-key:/etc/gcs needs it",
        ),
        (
            'MountVolume.SetUp failed for volume "hp" : configmap "hparams" not found',
            f'ConfigMap "hparams" does not exist in namespace {NS}, and '
            "%volume=configMap:hparams:/etc/hparams needs it: create it (kubectl create "
            f"configmap hparams --from-literal=KEY=VALUE -n {NS}), or fix the name",
        ),
        (
            'MountVolume.SetUp failed for volume "ciao-code" : configmap "ciao-fit-code" not found',
            'the ConfigMap "ciao-fit-code" that holds the cell\'s code is gone',
        ),
    ],
)
def test_a_secret_or_configmap_volume_whose_object_is_missing_is_named(message, says):
    diagnosis = diagnose_event(event("FailedMount", message), "worker-1", POD)
    assert diagnosis.reason == "FailedMount" and diagnosis.hint.startswith(says)


def test_the_kubelets_still_not_mounted_summary_names_the_volume_and_where_to_look():
    message = (
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached "
        "volumes=[data kube-api-access-x2k9p]: timed out waiting for the condition"
    )
    hint = diagnose_event(event("FailedMount", message), "worker-1", POD).hint
    assert hint.startswith("volume data (%volume=pvc:datasets:/data:ro) still not mounted")
    assert f"kubectl describe pod ciao-fit-worker-1 -n {NS}" in hint


# --- pull secrets ----------------------------------------------------------------------------

PULL_SECRET_EVENT = (
    "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not "
    "succeed."
)
DENIED = (
    'Failed to pull image "registry.example/team/train:1": failed to pull and unpack image '
    '"registry.example/team/train:1": failed to resolve reference '
    '"registry.example/team/train:1": pull access denied, repository does not exist or may '
    "require authorization: authorization failed: no basic auth credentials"
)


def test_a_pull_secret_that_does_not_exist_is_named():
    diagnosis = diagnose_event(event("FailedToRetrieveImagePullSecret", PULL_SECRET_EVENT), "w")
    assert diagnosis.reason == "FailedToRetrieveImagePullSecret"
    assert diagnosis.hint.startswith('the pull secret "regcred" (from %imagePullSecret')
    assert f"does not exist in namespace {NS}" in diagnosis.hint
    assert "kubectl create secret docker-registry regcred" in diagnosis.hint


def test_a_pull_failure_with_a_missing_pull_secret_says_the_secret_is_missing():
    pod = waiting("ErrImagePull", DENIED)
    (diagnosis,) = diagnose_pod(pod, "worker-1", missing_pull=("regcred",))
    assert diagnosis.reason == "ErrImagePull"
    assert diagnosis.hint.startswith(
        'the image registry.example/team/train:1 cannot be pulled, and the pull secret "regcred"'
    )
    assert f"does not exist in namespace {NS}" in diagnosis.hint and DENIED in diagnosis.hint


def test_a_refused_pull_names_the_pull_secret_the_pod_has():
    """Without the kubelet's word that it is missing, the pod's own pull secret is named."""
    (diagnosis,) = diagnose_pod(waiting("ErrImagePull", DENIED), "worker-1")
    assert "the pod's pull secret (regcred) does not hold credentials" in diagnosis.hint
    assert f"kubectl get secret regcred -n {NS}" in diagnosis.hint


# --- admission refusals: never created, whatever the controller retries -----------------------

SA_REFUSED = (
    'Error creating: pods "ciao-fit-worker-0" is forbidden: error looking up service account '
    f'{NS}/trainer: serviceaccount "trainer" not found'
)
PRIORITY_REFUSED = (
    'Error creating: pods "ciao-fit-node-0-0-7xk2p" is forbidden: no PriorityClass with name '
    "high was found"
)


@pytest.mark.parametrize(
    "message, says",
    [
        (
            SA_REFUSED,
            f'the service account "trainer" does not exist in namespace {NS}, so no pod of the '
            "job can be created: fix %serviceAccount=trainer, or create it (kubectl create "
            f"serviceaccount trainer -n {NS})",
        ),
        (
            PRIORITY_REFUSED,
            'the PriorityClass "high" does not exist, so no pod of the job can be created: fix '
            "%priorityClass=high (kubectl get priorityclasses",
        ),
        (
            'Error creating: pods "x" is forbidden: pods with system-node-critical '
            f"priorityClass is not permitted in {NS} namespace",
            'the PriorityClass "system-node-critical" is kept for the cluster\'s own pods',
        ),
    ],
)
def test_a_name_admission_cannot_resolve_refuses_the_pods_for_good(message, says):
    assert creation_hint(message).startswith(says) and message in creation_hint(message)
    assert never_created(message)
    diagnosis = diagnose_event(event("FailedCreatePod", message, "ciao-fit"), "job")
    assert (diagnosis.replica, diagnosis.reason) == ("job", "FailedCreatePod")


def test_a_full_quota_is_not_for_good():
    message = 'Error creating: pods "x" is forbidden: exceeded quota: gpus, requested: ...'
    assert not never_created(message)
