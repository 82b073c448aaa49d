"""Watches: resume from a resourceVersion, selectors, bookmarks, 410 Expired."""

from __future__ import annotations

import json
from types import SimpleNamespace

import kubernetes
import pytest
from fakecluster import FakeCluster
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(60)


def collect(func, *args, until: str = "", **kwargs) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of every event before the ADDED of `until` (default:
    the ConfigMap `end`, which a test makes after everything it watches: a watch sends
    events in the order they happened, so none of those can come after it)."""
    until = until or END
    w = kubernetes.watch.Watch()
    out = []
    for ev in w.stream(func, *args, timeout_seconds=30, **kwargs):
        meta = ev["raw_object"]["metadata"]
        if (ev["type"], meta.get("name")) == ("ADDED", until):
            w.stop()
            return out
        out.append((ev["type"], meta.get("name", ""), meta["resourceVersion"]))
    raise AssertionError(f"the watch ended without ADDED {until}: {out}")


#: The name of the object a test makes last, whose ADDED ends `collect`.
END = "end"


def end(core, labels: dict[str, str] | None = None) -> None:
    """The last change a test makes: the ConfigMap `end` (with `labels`, to pass the
    watch's selector)."""
    core.create_namespaced_config_map("default", {"metadata": {"name": END, "labels": labels}})


def test_resume_from_a_resource_version_misses_and_repeats_nothing(
    kube: SimpleNamespace,
) -> None:
    core = kube.core
    start = core.list_namespaced_config_map("default").metadata.resource_version
    cm = {"metadata": {"name": "w1", "labels": {"w": "yes"}}}
    core.create_namespaced_config_map("default", cm)
    core.patch_namespaced_config_map("w1", "default", {"data": {"a": "1"}})
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "w2", "labels": cm["metadata"]["labels"]}}
    )
    core.delete_namespaced_config_map("w1", "default")
    end(core, {"w": "yes"})
    events = collect(
        core.list_namespaced_config_map, "default", resource_version=start, label_selector="w"
    )
    assert [(t, n) for t, n, _ in events] == [
        ("ADDED", "w1"),
        ("MODIFIED", "w1"),
        ("ADDED", "w2"),
        ("DELETED", "w1"),
    ]
    versions = [int(rv) for _, _, rv in events]
    assert versions == sorted(set(versions)) and versions[0] > int(start)
    resumed = collect(
        core.list_namespaced_config_map,
        "default",
        resource_version=events[1][2],
        label_selector="w",
    )
    assert resumed == events[2:]


def test_watch_without_resource_version_starts_with_the_current_state(
    kube: SimpleNamespace,
) -> None:
    kube.core.create_namespaced_config_map("default", {"metadata": {"name": "here"}})
    collect(kube.core.list_namespaced_config_map, "default", until="here")  # it comes ADDED


def test_objects_leaving_and_entering_a_selector(kube: SimpleNamespace) -> None:
    core = kube.core
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "s", "labels": {"t": "a"}}})
    core.patch_namespaced_config_map("s", "default", {"metadata": {"labels": {"t": "b"}}})
    core.patch_namespaced_config_map("s", "default", {"metadata": {"labels": {"t": "a"}}})
    end(core, {"t": "a"})
    events = collect(
        core.list_namespaced_config_map, "default", resource_version=start, label_selector="t=a"
    )
    assert [t for t, _, _ in events] == ["ADDED", "DELETED", "ADDED"]


def test_custom_objects_are_watched_too(kube: SimpleNamespace) -> None:
    from fakecluster.jobs import pytorchjob

    start = kube.custom.list_namespaced_custom_object(
        "kubeflow.org", "v1", "default", "pytorchjobs"
    )["metadata"]["resourceVersion"]
    job = pytorchjob("watched", ["true"], workers=0, suspend=True)
    kube.custom.create_namespaced_custom_object("kubeflow.org", "v1", "default", "pytorchjobs", job)
    kube.custom.create_namespaced_custom_object(
        "kubeflow.org",
        "v1",
        "default",
        "pytorchjobs",
        pytorchjob(END, ["true"], workers=0, suspend=True),
    )
    events = collect(
        kube.custom.list_namespaced_custom_object,
        "kubeflow.org",
        "v1",
        "default",
        "pytorchjobs",
        resource_version=start,
    )
    assert events[0][:2] == ("ADDED", "watched")
    assert {t for t, _, _ in events[1:]} <= {"MODIFIED"}  # the operator's status updates


def test_bookmarks_when_asked() -> None:
    with FakeCluster(bookmark_interval=0.2) as cluster:
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        w = kubernetes.watch.Watch()
        types = []
        for ev in w.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=30,
        ):
            types.append(ev["type"])
            if ev["type"] == "BOOKMARK":
                w.stop()
        assert types == ["BOOKMARK"]  # nothing changed: a bookmark, every 0.2 s
        assert w.resource_version == rv
        api.close()


def test_an_expired_resource_version_gets_410(cluster: FakeCluster, kube: SimpleNamespace) -> None:
    core = kube.core
    old = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
    now = cluster.compact()
    resp = core.list_namespaced_config_map(
        "default", watch=True, resource_version=old, _preload_content=False
    )
    lines = [json.loads(line) for line in resp.read().decode().splitlines()]
    assert resp.status == 200
    assert lines == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({now})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]
    with pytest.raises(ApiException) as exc:
        collect(core.list_namespaced_config_map, "default", resource_version=old)
    assert exc.value.status == 410
    end(core)
    assert collect(core.list_namespaced_config_map, "default", resource_version=str(now)) == []


def test_the_history_window_is_bounded() -> None:
    with FakeCluster(history_size=5) as cluster:
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        old = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(8):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        with pytest.raises(ApiException) as exc:
            collect(core.list_namespaced_config_map, "default", resource_version=old)
        assert exc.value.status == 410
        assert "too old resource version" in exc.value.reason
        api.close()
