"""The test cluster's Pod Security admission: a namespace's pod-security.kubernetes.io labels
hold its pods to baseline or restricted, with upstream's checks (k8s.io/pod-security-admission)
and the real server's words; controllers that cannot create a pod say so in events; and the
kubelet refuses to start a container that would run as root under runAsNonRoot."""

from __future__ import annotations

from pathlib import Path

import kubernetes
import pytest
import yaml
from fakecluster import FakeCluster, StatusError
from fakecluster.apiserver import VERSION_INFO
from fakecluster.jobs import pytorchjob, trainjob
from fakecluster.podsecurity import SERVER_VERSION, LevelVersion, evaluate, policy_of
from fakecluster.resources import CORE
from fakecluster.testing import connected, phase, status_of

ENFORCE = "pod-security.kubernetes.io/enforce"
RESTRICTED = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
BARE_VIOLATIONS = (
    'allowPrivilegeEscalation != false (container "c" must set '
    "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "
    '"c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
    'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
    'container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")'
)


def pod(name: str, command=("true",), image: str = "busybox", pod_sc=None, sc=None, **spec):
    container = {"name": "c", "image": image, "command": list(command)}
    if sc is not None:
        container["securityContext"] = sc
    body = {"containers": [container], "restartPolicy": "Never", **spec}
    if pod_sc is not None:
        body["securityContext"] = pod_sc
    return {"metadata": {"name": name}, "spec": body}


def restricted_pod(name: str, command=("true",), **kwargs):
    return pod(name, command, pod_sc={**RESTRICTED, "runAsUser": 1000}, sc=CONTAINER_RESTRICTED)


def namespace(cluster: FakeCluster, name: str, **labels: str) -> None:
    labels = {f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}
    cluster.create("namespaces", {"metadata": {"name": name, "labels": labels}})


def violations(spec: dict, level: str = "restricted", version=None, **kw) -> str:
    found = evaluate(LevelVersion(level, version), {}, spec, **kw)
    return ", ".join(f"{reason} ({text})" for reason, text in found)


@pytest.fixture
def cluster(bare_cluster: FakeCluster) -> FakeCluster:
    namespace(bare_cluster, "secure", enforce="restricted", enforce_version="latest")
    return bare_cluster


def test_a_pod_that_violates_restricted_is_forbidden_with_the_servers_words(cluster, tmp_path):
    with (
        connected(cluster, tmp_path / "kubeconfig", "secure") as kube,
        pytest.raises(kubernetes.client.ApiException) as refused,
    ):
        kube.core.create_namespaced_pod("secure", pod("bare"))
    assert refused.value.status == 403
    status = status_of(refused.value)
    assert status["reason"] == "Forbidden"
    assert status["details"] == {"name": "bare", "kind": "pods"}
    assert status["message"] == (
        f'pods "bare" is forbidden: violates PodSecurity "restricted:latest": {BARE_VIOLATIONS}'
    )
    assert cluster.get("pods", "secure", "bare") is None


def test_a_pod_that_meets_restricted_is_admitted_and_runs(cluster):
    cluster.create("pods", restricted_pod("ok"), "secure")
    cluster.wait_for(lambda: phase(cluster, "ok", "secure") == "Succeeded")


def test_the_version_label_names_the_policy_and_older_versions_check_less(cluster):
    namespace(cluster, "old", enforce="restricted", enforce_version="v1.22")
    as_root = pod("root", pod_sc={**RESTRICTED, "runAsUser": 0}, sc=CONTAINER_RESTRICTED)
    cluster.create("pods", as_root, "old")  # runAsUser=0 is refused from v1.23
    with pytest.raises(StatusError) as refused:
        cluster.create("pods", as_root, "secure")
    assert refused.value.message == (
        'pods "root" is forbidden: violates PodSecurity "restricted:latest": runAsUser=0 '
        "(pod must not set runAsUser=0)"
    )
    namespace(cluster, "v125", enforce="restricted", enforce_version="v1.25")
    with pytest.raises(StatusError) as refused:
        cluster.create("pods", pod("bare"), "v125")
    assert '"restricted:v1.25": allowPrivilegeEscalation != false' in refused.value.message


def test_baseline_admits_an_ordinary_pod_and_refuses_host_access():
    assert violations(pod("p")["spec"], "baseline") == ""
    spec = pod("p", sc={"privileged": True, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}})[
        "spec"
    ]
    spec.update(hostNetwork=True, hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    spec["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    assert violations(spec, "baseline") == (
        'non-default capabilities (container "c" must not include "NET_ADMIN" in '
        "securityContext.capabilities.add), host namespaces (hostNetwork=true, hostPID=true), "
        'hostPath volumes (volume "h"), hostPort (container "c" uses hostPort 8080), '
        'privileged (container "c" must not set securityContext.privileged=true)'
    )
    # restricted replaces the baseline checks it tightens: capabilities, volumes
    assert violations(spec).startswith(
        'host namespaces (hostNetwork=true, hostPID=true), hostPort (container "c" uses '
        "hostPort 8080), privileged (container"
    )
    assert 'restricted volume types (volume "h" uses restricted volume type "hostPath")' in (
        violations(spec)
    )
    assert 'must not include "CHOWN", "NET_ADMIN" in securityContext.capabilities' in violations(
        spec
    )


def test_every_container_is_checked_and_named_in_order():
    spec = {
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [
            {"name": "a", "image": "x", "securityContext": CONTAINER_RESTRICTED},
            {"name": "b", "image": "x", "securityContext": {"runAsNonRoot": False}},
        ],
        "securityContext": {"seccompProfile": {"type": "Unconfined"}},
    }
    assert violations(spec) == (
        'allowPrivilegeEscalation != false (containers "init", "b" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(containers "init", "b" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (container "b" must not set securityContext.runAsNonRoot=false), '
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
    )


def test_windows_pods_and_user_namespaces_are_relaxed_from_the_versions_that_say_so():
    windows = {**pod("w", pod_sc={"runAsNonRoot": True})["spec"], "os": {"name": "windows"}}
    assert violations(windows) == ""
    assert violations(windows, version=(1, 24)).startswith("allowPrivilegeEscalation != false")
    userns = {**restricted_pod("u")["spec"], "hostUsers": False}
    userns["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 0}
    # v1.35 relaxes runAsNonRoot and runAsUser in a user namespace: not this v1.31 server
    assert violations(userns) == (
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
        "runAsUser=0 (pod must not set runAsUser=0)"
    )
    assert violations(userns, max_version=(1, 35)) == ""
    probe = {"httpGet": {"host": "example.com", "port": 80}}
    probed = {"containers": [{"name": "c", "image": "x", "livenessProbe": probe}]}
    assert violations(probed, "baseline", max_version=(1, 34)) == (
        'probe or lifecycle host (container "c" uses probe or lifecycle host "example.com")'
    )
    assert violations(probed, "baseline") == ""  # from v1.34 only


def test_labels_are_validated_and_bad_levels_fail_closed(cluster):
    with pytest.raises(StatusError) as refused:
        namespace(cluster, "typo", enforce="strict")
    assert refused.value.code == 422
    assert refused.value.message == (
        'Namespace "typo" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    with pytest.raises(StatusError) as refused:
        cluster.label_namespace("secure", {"pod-security.kubernetes.io/enforce-version": "1.25"})
    assert refused.value.message.endswith(': Invalid value: "1.25": must be "latest" or "v1.x"')
    policy, errors = policy_of({ENFORCE: "strict", "pod-security.kubernetes.io/warn": "x"})
    assert str(policy.enforce) == "restricted:latest" and policy.warn.level == "privileged"
    assert len(errors) == 2
    # without its own label, warn follows a stricter enforce (level and version)
    policy, _ = policy_of(
        {ENFORCE: "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"}
    )
    assert str(policy.warn) == "baseline:v1.30"


def test_warn_admits_with_a_warning_and_tightening_enforce_names_the_pods_that_violate_it(
    cluster,
):
    namespace(cluster, "soft", enforce="baseline", warn="restricted")
    _, warnings = cluster.registry.create(CORE["pods"], "soft", pod("a", ("sleep", "30")))
    assert warnings == [f'would violate PodSecurity "restricted:latest": {BARE_VIOLATIONS}']
    for name in ("b", "c"):
        cluster.create("pods", pod(name, ("sleep", "30")), "soft")
    cluster.create("pods", restricted_pod("good", ("sleep", "30")), "soft")
    warnings = cluster.label_namespace("soft", {ENFORCE: "restricted"})
    assert warnings == [
        'existing pods in namespace "soft" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "a (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile",
    ]
    assert cluster.label_namespace("soft", {ENFORCE: "baseline"}) == []  # loosening: silent
    cluster.label_namespace("soft", {ENFORCE: "restricted"})
    assert phase(cluster, "a", "soft") in ("Pending", "Running")  # existing pods stay
    # a pod update is held to the policy only when it changes an image
    current = cluster.get("pods", "soft", "a")
    current["metadata"]["labels"] = {"x": "y"}
    cluster.registry.update(CORE["pods"], "soft", "a", current)
    current = cluster.get("pods", "soft", "a")
    current["spec"]["containers"][0]["image"] = "busybox:2"
    with pytest.raises(StatusError) as refused:
        cluster.registry.update(CORE["pods"], "soft", "a", current)
    assert refused.value.code == 403 and "violates PodSecurity" in refused.value.message


def test_the_kubelet_refuses_root_under_run_as_non_root_unless_the_image_says_otherwise():
    users = {"team/app:1": "1000", "team/named:1": "app"}
    with FakeCluster(kubeflow=(), operator=False, image_users=users) as cluster:
        sc = {"runAsNonRoot": True}
        for name, image in (("root", "busybox"), ("named", "team/named:1"), ("app", "team/app:1")):
            cluster.create("pods", pod(name, image=image, pod_sc=sc))

        def waiting(name: str) -> dict:
            statuses = (cluster.get("pods", "default", name).get("status") or {}).get(
                "containerStatuses"
            ) or [{}]
            return (statuses[0].get("state") or {}).get("waiting") or {}

        found = cluster.wait_for(
            lambda: (
                waiting("root").get("reason") == "CreateContainerConfigError" and waiting("root")
            )
        )
        uid = cluster.get("pods", "default", "root")["metadata"]["uid"]
        where = f'(pod: "root_default({uid})", container: c)'
        assert found["message"] == f"container has runAsNonRoot and image will run as root {where}"
        assert cluster.events(involved="root", reason="Failed")[0]["message"] == (
            f"Error: {found['message']}"
        )
        found = cluster.wait_for(lambda: waiting("named").get("message"))
        assert found.startswith(
            "container has runAsNonRoot and image has non-numeric user (app), cannot verify "
            "user is non-root (pod: "
        )
        cluster.wait_for(lambda: phase(cluster, "app") == "Succeeded")
        cluster.create("pods", pod("uid", pod_sc={**sc, "runAsUser": 1000}))  # root image
        cluster.wait_for(lambda: phase(cluster, "uid") == "Succeeded")


def test_controllers_whose_pods_are_refused_say_so_in_their_events():
    with FakeCluster(namespaces=("secure",), kubeflow=("v1", "v2")) as cluster:
        cluster.label_namespace("secure", {ENFORCE: "restricted"})
        cluster.create("pytorchjobs", pytorchjob("pt", ["true"], workers=0), "secure")
        cluster.create("trainjobs", trainjob("tj", ["true"], num_nodes=1), "secure")
        created = cluster.wait_for(
            lambda: cluster.events("secure", involved="pt", reason="FailedCreatePod")
        )
        assert created[0]["message"].startswith(
            'Error creating: pods "pt-master-0" is forbidden: violates PodSecurity '
            '"restricted:latest": allowPrivilegeEscalation != false (container "pytorch" must'
        )
        created = cluster.wait_for(
            lambda: cluster.events("secure", involved="tj-node-0", reason="FailedCreate")
        )
        assert created[0]["message"].startswith('Error creating: pods "tj-node-0-0-')
        assert (
            'violates PodSecurity "restricted:latest": allowPrivilegeEscalation'
            in (created[0]["message"])
        )
        assert not cluster.list("pods", "secure")


def test_the_policy_version_of_latest_is_the_servers():
    assert (int(VERSION_INFO["major"]), int(VERSION_INFO["minor"])) == SERVER_VERSION


def test_the_v1_operators_init_container_comes_from_its_template_and_is_held_to_the_level():
    """The operator adds `init-pytorch` to a PyTorchJob's workers (with a master); its stock
    template sets no securityContext, deploy/'s does."""
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    template = yaml.safe_load((deploy / "training-operator-init-container.yaml").read_text())
    job = pytorchjob("pt", ["true"], workers=1)
    for spec in job["spec"]["pytorchReplicaSpecs"].values():
        pod_spec = spec["template"]["spec"]
        pod_spec["securityContext"] = {**RESTRICTED, "runAsUser": 1000}
        pod_spec["containers"][0]["securityContext"] = CONTAINER_RESTRICTED
    with FakeCluster(namespaces=("secure",)) as cluster:
        cluster.label_namespace("secure", {ENFORCE: "restricted"})
        cluster.create("pytorchjobs", job, "secure")
        refused = cluster.wait_for(
            lambda: cluster.events("secure", involved="pt", reason="FailedCreatePod")
        )
        assert refused[0]["message"] == (
            'Error creating: pods "pt-worker-0" is forbidden: violates PodSecurity '
            '"restricted:latest": allowPrivilegeEscalation != false (container "init-pytorch" '
            "must set securityContext.allowPrivilegeEscalation=false), unrestricted "
            'capabilities (container "init-pytorch" must set '
            'securityContext.capabilities.drop=["ALL"])'
        )
        assert cluster.get("pods", "secure", "pt-master-0") is not None
    with FakeCluster(
        namespaces=("secure",), pytorch_init_template=template["data"]["initContainer.yaml"]
    ) as cluster:
        cluster.label_namespace("secure", {ENFORCE: "restricted"})
        cluster.create("pytorchjobs", job, "secure")
        worker = cluster.wait_for(lambda: cluster.get("pods", "secure", "pt-worker-0"))
        (init,) = worker["spec"]["initContainers"]
        assert init["name"] == "init-pytorch" and init["image"] == "alpine:3.10"
        assert "nslookup pt-master-0;" in init["command"][2]
        assert init["securityContext"]["allowPrivilegeEscalation"] is False

        def succeeded() -> bool:
            conditions = (cluster.get("pytorchjobs", "secure", "pt").get("status") or {}).get(
                "conditions"
            ) or []
            return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)

        cluster.wait_for(succeeded, timeout=30, message="the job to succeed")
