"""The fake API server through the real `kubernetes` client: verbs, errors, selectors."""

from __future__ import annotations

from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import pytorchjob
from fakecluster.testing import KF, status_of
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


def test_configmap_crud_and_resource_versions(shared_kube: SimpleNamespace) -> None:
    core = shared_kube.core
    created = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "crud", "labels": {"a": "1"}}, "data": {"k": "v"}}
    )
    assert created.metadata.uid and created.metadata.creation_timestamp
    listing = core.list_namespaced_config_map("default")
    assert int(listing.metadata.resource_version) >= int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map("crud", "default", {"data": {"k2": "v2"}})
    assert patched.data == {"k": "v", "k2": "v2"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    stale = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(
            name="crud", resource_version=created.metadata.resource_version
        ),
        data={"x": "y"},
    )
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("crud", "default", stale)
    assert exc.value.status == 409
    body = status_of(exc.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "crud": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    core.delete_namespaced_config_map("crud", "default")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("crud", "default")
    assert status_of(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "crud" not found',
        "reason": "NotFound",
        "details": {"name": "crud", "kind": "configmaps"},
        "code": 404,
    }


def test_custom_object_409_404_and_delete_status(shared_kube: SimpleNamespace) -> None:
    custom = shared_kube.custom
    job = pytorchjob("dup", ["python", "-c", "pass"], workers=0)
    job["spec"]["runPolicy"]["suspend"] = True
    created = custom.create_namespaced_custom_object(*KF, "team", "pytorchjobs", job)
    assert created["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*KF, "team", "pytorchjobs", job)
    assert exc.value.status == 409
    body = status_of(exc.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'pytorchjobs.kubeflow.org "dup" already exists'
    assert body["details"] == {"name": "dup", "group": "kubeflow.org", "kind": "pytorchjobs"}
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(*KF, "team", "pytorchjobs", "missing")
    assert status_of(exc.value)["message"] == 'pytorchjobs.kubeflow.org "missing" not found'
    deleted = custom.delete_namespaced_custom_object(*KF, "team", "pytorchjobs", "dup")
    assert deleted["status"] == "Success"
    assert deleted["details"]["uid"] == created["metadata"]["uid"]


def test_create_in_missing_namespace_and_generate_name(shared_kube: SimpleNamespace) -> None:
    with pytest.raises(ApiException) as exc:
        shared_kube.core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert exc.value.status == 404
    assert status_of(exc.value)["message"] == 'namespaces "nowhere" not found'
    made = shared_kube.core.create_namespaced_config_map(
        "default", {"metadata": {"generateName": "gen-"}}
    )
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9


def test_unauthorized_without_the_token(shared_cluster: FakeCluster) -> None:
    api = shared_cluster.api_client()
    api.configuration.api_key = {"BearerToken": "wrong"}
    with pytest.raises(ApiException) as exc:
        kubernetes.client.CoreV1Api(api).list_namespaced_pod("default")
    assert exc.value.status == 401
    assert status_of(exc.value)["reason"] == "Unauthorized"
    api.close()


def test_blocking_an_owners_deletion_needs_update_on_its_finalizers(
    shared_cluster: FakeCluster, shared_kube: SimpleNamespace
) -> None:
    """OwnerReferencesPermissionEnforcement: a plain ownerReference needs nothing more."""
    owner = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "j", "uid": "u"}
    rule = shared_cluster.deny("update", "pytorchjobs/finalizers")
    try:
        with pytest.raises(ApiException) as exc:
            shared_kube.core.create_namespaced_config_map(
                "default",
                {
                    "metadata": {
                        "name": "b",
                        "ownerReferences": [{**owner, "blockOwnerDeletion": True}],
                    }
                },
            )
        assert exc.value.status == 403
        assert 'cannot update resource "pytorchjobs/finalizers"' in status_of(exc.value)["message"]
        plain = {"metadata": {"name": "p", "ownerReferences": [owner]}}
        created = shared_kube.core.create_namespaced_config_map("default", plain)
        assert created.metadata.name == "p"
        try:  # its owner does not exist: the garbage collector may have removed it already
            shared_kube.core.delete_namespaced_config_map("p", "default")
        except ApiException as gone:
            assert gone.status == 404
    finally:
        shared_cluster.allow(rule)


def test_forbidden_has_the_rbac_message(
    shared_cluster: FakeCluster, shared_kube: SimpleNamespace
) -> None:
    rule = shared_cluster.deny("create", "pytorchjobs", namespace="default")
    log_rule = shared_cluster.deny("get", "pods/log")
    try:
        with pytest.raises(ApiException) as exc:
            shared_kube.custom.create_namespaced_custom_object(
                *KF, "default", "pytorchjobs", pytorchjob("denied", ["true"])
            )
        assert exc.value.status == 403
        assert status_of(exc.value)["message"] == (
            'pytorchjobs.kubeflow.org is forbidden: User "system:serviceaccount:default:ciao" '
            'cannot create resource "pytorchjobs" in API group "kubeflow.org" in the namespace '
            '"default"'
        )
        with pytest.raises(ApiException) as exc:
            shared_kube.core.read_namespaced_pod_log("any", "team")
        assert status_of(exc.value)["message"] == (
            'pods "any" is forbidden: User "system:serviceaccount:default:ciao" cannot get '
            'resource "pods/log" in API group "" in the namespace "team"'
        )
    finally:
        shared_cluster.allow(rule)
        shared_cluster.allow(log_rule)


def test_crd_served_and_uninstall(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    crd = kube.ext.read_custom_resource_definition("pytorchjobs.kubeflow.org")
    assert crd.spec.names.kind == "PyTorchJob"
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    assert (
        "pytorchReplicaSpecs"
        in crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties
    )
    cluster.uninstall_crd("pytorchjobs.kubeflow.org")
    with pytest.raises(ApiException) as exc:
        kube.custom.list_namespaced_custom_object(*KF, "default", "pytorchjobs")
    assert exc.value.status == 404
    assert exc.value.body == "404 page not found\n"
    with pytest.raises(ApiException) as exc:
        kube.ext.read_custom_resource_definition("pytorchjobs.kubeflow.org")
    assert status_of(exc.value)["message"] == (
        'customresourcedefinitions.apiextensions.k8s.io "pytorchjobs.kubeflow.org" not found'
    )
    kube.custom.list_namespaced_custom_object(*KF, "default", "tfjobs")  # still there


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"s1", "s2"}),
        ("app==web,tier!=db", {"s1"}),
        ("tier in (db, cache)", {"s2", "s3"}),
        ("tier notin (db)", {"s1", "s3", "s4"}),
        ("tier", {"s1", "s2", "s3"}),
        ("!tier", {"s4"}),
        ("app=web,!tier", set()),
    ],
)
def test_label_selectors(shared_kube: SimpleNamespace, selector: str, expected: set[str]) -> None:
    core = shared_kube.core
    existing = {c.metadata.name for c in core.list_namespaced_config_map("team").items}
    for name, labels in {
        "s1": {"app": "web", "tier": "front"},
        "s2": {"app": "web", "tier": "db"},
        "s3": {"app": "batch", "tier": "cache"},
        "s4": {"app": "batch"},
    }.items():
        if name not in existing:
            core.create_namespaced_config_map(
                "team", {"metadata": {"name": name, "labels": labels}}
            )
    found = core.list_namespaced_config_map("team", label_selector=selector).items
    assert {c.metadata.name for c in found} & {"s1", "s2", "s3", "s4"} == expected


def test_field_selectors_and_bad_selector(
    shared_cluster: FakeCluster, shared_kube: SimpleNamespace
) -> None:
    core = shared_kube.core
    big = {"requests": {"cpu": "100"}}
    pod = {
        "metadata": {"name": "too-big"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": big}]},
    }
    core.create_namespaced_pod("default", pod)
    shared_cluster.wait_for(
        lambda: shared_cluster.events("default", "too-big", "FailedScheduling"), 10
    )
    pending = core.list_namespaced_pod("default", field_selector="status.phase=Pending").items
    assert "too-big" in [p.metadata.name for p in pending]
    assert not core.list_namespaced_pod(
        "default", field_selector="metadata.name=too-big,status.phase!=Pending"
    ).items
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=too-big,involvedObject.kind=Pod"
    ).items
    assert [e.reason for e in events] == ["FailedScheduling"]
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert exc.value.status == 400
    assert status_of(exc.value)["message"] == "field label not supported: spec.bogus"
    core.delete_namespaced_pod("too-big", "default")


def test_patch_types_and_pagination(shared_kube: SimpleNamespace) -> None:
    core, custom = shared_kube.core, shared_kube.custom
    for i in range(5):
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": f"page-{i}", "labels": {"page": "yes"}}}
        )
    first = core.list_namespaced_config_map("default", label_selector="page", limit=2)
    assert [c.metadata.name for c in first.items] == ["page-0", "page-1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(
        "default", label_selector="page", limit=10, _continue=first.metadata._continue
    )
    assert [c.metadata.name for c in rest.items] == ["page-2", "page-3", "page-4"]
    patched = core.patch_namespaced_config_map(
        "page-0",
        "default",
        [{"op": "add", "path": "/data", "value": {"a": "b"}}],
    )
    assert patched.data == {"a": "b"}
    job = pytorchjob("patchme", ["true"], workers=0, suspend=True)
    custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", job)
    out = custom.patch_namespaced_custom_object(
        *KF, "default", "pytorchjobs", "patchme", {"metadata": {"labels": {"x": "y"}}}
    )
    assert out["metadata"]["labels"] == {"x": "y"}
    assert out["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            *KF,
            "default",
            "pytorchjobs",
            "patchme",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert exc.value.status == 415
    assert status_of(exc.value)["reason"] == "UnsupportedMediaType"


def test_schema_and_webhook_validation(shared_kube: SimpleNamespace) -> None:
    custom = shared_kube.custom
    job = pytorchjob("valid-name", ["true"])
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] = "two"
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", job)
    assert exc.value.status == 422
    body = status_of(exc.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'PyTorchJob.kubeflow.org "valid-name" is invalid: spec.pytorchReplicaSpecs.Worker.'
        'replicas: Invalid value: "string": spec.pytorchReplicaSpecs.Worker.replicas in body '
        'must be of type integer: "string"'
    )
    assert body["details"]["causes"][0]["field"] == "spec.pytorchReplicaSpecs.Worker.replicas"

    typo = pytorchjob("typo", ["true"])
    typo["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["comand"] = [
        "x"
    ]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", typo)
    assert exc.value.status == 400
    assert status_of(exc.value)["message"] == (
        'PyTorchJob in version "v1" cannot be handled as a PyTorchJob: strict decoding error: '
        'unknown field "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].comand"'
    )

    bad = pytorchjob("1-bad", ["true"])
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 2
    bad["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] = (
        "main"
    )
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*KF, "default", "pytorchjobs", bad)
    assert exc.value.status == 403
    message = status_of(exc.value)["message"]
    assert message.startswith(
        'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the '
        'request: [metadata.name: Invalid value: "1-bad": should match: a DNS-1035 label'
    )
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in message
    assert (
        "spec.pytorchReplicaSpecs[Worker].template.spec.containers: Required value: must have "
        "at least one container with name pytorch" in message
    )

    tf = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": "two-chiefs"},
        "spec": {
            "tfReplicaSpecs": {
                t: {"template": {"spec": {"containers": [{"name": "tensorflow", "image": "i"}]}}}
                for t in ("Chief", "Master")
            }
        },
    }
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(*KF, "default", "tfjobs", tf)
    assert status_of(exc.value)["message"] == (
        'admission webhook "validator.tfjob.training-operator.kubeflow.org" denied the request: '
        "spec.tfReplicaSpecs: Forbidden: must not have more than 1 Chief or Master role"
    )


def test_dry_run_and_schema_defaults(shared_kube: SimpleNamespace) -> None:
    job = pytorchjob("dry", ["true"])
    out = shared_kube.custom.create_namespaced_custom_object(
        *KF, "default", "pytorchjobs", job, dry_run="All"
    )
    assert out["spec"]["runPolicy"]["suspend"] is False  # schema default applied
    with pytest.raises(ApiException):
        shared_kube.custom.get_namespaced_custom_object(*KF, "default", "pytorchjobs", "dry")


def test_discovery(shared_kube: SimpleNamespace) -> None:
    groups = kubernetes.client.ApisApi(shared_kube.api).get_api_versions()
    assert "kubeflow.org" in [g.name for g in groups.groups]
    resources = kubernetes.client.CustomObjectsApi(shared_kube.api).get_api_resources(*KF)
    assert {"pytorchjobs", "tfjobs", "pytorchjobs/status"} <= {r.name for r in resources.resources}
    assert kubernetes.client.VersionApi(shared_kube.api).get_code().git_version.startswith("v1.")


def test_status_subresource_and_unconditional_custom_update(shared_kube: SimpleNamespace) -> None:
    custom = shared_kube.custom
    job = pytorchjob("sub", ["true"], workers=0, suspend=True)
    made = custom.create_namespaced_custom_object(*KF, "team", "pytorchjobs", job)
    ignored = custom.patch_namespaced_custom_object(
        *KF, "team", "pytorchjobs", "sub", {"status": {"startTime": "2020-01-01T00:00:00Z"}}
    )
    assert ignored.get("status", {}).get("startTime") != "2020-01-01T00:00:00Z"
    status = custom.patch_namespaced_custom_object_status(
        *KF, "team", "pytorchjobs", "sub", {"status": {"completionTime": "2020-01-01T00:00:00Z"}}
    )
    assert status["status"]["completionTime"] == "2020-01-01T00:00:00Z"
    body = {**made, "metadata": {"name": "sub"}}
    with pytest.raises(ApiException) as exc:
        custom.replace_namespaced_custom_object(*KF, "team", "pytorchjobs", "sub", body)
    assert status_of(exc.value)["message"] == (
        'PyTorchJob.kubeflow.org "sub" is invalid: metadata.resourceVersion: Invalid value: '
        "0x0: must be specified for an update"
    )


def test_namespace_deletion_and_deletecollection(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    core = kube.core
    core.create_namespace({"metadata": {"name": "scratch"}})
    for i in range(3):
        core.create_namespaced_config_map("scratch", {"metadata": {"name": f"c{i}"}})
        big = {"requests": {"cpu": "64"}}  # stays Pending: no process to wait for
        core.create_namespaced_pod(
            "scratch",
            {
                "metadata": {"name": f"p{i}", "labels": {"i": str(i)}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "resources": big}]},
            },
        )
    core.delete_collection_namespaced_pod("scratch", label_selector="i in (0,1)")
    assert [p.metadata.name for p in core.list_namespaced_pod("scratch").items] == ["p2"]
    answer = core.delete_namespace("scratch")  # the Namespace, not a Status: a raw dict here
    assert answer["status"]["phase"] == "Terminating"
    cluster.wait_for(lambda: cluster.get("namespaces", None, "scratch") is None, 10)
    assert cluster.list("configmaps", "scratch") == []
    assert cluster.list("pods", "scratch") == []


def test_secrets_claims_accounts_and_priority_classes_are_served(
    shared_cluster: FakeCluster, shared_kube: SimpleNamespace
) -> None:
    core = {r.name: r for r in shared_kube.core.get_api_resources().resources}
    assert {"secrets", "serviceaccounts", "persistentvolumeclaims"} <= set(core)
    assert "persistentvolumeclaims/status" in core and core["secrets"].namespaced
    assert core["serviceaccounts"].short_names == ["sa"]
    groups = kubernetes.client.ApisApi(shared_kube.api).get_api_versions().groups
    assert "scheduling.k8s.io" in [g.name for g in groups]
    scheduling = kubernetes.client.SchedulingV1Api(shared_kube.api)
    classes = {r.name: r for r in scheduling.get_api_resources().resources}
    assert not classes["priorityclasses"].namespaced

    listed = shared_kube.core.list_namespaced_secret("team")
    watch = kubernetes.watch.Watch()
    shared_kube.core.create_namespaced_secret(
        "team", {"metadata": {"name": "watched"}, "stringData": {"k": "v"}}
    )
    for event in watch.stream(
        shared_kube.core.list_namespaced_secret,
        "team",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    ):
        assert (event["type"], event["object"].metadata.name) == ("ADDED", "watched")
        assert event["object"].data == {"k": "dg=="}
        watch.stop()

    rule = shared_cluster.deny("get", "secrets")
    try:
        with pytest.raises(ApiException) as exc:
            shared_kube.core.read_namespaced_secret("watched", "team")
        assert status_of(exc.value)["message"] == (
            'secrets "watched" is forbidden: User "system:serviceaccount:default:ciao" cannot '
            'get resource "secrets" in API group "" in the namespace "team"'
        )
    finally:
        shared_cluster.allow(rule)
    assert ("get", "", "secrets", True) in shared_cluster.authorizer.calls
