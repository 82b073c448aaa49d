"""Reaching the cluster through the official `kubernetes` client, and explaining its errors.

The client loads the kubeconfig (or the in-cluster service account), authenticates and
speaks TLS; requests go through its ApiClient as plain paths and dicts, because following
a job needs what its typed methods lack (`sinceTime` on logs, watch streams that another
thread can close).
"""

from __future__ import annotations

import abc
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ciao.config import Config
from ciao.errors import BackendError, ConfigError

log = logging.getLogger("ciao.kubernetes")

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ApiError(BackendError):
    """A Kubernetes API call failed; `status` and `body` are the server's answer."""

    def __init__(self, message: str, status: int = 0, reason: str = "", body: Any = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


@dataclass
class Cluster:
    """An authenticated client, the namespace to use, and where the API server is."""

    api_client: Any
    namespace: str
    server: str

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float | None] = 30,
    ) -> Any:
        """One call; the decoded JSON answer (or text). Raises ApiError with the status."""
        response = self._call(method, path, query, body, content_type, timeout)
        data = response.read()
        response.release_conn()
        text = data.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def stream(
        self,
        path: str,
        query: dict[str, Any],
        timeout: float | tuple[float, float | None] = (10, 120),
    ) -> Any:
        """A GET whose body is read as it comes (watch, log follow); the urllib3 response."""
        return self._call("GET", path, query, None, "application/json", timeout)

    def _call(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float | None],
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json, */*"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            method, url, headers, body, post = self.api_client.param_serialize(
                method=method,
                resource_path=path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            rest = self.api_client.call_api(method, url, headers, body, post, timeout)
        except ApiException as exc:
            raise ApiError(str(exc), exc.status or 0, exc.reason or "", exc.body) from None
        except Exception as exc:  # urllib3: refused, DNS, TLS, timeouts
            reason = _root(exc)
            raise ApiError(f"cannot reach the Kubernetes API at {self.server}: {reason}") from None
        response = rest.response
        if response.status >= 400:
            data = response.read().decode("utf-8", "replace")
            response.release_conn()
            try:
                body_json: Any = json.loads(data)
            except ValueError:
                body_json = data
            message = body_json.get("message", "") if isinstance(body_json, dict) else data
            reason = body_json.get("reason", "") if isinstance(body_json, dict) else ""
            raise ApiError(
                message.strip() or str(response.status), response.status, reason, body_json
            )
        return response


def lines(response: Any, chunk_size: int = 65536) -> Iterator[bytes]:
    """The complete lines of a streaming response, each with its b"\\n"; then the rest
    without one (a line cut short when the stream ended).

    Linear in the bytes read: an open line is kept as the chunks it spans and joined once,
    never re-copied per chunk. A line is held whole (a watch event must be), so a reader of
    lines that may be huge (container logs) reads the chunks itself.
    """
    parts: list[bytes] = []  # the open line, as the chunks it spans so far
    for chunk in response.stream(chunk_size, decode_content=True):
        start = 0
        end = chunk.find(b"\n")
        while end >= 0:
            if parts:
                parts.append(chunk[start : end + 1])
                yield b"".join(parts)
                parts = []
            else:
                yield chunk[start : end + 1]
            start = end + 1
            end = chunk.find(b"\n", start)
        if start < len(chunk):
            parts.append(chunk[start:] if start else chunk)
    if parts:
        yield b"".join(parts)


def close(response: Any) -> None:
    """Unblock a thread reading `response` (another thread may be inside `read`)."""
    try:
        shutdown = getattr(response, "shutdown", None)
        if shutdown is not None:
            shutdown()
        response.close()
    except Exception:  # closing twice, or a socket already gone
        log.debug("closing a stream failed", exc_info=True)


_Worker = TypeVar("_Worker", bound="StreamWorker")


class StreamWorker(abc.ABC):
    """A daemon thread that reads HTTP streams which `stop()` from another thread can cut:
    a thread blocked on an open watch or log stream must not outlive an interrupt."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._stream_lock = threading.Lock()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @abc.abstractmethod
    def _run(self) -> None:
        """The thread's work."""

    def start(self: _Worker) -> _Worker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._stream_lock:
            if self._response is not None:
                close(self._response)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @contextmanager
    def _streaming(self, response: Any) -> Iterator[Any]:
        """Read `response` where stop() can reach it; it is closed afterwards, always."""
        with self._stream_lock:
            self._response = response
        if self._stop.is_set():
            close(response)
        try:
            yield response
        finally:
            with self._stream_lock:
                self._response = None
            close(response)


def connect(config: Config) -> Cluster:
    """The cluster the config (or $KUBECONFIG, ~/.kube/config, the service account) names."""
    import yaml
    from kubernetes import client
    from kubernetes.config import ConfigException, load_incluster_config, load_kube_config

    configuration = client.Configuration()
    kubeconfig = _kubeconfig_path(config)
    try:
        if kubeconfig is not None:
            load_kube_config(
                config_file=str(kubeconfig),
                context=config.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
            namespace = config.namespace or _context_namespace(kubeconfig, config.context)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            load_incluster_config(client_configuration=configuration)
            namespace = config.namespace or _in_cluster_namespace()
        else:
            raise ConfigError(
                "no Kubernetes cluster is configured: no kubeconfig (config key kubeconfig, "
                "$KUBECONFIG, ~/.kube/config) and not running inside a cluster; "
                "set `backend: local` to run jobs on this machine"
            )
    except ConfigException as exc:
        source = kubeconfig or "the in-cluster service account"
        raise ConfigError(f"cannot use {source}: {exc}") from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # not YAML, unreadable files
        raise ConfigError(f"kubeconfig {kubeconfig} does not parse: {exc}") from None
    configuration.retries = 1  # fail fast: the cell says why instead of hanging
    return Cluster(client.ApiClient(configuration), namespace or "default", configuration.host)


def _kubeconfig_path(config: Config) -> Path | None:
    if config.kubeconfig:
        path = Path(config.kubeconfig).expanduser()
        if not path.is_file():
            raise ConfigError(f"kubeconfig {path} (config key kubeconfig) does not exist")
        return path
    env = os.environ.get("KUBECONFIG", "")
    for candidate in [p for p in env.split(os.pathsep) if p] + ["~/.kube/config"]:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def _context_namespace(kubeconfig: Path, context: str) -> str:
    from kubernetes.config import list_kube_config_contexts

    contexts, active = list_kube_config_contexts(config_file=str(kubeconfig))
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace", ""))


def _in_cluster_namespace() -> str:
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    except OSError:
        return ""


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _root(exc: BaseException) -> str:
    """The innermost reason of a urllib3 error ("Connection refused", not a retry summary)."""
    reason: object = getattr(exc, "reason", None)
    while isinstance(reason, BaseException):
        inner = getattr(reason, "reason", None)
        if inner is None:
            break
        reason = inner
    text = str(reason or exc)
    if "Connection refused" in text:
        return "connection refused"
    return text
