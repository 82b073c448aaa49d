"""Following one job: the informers call back on their own threads, and the handlers run one
at a time, so a pod that several of them report at once still gets exactly one log follower."""

from __future__ import annotations

import threading
import time

import pytest

from ciao.backend.kubeflow import pod_watch
from ciao.backend.kubeflow.follow import Follow
from ciao.backend.kubeflow.manifests import KINDS, TRAINJOB
from ciao.backend.kubeflow.run import KubeflowRun
from ciao.backend.kubeflow.verdict import TorchrunFailure
from ciao.backend.types import Diagnosis, LogLine
from ciao.errors import BackendError

pytestmark = pytest.mark.timeout(30)

POD = {
    "metadata": {
        "name": "ciao-race-master-0",
        "uid": "pod-uid-1",
        "labels": {
            "training.kubeflow.org/replica-type": "master",
            "training.kubeflow.org/replica-index": "0",
        },
    },
    "status": {
        "phase": "Running",
        "containerStatuses": [{"name": "pytorch", "state": {"running": {}}}],
    },
}
FINISHED_JOB = {
    "metadata": {"name": "ciao-race", "uid": "job-uid"},
    "status": {"conditions": [{"type": "Succeeded", "status": "True"}]},
}


class OnePod:
    """A cluster whose only pod is POD (what the job handler reads before its verdict)."""

    namespace = "default"

    def request(self, method, path, query=None, **options):
        assert (method, path) == ("GET", "/api/v1/namespaces/default/pods")
        return {"items": [POD]}


class Followers:
    """Stands in for ContainerFollower: records each one made, and makes them slowly: the
    first waits a moment for a rival, which only handlers running side by side would make."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []
        self.rival = threading.Event()

    def __call__(
        self, cluster, pod_path, container, replica, view, changed, put, start=None, job=""
    ):
        self.made.append((pod_path, container))
        if len(self.made) == 1:
            self.rival.wait(0.5)
        else:
            self.rival.set()
        return self

    def start(self):
        return self

    def stop(self):
        pass


def at_once(calls) -> None:
    """Run every call on its own thread, all released together."""
    gate = threading.Barrier(len(calls))

    def run(call):
        gate.wait()
        call()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)


@pytest.fixture
def followers(monkeypatch) -> Followers:
    made = Followers()
    monkeypatch.setattr(pod_watch, "ContainerFollower", made)
    return made


def follow() -> Follow:
    run = KubeflowRun(KINDS["pytorch"], "default", "ciao-race", "job-uid")
    return Follow(OnePod(), run, queue_size=100, fallback_after=10.0)


def test_a_pod_reported_by_several_threads_at_once_gets_one_follower(followers):
    following = follow()

    at_once([lambda: following.on_pod("MODIFIED", POD)] * 8)

    assert followers.made == [("/api/v1/namespaces/default/pods/ciao-race-master-0", "pytorch")]
    assert list(following.pod_watch.followers) == [("pod-uid-1", "pytorch")]


def test_the_pod_watch_and_the_jobs_last_look_at_its_pods_make_one_follower(followers):
    """The job handler reads the pods itself before its verdict, on the job informer's
    thread, while the pod informer may be reporting the same pod."""
    following = follow()

    at_once(
        [lambda: following.on_pod("ADDED", POD)] * 4
        + [lambda: following.on_job("MODIFIED", FINISHED_JOB)] * 4
    )

    assert len(followers.made) == 1
    assert list(following.pod_watch.followers) == [("pod-uid-1", "pytorch")]
    assert following.outcome is not None and following.outcome.succeeded


NODE_POD = {
    "metadata": {
        "name": "ciao-v2-node-0-1-x7k2p",
        "uid": "pod-uid-2",
        "labels": {
            "jobset.sigs.k8s.io/jobset-name": "ciao-v2",
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "batch.kubernetes.io/job-completion-index": "1",
        },
    },
    "status": {"phase": "Pending"},
}
FAILED_SCHEDULING = {
    "type": "Warning",
    "reason": "FailedScheduling",
    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
    "involvedObject": {"kind": "Pod", "name": "ciao-v2-node-0-1-x7k2p"},
}


def diagnoses(following: Follow) -> list:
    found = []
    while not following.queue.empty():
        item = following.queue.get_nowait()
        if isinstance(item, Diagnosis):
            found.append((item.replica, item.reason) + (("resolved",) if item.resolved else ()))
    return found


def test_an_event_about_a_trainjob_pod_not_seen_yet_is_kept_until_the_pod_says_its_node(
    followers,
):
    """The event watch can outrun the pod watch, and a TrainJob pod's name does not say
    which node it is: the event waits for the pod instead of being dropped."""
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(OnePod(), run, queue_size=100, fallback_after=10.0)

    following.on_event("ADDED", FAILED_SCHEDULING)
    assert diagnoses(following) == []
    following.on_pod("ADDED", NODE_POD)

    assert diagnoses(following) == [("node-1", "FailedScheduling")]
    assert following.warnings.early == {}


def test_events_about_other_objects_are_not_held():
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(OnePod(), run, queue_size=100, fallback_after=10.0)
    other = dict(FAILED_SCHEDULING, involvedObject={"kind": "Pod", "name": "someone-else-0"})

    following.on_event("ADDED", other)

    assert following.warnings.early == {} and diagnoses(following) == []


def test_a_warning_about_a_trainjobs_batch_job_is_about_the_whole_job():
    """The batch Job makes every node's pods: its FailedCreate explains them all."""
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(OnePod(), run, queue_size=100, fallback_after=10.0)
    event = {
        "type": "Warning",
        "reason": "FailedCreate",
        "message": 'Error creating: pods "ciao-v2-node-0-0-abcde" is forbidden: exceeded quota',
        "involvedObject": {"kind": "Job", "name": "ciao-v2-node-0"},
    }

    following.on_event("ADDED", event)

    assert diagnoses(following) == [("job", "FailedCreate")]


def test_pods_a_pod_security_level_refuses_end_the_following_but_a_full_quota_does_not():
    """A quota frees up as other jobs end; a Pod Security level refuses the same pods for
    ever, so the cell fails at once (and its job is stopped) instead of waiting."""
    run = KubeflowRun(KINDS["pytorch"], "default", "ciao-race", "job-uid")
    following = Follow(OnePod(), run, queue_size=100, fallback_after=10.0)
    refused = {
        "type": "Warning",
        "reason": "FailedCreatePod",
        "involvedObject": {"kind": "PyTorchJob", "name": "ciao-race"},
    }
    quota = 'Error creating: pods "ciao-race-master-0" is forbidden: exceeded quota: q'
    following.on_event("ADDED", {**refused, "message": quota})
    security = (
        'Error creating: pods "ciao-race-master-0" is forbidden: violates PodSecurity '
        '"restricted:latest": runAsNonRoot != true (pod or container "pytorch" must set '
        "securityContext.runAsNonRoot=true)"
    )
    for _ in range(2):  # the operator retries: one failure
        following.on_event("ADDED", {**refused, "message": security})

    items = [following.queue.get_nowait() for _ in range(following.queue.qsize())]
    errors = [item for item in items if isinstance(item, BackendError)]
    assert len(errors) == 1 and len(items) == 2, items
    assert str(errors[0]).startswith("its pods cannot be created: the namespace's Pod Security")
    assert "kubeflow.pod_security" in str(errors[0]) and security in str(errors[0])


class NoPodsYet:
    """A cluster where no label and no ownerReference finds a pod of the job."""

    namespace = "default"

    def request(self, method, path, query=None, **options):
        return {"items": []}


def suspended(status: str) -> dict:
    condition = {"type": "Suspended", "status": status, "message": "TrainJob is suspended"}
    return {
        "metadata": {"name": "ciao-v2", "uid": "job-uid"},
        "status": {"conditions": [condition]},
    }


def test_a_suspended_job_is_said_to_be_waiting_not_to_lack_a_controller():
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(NoPodsYet(), run, queue_size=100, fallback_after=5.0)
    long_ago = time.monotonic() - 100

    following.on_job("ADDED", suspended("True"))
    following._maybe_fall_back(started=long_ago)
    assert diagnoses(following) == [("job", "Suspended")]

    following.on_job("MODIFIED", suspended("False"))  # admitted: its pods get time from now
    following._maybe_fall_back(started=long_ago)
    assert diagnoses(following) == [("job", "Suspended", "resolved")]

    following.resumed_at -= 10  # and still no pod, long after: say so
    following._maybe_fall_back(started=long_ago)
    assert diagnoses(following) == [("job", "NoPods")]


def test_a_job_suspended_by_its_spec_is_suspended_before_any_condition_says_so():
    """Kueue's webhook sets spec.suspend at creation; the controller's condition comes later.
    Suspended again later (preempted), it is said again."""
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(NoPodsYet(), run, queue_size=100, fallback_after=5.0)
    job = {"metadata": {"name": "ciao-v2", "uid": "job-uid"}, "spec": {"suspend": True}}

    following.on_job("ADDED", job)
    following.on_job("MODIFIED", suspended("True"))
    assert diagnoses(following) == [("job", "Suspended")]
    following.on_job("MODIFIED", suspended("False"))
    following.on_job("MODIFIED", suspended("True"))
    assert diagnoses(following) == [("job", "Suspended", "resolved"), ("job", "Suspended")]


def test_torchruns_report_does_not_push_the_failed_processs_lines_out_of_the_verdict():
    run = KubeflowRun(TRAINJOB, "default", "ciao-v2", "job-uid")
    following = Follow(NoPodsYet(), run, queue_size=1000, fallback_after=10.0)
    lines = ["starting 1", "ValueError: bad batch"]
    lines.append(
        "E1203 12:44:01.058000 9101 torch/distributed/elastic/multiprocessing/api.py:1002] "
        "failed (exitcode: 4) local_rank: 0 (pid: 9116) of binary: /usr/bin/python"
    )
    lines += [f"torchrun report line {i}" for i in range(40)]
    for text in lines:
        following.put(LogLine("node-1", text))

    assert following.evidence.torchrun_failures["node-1"] == TorchrunFailure(
        local_rank=0, exit_code=4, lines_before=("starting 1", "ValueError: bad batch")
    )
    assert following.evidence.last_lines.of("node-1")[-1] == "torchrun report line 39"


# --- real-cluster problems: each cause said once, and those that never pass end the cell ---

SA_REFUSED = (
    'Error creating: pods "ciao-v2-node-0-0-abcde" is forbidden: error looking up service '
    'account default/trainer: serviceaccount "trainer" not found'
)


@pytest.mark.parametrize(
    "api_kind, involved",
    [
        (KINDS["pytorch"], {"kind": "PyTorchJob", "name": "ciao-v2"}),
        (TRAINJOB, {"kind": "Job", "name": "ciao-v2-node-0"}),
    ],
)
def test_a_service_account_that_does_not_exist_ends_the_following(api_kind, involved):
    """Admission refuses the same pods at every retry of the controller: the cell fails
    at once, with the diagnosis, instead of waiting for pods that never come."""
    run = KubeflowRun(api_kind, "default", "ciao-v2", "job-uid")
    following = Follow(NoPodsYet(), run, queue_size=100, fallback_after=10.0)
    refused = {"type": "Warning", "reason": "FailedCreate", "involvedObject": involved}
    for _ in range(3):  # the controller retries: one failure
        following.on_event("ADDED", {**refused, "message": SA_REFUSED})

    items = [following.queue.get_nowait() for _ in range(following.queue.qsize())]
    (error,) = [item for item in items if isinstance(item, BackendError)]
    assert [(d.replica, d.reason) for d in items if isinstance(d, Diagnosis)] == [
        ("job", "FailedCreate")
    ]
    assert str(error).startswith(
        'its pods cannot be created: the service account "trainer" does not exist in namespace '
        "default"
    )
    assert "%serviceAccount=trainer" in str(error)


def pending_pod(**spec) -> dict:
    pod = {
        "metadata": {
            "name": "ciao-race-worker-1",
            "namespace": "default",
            "uid": "pod-uid-3",
            "labels": {
                "training.kubeflow.org/replica-type": "worker",
                "training.kubeflow.org/replica-index": "1",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "pytorch",
                    "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
            "imagePullSecrets": [{"name": "regcred"}],
            **spec,
        },
        "status": {"phase": "Pending"},
    }
    return pod


def pod_event(reason: str, message: str) -> dict:
    return {
        "type": "Warning",
        "reason": reason,
        "message": message,
        "involvedObject": {"kind": "Pod", "name": "ciao-race-worker-1", "namespace": "default"},
    }


def said(following: Follow) -> list[Diagnosis]:
    items = [following.queue.get_nowait() for _ in range(following.queue.qsize())]
    return [item for item in items if isinstance(item, Diagnosis)]


def test_a_missing_pvc_is_said_once_though_the_event_and_the_pod_both_say_it(followers):
    following = follow()
    message = '0/3 nodes are available: persistentvolumeclaim "datasets" not found.'
    pod = pending_pod()
    following.on_pod("ADDED", pod)
    following.on_event("ADDED", pod_event("FailedScheduling", message))
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    following.on_pod(
        "MODIFIED",
        {
            **pod,
            "status": {"phase": "Pending", "conditions": [{**unschedulable, "message": message}]},
        },
    )

    (diagnosis,) = said(following)
    assert (diagnosis.replica, diagnosis.reason) == ("worker-1", "FailedScheduling")
    assert diagnosis.hint.startswith('PVC "datasets" does not exist in namespace default')
    assert "%volume=pvc:datasets:/data:ro" in diagnosis.hint  # the pod watch's view of it


def test_a_missing_pull_secret_explains_the_pull_failure_the_pod_watch_sees(followers):
    """The kubelet says the pull secret is missing, then the pull fails: whichever watch
    reports the failure, it says the secret is missing."""
    following = follow()
    following.on_pod("ADDED", pending_pod())
    following.on_event(
        "ADDED",
        pod_event(
            "FailedToRetrieveImagePullSecret",
            "Unable to retrieve some image pull secrets (regcred); attempting to pull the "
            "image may not succeed.",
        ),
    )
    failed = pending_pod()
    failed["status"]["containerStatuses"] = [
        {
            "name": "pytorch",
            "state": {
                "waiting": {
                    "reason": "ErrImagePull",
                    "message": 'failed to pull and unpack image "registry.example/private:1": '
                    "pull access denied, repository does not exist or may require authorization",
                }
            },
        }
    ]
    following.on_pod("MODIFIED", failed)

    secret, pull = said(following)
    assert secret.reason == "FailedToRetrieveImagePullSecret"
    assert pull.reason == "ErrImagePull"
    assert pull.hint.startswith(
        'the image registry.example/private:1 cannot be pulled, and the pull secret "regcred"'
    )


def test_the_kubelets_still_not_mounted_summary_adds_nothing_to_a_multi_attach_error(followers):
    following = follow()
    following.on_pod("ADDED", pending_pod())
    following.on_event(
        "ADDED",
        pod_event(
            "FailedAttachVolume",
            'Multi-Attach error for volume "pvc-0c4e" Volume is already used by pod(s) '
            "ciao-race-worker-0",
        ),
    )
    following.on_event(
        "ADDED",
        pod_event(
            "FailedMount",
            "Unable to attach or mount volumes: unmounted volumes=[data], unattached "
            "volumes=[data kube-api-access-x2k9p]: timed out waiting for the condition",
        ),
    )

    assert [(d.replica, d.reason) for d in said(following)] == [("worker-1", "FailedAttachVolume")]


def test_pods_no_scheduler_takes_are_said_after_the_wait_for_pods(followers):
    """A schedulerName no scheduler serves: no event, no condition, only Pending."""
    following = follow()
    following.on_pod("ADDED", pending_pod(schedulerName="volcano"))
    said(following)  # its state

    following._maybe_fall_back(started=time.monotonic())
    assert said(following) == []  # not yet: it has just appeared
    following.pod_watch.first_seen["pod-uid-3"] -= 11
    following._maybe_fall_back(started=time.monotonic())
    following._maybe_fall_back(started=time.monotonic())

    (diagnosis,) = said(following)
    assert (diagnosis.replica, diagnosis.reason) == ("job", "NotScheduled")
    assert "no scheduler named volcano" in diagnosis.hint
