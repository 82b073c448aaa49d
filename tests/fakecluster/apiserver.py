"""The HTTP front: routing, authentication, authorisation, JSON, watch and log streams.

Speaks HTTP/1.1 with keep-alive like the real server; watches and followed logs are
chunked responses that end cleanly (terminating chunk) or, for injected faults, abruptly.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from . import errors as E
from .authz import Authorizer
from .faults import Faults
from .logs import ContainerLog, stream_log
from .openapi import document as openapi_document
from .openapi import index as openapi_index
from .registry import Registry
from .resources import BUILTIN, CORE, ResourceInfo
from .selectors import compile_selectors
from .store import Expired, Obj, WatchEvent
from .timeutil import now_ns, parse_rfc3339

VERSION_INFO = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-fakecluster",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class LogSource(Protocol):
    """The kubelet side of `pods/log`: which container instance a request reads."""

    def container_log(self, pod: Obj, container: str, previous: bool) -> ContainerLog: ...


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _int(query: dict[str, str], key: str) -> int | None:
    if key not in query or query[key] == "":
        return None
    try:
        return int(query[key])
    except ValueError as exc:
        raise E.bad_request(f'invalid value for {key}: "{query[key]}"') from exc


class WatchStream:
    """One open watch; `drop` ends it after some more events (an injected fault)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.drop_after: int | None = None
        self.abrupt = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    api: ApiServer

    def __init__(self, address: tuple[str, int], api: ApiServer) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class Handler(BaseHTTPRequestHandler):
    """Per-connection request loop; all the work is in ApiServer."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self.headers_sent = False
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            self.server.api.handle(self, method, body)
        except E.StatusError as err:
            if not self.headers_sent:
                self.send_json(err.code, err.body(), err.headers)
        except E.PageNotFound:
            self.send_bytes(404, b"404 page not found\n", "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: show it to the test, like a 500
            traceback.print_exc()
            if not self.headers_sent:
                internal = E.internal(f"{type(exc).__name__}: {exc}")
                self.send_json(500, internal.body())

    # -- response helpers ---------------------------------------------------------------
    def send_bytes(
        self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.headers_sent = True
        self.wfile.write(data)

    def send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(
            code, json.dumps(obj, separators=(",", ":")).encode(), "application/json", headers
        )

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.headers_sent = True

    def write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection mid-body, as a failing proxy or node would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class ApiServer:
    """Routes requests to the registry; owns the open watch streams."""

    def __init__(
        self,
        registry: Registry,
        authorizer: Authorizer,
        faults: Faults,
        logs: LogSource,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.authorizer = authorizer
        self.faults = faults
        self.logs = logs
        self.bookmark_interval = bookmark_interval
        self.stopping = threading.Event()
        self._streams: set[WatchStream] = set()
        self._streams_lock = threading.Lock()
        self._httpd = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str)  # an AF_INET server's address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-apiserver"
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.store.changed:
            self.store.changed.notify_all()
        self._httpd.shutdown()
        if self._thread is not None:
            self._thread.join()
        with self._httpd.conn_lock:
            conns = list(self._httpd.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def drop_watches(self, after_events: int = 0, abrupt: bool = False) -> int:
        """Close every open watch now (or after N more events each); returns how many."""
        with self._streams_lock:
            streams = list(self._streams)
        for s in streams:
            s.abrupt = abrupt
            s.drop_after = after_events
        with self.store.changed:
            self.store.changed.notify_all()
        return len(streams)

    def open_watches(self) -> int:
        with self._streams_lock:
            return len(self._streams)

    # -- routing ------------------------------------------------------------------------
    def handle(self, h: Handler, method: str, body: bytes) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [s for s in parts.path.split("/") if s]
        self.authorizer.authenticate(h.headers.get("Authorization"))
        if self._discovery(h, method, segments):
            return
        if segments[:1] == ["api"] and len(segments) >= 2:
            group, version, rest = "", segments[1], segments[2:]
            if version != "v1":
                raise E.PageNotFound()
        elif segments[:1] == ["apis"] and len(segments) >= 3:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise E.PageNotFound()
        watch_prefix = bool(rest) and rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise E.PageNotFound()
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        watch = watch_prefix or _truthy(query.get("watch"))
        verb = {
            "GET": ("watch" if watch else "list") if not name else "get",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        resource = f"{plural}/{sub}" if sub else plural
        self.authorizer.check(verb, group, resource, namespace, name)
        if verb in ("create", "update", "patch"):
            self._check_blocking_owners(body, namespace)
        info = self.registry.resource(group, version, plural)
        if info is None:
            raise E.PageNotFound()
        if not info.namespaced and namespace is not None:
            raise E.PageNotFound()
        if info.namespaced and name and namespace is None:
            raise E.PageNotFound()
        if sub and sub not in info.subresources:
            raise E.PageNotFound()
        if sub == "log" and method != "GET":
            raise E.method_not_allowed()
        if verb in ("watch", "list", "deletecollection"):
            info.allow(verb)
        if method == "POST" and name:
            raise E.method_not_allowed()
        self._serve(h, method, verb, info, namespace, name, sub, query, body)

    def _check_blocking_owners(self, body: bytes, namespace: str | None) -> None:
        """The OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift and many
        hardened clusters): an ownerReference with blockOwnerDeletion needs `update` on the
        owner's `finalizers` subresource."""
        try:
            obj = json.loads(body or b"{}")
        except ValueError:
            return  # the handler answers the bad body
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
        for ref in refs if isinstance(refs, list) else []:
            if not isinstance(ref, dict) or ref.get("blockOwnerDeletion") is not True:
                continue
            owner = self.registry.by_kind(str(ref.get("apiVersion")), str(ref.get("kind")))
            if owner is not None:
                scope = namespace if owner.namespaced else None
                name = str(ref.get("name", ""))
                self.authorizer.check(
                    "update", owner.group, f"{owner.plural}/finalizers", scope, name
                )

    def _serve(
        self,
        h: Handler,
        method: str,
        verb: str,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        sub: str,
        query: dict[str, str],
        body: bytes,
    ) -> None:
        reg = self.registry
        field_validation = query.get("fieldValidation") or None
        dry_run = query.get("dryRun") == "All"
        if query.get("dryRun") not in (None, "All"):
            raise E.bad_request(f'unsupported dry run directive "{query["dryRun"]}"')
        if verb == "watch":
            self._watch(h, info, namespace, query)
        elif verb == "list":
            h.send_json(
                200,
                reg.list(
                    info,
                    namespace,
                    query.get("labelSelector"),
                    query.get("fieldSelector"),
                    _int(query, "limit"),
                    query.get("continue") or None,
                ),
            )
        elif verb == "get" and sub == "log":
            self._log(h, reg.get(info, namespace, name), query)
        elif verb == "get":
            h.send_json(200, reg.get(info, namespace, name))
        elif verb == "create":
            obj, warnings = reg.create(info, namespace, self._json(body), field_validation, dry_run)
            h.send_json(201, obj, self._warnings(warnings))
        elif verb == "update":
            obj, warnings = reg.update(
                info, namespace, name, self._json(body), sub or None, field_validation, dry_run
            )
            h.send_json(200, obj, self._warnings(warnings))
        elif verb == "patch":
            obj, warnings = reg.patch(
                info,
                namespace,
                name,
                h.headers.get("Content-Type") or "",
                body,
                sub or None,
                field_validation,
                dry_run,
            )
            h.send_json(200, obj, self._warnings(warnings))
        elif verb in ("delete", "deletecollection"):
            opts = self._delete_options(body, query)
            propagation, grace = opts.get("propagationPolicy"), opts.get("gracePeriodSeconds")
            if verb == "delete":
                dry = dry_run or opts.get("dryRun") == ["All"]
                out = reg.delete(
                    info, namespace, name, propagation, grace, opts.get("preconditions"), dry
                )
            else:
                selectors = query.get("labelSelector"), query.get("fieldSelector")
                out = reg.delete_collection(info, namespace, *selectors, propagation, grace)
            h.send_json(200, out)
        else:
            raise E.method_not_allowed()

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise E.bad_request(
                f"the object provided is unrecognized (must be of type Object): {exc}"
            ) from exc

    @staticmethod
    def _warnings(warnings: list[str]) -> dict[str, str]:
        if not warnings:
            return {}
        return {"Warning": ", ".join(f"299 - {json.dumps(w)}" for w in warnings)}

    def _delete_options(self, body: bytes, query: dict[str, str]) -> dict[str, Any]:
        opts = self._json(body) if body.strip() else {}
        if not isinstance(opts, dict):
            raise E.bad_request("DeleteOptions must be an object")
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if "gracePeriodSeconds" in query:
            opts["gracePeriodSeconds"] = _int(query, "gracePeriodSeconds")
        if opts.get("orphanDependents") is True and not opts.get("propagationPolicy"):
            opts["propagationPolicy"] = "Orphan"
        return opts

    # -- discovery ----------------------------------------------------------------------
    def _discovery(self, h: Handler, method: str, segments: list[str]) -> bool:
        if method != "GET":
            return False
        if segments == ["version"]:
            h.send_json(200, VERSION_INFO)
        elif segments == ["api"]:
            h.send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": self.url[len("http://") :]}
                    ],
                },
            )
        elif segments[:2] == ["openapi", "v3"]:
            # OpenAPI v3 discovery: the index, or one group version's document
            doc = (
                openapi_index(self.registry)
                if len(segments) == 2
                else openapi_document(self.registry, "/".join(segments[2:]))
            )
            if doc is None:
                raise E.PageNotFound()
            h.send_json(200, doc)
        elif segments == ["api", "v1"]:
            h.send_json(200, self._resource_list("v1", list(CORE.values())))
        elif segments == ["apis"]:
            groups: dict[str, list[str]] = {}
            for gv in BUILTIN:
                groups.setdefault(gv.split("/")[0], []).append(gv.split("/")[1])
            for info in self.registry.custom_resources():
                groups.setdefault(info.group, [])
                if info.version not in groups[info.group]:
                    groups[info.group].append(info.version)
            h.send_json(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                        }
                        for g, vs in groups.items()
                    ],
                },
            )
        elif len(segments) == 2 and segments[0] == "apis":
            versions = [
                i.version
                for i in [*self.registry.custom_resources(), *sum(BUILTIN.values(), [])]
                if i.group == segments[1]
            ]
            if not versions:
                raise E.PageNotFound()
            gvs = [
                {"groupVersion": f"{segments[1]}/{v}", "version": v}
                for v in dict.fromkeys(versions)
            ]
            h.send_json(
                200,
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": segments[1],
                    "versions": gvs,
                    "preferredVersion": gvs[0],
                },
            )
        elif len(segments) == 3 and segments[0] == "apis":
            gv = f"{segments[1]}/{segments[2]}"
            infos = [i for i in self.registry.custom_resources() if i.api_version == gv]
            if gv in BUILTIN:
                infos = list(BUILTIN[gv])
            if not infos:
                raise E.PageNotFound()
            h.send_json(200, self._resource_list(gv, infos))
        else:
            return False
        return True

    @staticmethod
    def _resource_list(group_version: str, infos: list[ResourceInfo]) -> Obj:
        resources = []
        for info in infos:
            resources.append(
                {
                    "name": info.plural,
                    "singularName": info.kind.lower(),
                    "namespaced": info.namespaced,
                    "kind": info.kind,
                    "verbs": sorted(info.verbs),
                    **({"shortNames": list(info.short_names)} if info.short_names else {}),
                }
            )
            for sub in sorted(info.subresources):
                verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
                resources.append(
                    {
                        "name": f"{info.plural}/{sub}",
                        "singularName": "",
                        "namespaced": info.namespaced,
                        "kind": info.kind,
                        "verbs": verbs,
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    # -- watch --------------------------------------------------------------------------
    def _watch(self, h: Handler, info: ResourceInfo, namespace: str | None, query: dict) -> None:
        predicate = compile_selectors(
            info.plural, query.get("labelSelector"), query.get("fieldSelector")
        )
        rv_text = query.get("resourceVersion") or ""
        timeout = _int(query, "timeoutSeconds")
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        send_initial = _truthy(query.get("sendInitialEvents"))
        if rv_text not in ("", "0"):
            try:
                start_rv = int(rv_text)
            except ValueError as exc:
                raise E.bad_request(f'invalid resource version: "{rv_text}"') from exc
        else:
            start_rv = None
        deadline = time.monotonic() + timeout if timeout else None
        stream = WatchStream(h)
        h.start_chunked("application/json")
        with self._streams_lock:
            self._streams.add(stream)
        try:
            self._run_watch(
                h,
                stream,
                info,
                namespace,
                predicate,
                start_rv,
                rv_text,
                deadline,
                bookmarks,
                send_initial,
            )
        finally:
            with self._streams_lock:
                self._streams.discard(stream)

    def _send_event(self, h: Handler, type_: str, obj: Obj) -> None:
        h.write_chunk(
            json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"
        )

    def _bookmark(self, info: ResourceInfo, rv: int, initial_end: bool = False) -> Obj:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}

    def _run_watch(
        self,
        h: Handler,
        stream: WatchStream,
        info: ResourceInfo,
        namespace: str | None,
        predicate: Any,
        start_rv: int | None,
        rv_text: str,
        deadline: float | None,
        bookmarks: bool,
        send_initial: bool,
    ) -> None:
        store = self.store
        if start_rv is not None and self.faults.take("watch_expire") is not None:
            oldest = max(store.oldest_available(), start_rv + 1)
            self._send_expired(h, start_rv, oldest)
            h.end_chunked()
            return
        if start_rv is None:
            items, last_rv = store.list(info.plural, namespace if info.namespaced else None)
            for item in items:
                if predicate(item):
                    self._send_event(h, "ADDED", item)
            if send_initial and bookmarks:
                self._send_event(h, "BOOKMARK", self._bookmark(info, last_rv, initial_end=True))
        else:
            last_rv = start_rv
        last_bookmark = time.monotonic()
        while True:
            if self.stopping.is_set():
                break
            if stream.drop_after is not None and stream.drop_after <= 0:
                if stream.abrupt:
                    h.abort()
                    return
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                if bookmarks:
                    self._send_event(h, "BOOKMARK", self._bookmark(info, last_rv))
                break
            if bookmarks and now - last_bookmark >= self.bookmark_interval:
                self._send_event(h, "BOOKMARK", self._bookmark(info, last_rv))
                last_bookmark = now
            try:
                with store.changed:
                    events = store.events_after(last_rv)
                    dropping = stream.drop_after is not None and stream.drop_after <= 0
                    if not events and not self.stopping.is_set() and not dropping:
                        wait = 0.25
                        if deadline is not None:
                            wait = min(wait, max(deadline - now, 0))
                        store.changed.wait(wait)
                        events = store.events_after(last_rv)
            except Expired as exc:
                self._send_expired(h, exc.requested, exc.oldest)
                break
            for ev in events:
                last_rv = ev.rv
                out = self._filter(ev, info, namespace, predicate)
                if out is None:
                    continue
                self._send_event(h, out, ev.obj)
                if stream.drop_after is not None:
                    stream.drop_after -= 1
                    if stream.drop_after <= 0:
                        break
        h.end_chunked()

    def _send_expired(self, h: Handler, requested: int, oldest: int) -> None:
        status = E.status_body(410, "Expired", f"too old resource version: {requested} ({oldest})")
        self._send_event(h, "ERROR", status)

    @staticmethod
    def _filter(
        ev: WatchEvent, info: ResourceInfo, namespace: str | None, predicate: Any
    ) -> str | None:
        """Which event a selector-filtered watcher sees (objects can enter or leave it)."""
        if ev.resource != info.plural:
            return None
        if info.namespaced and namespace and ev.namespace != namespace:
            return None
        new = predicate(ev.obj)
        old = ev.old is not None and predicate(ev.old)
        if ev.type == "ADDED":
            return "ADDED" if new else None
        if ev.type == "DELETED":
            return "DELETED" if (new or old) else None
        if new and old:
            return "MODIFIED"
        if new:
            return "ADDED"
        return "DELETED" if old else None

    # -- logs ---------------------------------------------------------------------------
    def _log(self, h: Handler, pod: Obj, query: dict[str, str]) -> None:
        container = self._log_container(pod, query.get("container") or "")
        follow = _truthy(query.get("follow"))
        previous = _truthy(query.get("previous"))
        since_seconds = _int(query, "sinceSeconds")
        since_time = query.get("sinceTime") or None
        tail = _int(query, "tailLines")
        limit = _int(query, "limitBytes")
        stream_kind = query.get("stream") or "All"
        if since_seconds is not None and since_time is not None:
            raise E.StatusError(
                422,
                "Invalid",
                'PodLogOptions.meta.k8s.io "" is invalid: sinceSeconds: Forbidden: at most one of '
                "`sinceTime` or `sinceSeconds` may be specified",
            )
        if stream_kind not in ("All", "Stdout", "Stderr"):
            raise E.bad_request(f'stream: Unsupported value: "{stream_kind}"')
        since_ns = None
        if since_seconds is not None:
            since_ns = now_ns() - since_seconds * 1_000_000_000
        elif since_time is not None:
            try:
                since_ns = parse_rfc3339(since_time)
            except ValueError as exc:
                raise E.bad_request(f'invalid sinceTime: "{since_time}"') from exc
        if not (pod.get("spec") or {}).get("nodeName"):
            h.send_bytes(200, b"", "text/plain")  # no host yet: an empty log, not an error
            return
        log = self.logs.container_log(pod, container, previous)
        chunks = stream_log(
            log,
            follow=follow,
            timestamps=_truthy(query.get("timestamps")),
            since_ns=since_ns,
            tail_lines=tail,
            limit_bytes=limit,
            stream=stream_kind,
            stop=self.stopping,
        )
        if not follow:
            h.send_bytes(200, b"".join(chunks), "text/plain")
            return
        cut = self.faults.take("log_cut", pod, container)
        budget = int(cut.params["after_bytes"]) if cut is not None else None
        h.start_chunked("text/plain")
        for chunk in chunks:
            if budget is not None and len(chunk) >= budget:
                h.write_chunk(chunk[:budget])
                h.abort()
                return
            h.write_chunk(chunk)
            if budget is not None:
                budget -= len(chunk)
        if budget is not None:
            h.abort()
            return
        h.end_chunked()

    @staticmethod
    def _log_container(pod: Obj, container: str) -> str:
        """The apiserver's validateContainer: default to the only container, else insist."""
        spec = pod.get("spec") or {}
        init = [c["name"] for c in spec.get("initContainers") or []]
        main = [c["name"] for c in spec.get("containers") or []]
        name = pod["metadata"]["name"]
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            if default in main:
                return str(default)
            if len(main) == 1:
                return str(main[0])
            raise E.bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(main)}] or one of the init containers: [{' '.join(init)}]"
                if init
                else f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(main)}]"
            )
        if container not in main and container not in init:
            raise E.bad_request(f"container {container} is not valid for pod {name}")
        return container
