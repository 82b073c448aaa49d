"""List, then watch from the list's resourceVersion; resume after a dropped stream, relist
after a 410. Handlers see each object's latest state once per resourceVersion, so a resumed
or relisted watch neither misses nor repeats a change.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster, StreamWorker, lines

log = logging.getLogger("ciao.kubernetes")

#: (event type, object): ADDED / MODIFIED / DELETED.
Handler = Callable[[str, dict[str, Any]], None]


class Informer(StreamWorker):
    """Keeps a set of objects (one path + selectors) in sync, calling `handler` on changes."""

    def __init__(
        self,
        cluster: Cluster,
        path: str,
        handler: Handler,
        label_selector: str | None = None,
        field_selector: str | None = None,
        on_error: Callable[[ApiError], None] | None = None,
        watch_timeout: int = 60,
    ) -> None:
        self.cluster = cluster
        self.path = path
        self.handler = handler
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_error = on_error
        self.watch_timeout = watch_timeout
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}  # uid -> (rv, object)
        self._deleted: set[str] = set()
        self._lock = threading.Lock()  # guards _seen and _deleted
        super().__init__(f"ciao-watch {path}")

    def _query(self) -> dict[str, Any]:
        return {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}

    def _run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._relist()
                version = self._watch(version)
                failures = 0
            except _Expired:
                log.info("watch of %s expired; listing again", self.path)
                version = None
            except ApiError as exc:
                failures += 1
                if exc.status in (401, 403, 404) or failures > 5:
                    if self.on_error:
                        self.on_error(exc)
                    return
                log.info("watch of %s failed (%s); retrying", self.path, exc)
                self._stop.wait(min(0.2 * 2**failures, 5))
            except Exception as exc:  # a dropped connection: resume from `version`
                if self._stop.is_set():
                    return
                failures += 1
                log.info("watch of %s dropped (%s); resuming at %s", self.path, exc, version)
                self._stop.wait(min(0.05 * 2**failures, 2))

    def _relist(self) -> str:
        answer = self.cluster.request("GET", self.path, self._query())
        items = answer.get("items") or []
        present = set()
        for item in items:
            present.add(_uid(item))
            self._deliver("ADDED", item)
        with self._lock:
            gone = [obj for uid, (_, obj) in self._seen.items() if uid not in present]
        for obj in gone:
            self._deliver("DELETED", obj)
        return str((answer.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> str:
        query = {
            **self._query(),
            "watch": True,
            "resourceVersion": version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": self.watch_timeout,
        }
        response = self.cluster.stream(self.path, query, timeout=(10, self.watch_timeout + 30))
        with self._streaming(response):
            for raw in lines(response):
                if not raw.endswith(b"\n"):
                    break  # cut mid-event: resume from the last whole one
                event = json.loads(raw)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise ApiError(obj.get("message", "watch error"), obj.get("code") or 500)
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    self._deliver(kind, obj)
        return version

    def _deliver(self, kind: str, obj: dict[str, Any]) -> None:
        uid = _uid(obj)
        rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            previous = self._seen.get(uid)
            if kind == "DELETED":
                if previous is None and uid in self._deleted:
                    return
                self._seen.pop(uid, None)
                self._deleted.add(uid)
            else:
                if previous is not None and previous[0] == rv:
                    return  # already seen this version (a relist after a resume)
                self._seen[uid] = (rv, obj)
                kind = "MODIFIED" if previous is not None else "ADDED"
        try:
            self.handler(kind, obj)
        except Exception:
            log.exception("handling %s of %s failed", kind, self.path)


class _Expired(Exception):
    pass


def _uid(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
