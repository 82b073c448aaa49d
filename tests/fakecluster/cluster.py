"""FakeCluster: the API server, operator, kubelet and garbage collector, wired together."""

from __future__ import annotations

import builtins
import copy
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .admission import system_priority_classes
from .apiserver import ApiServer
from .authz import Authorizer, DenyRule
from .controller import Controller
from .crds import JOBSET_CRD, RUNTIMES_RELEASE, TRAINER_RELEASES
from .errors import StatusError
from .faults import Fault, Faults
from .garbage import GarbageCollector
from .jobset import JobController, JobSetController, default_jobset, validate_jobset
from .katib import CRDS as KATIB_CRDS
from .katib import Katib
from .kubelet import Kubelet
from .kueue import Kueue
from .logs import LogBook, stream_log
from .nodes import parse_nodes
from .operator import training_operator
from .registry import Registry
from .resources import CORE
from .runtime import ContainerRuntime
from .storage import volume_name
from .store import Obj, Store
from .trainer import RELEASES, Trainer, TrainJobController, torch_runtime

T = TypeVar("T")
DEFAULT_USER = "system:serviceaccount:default:ciao"
KUBEFLOW_V1_CRDS = ("pytorchjobs.kubeflow.org", "tfjobs.kubeflow.org")
KUBEFLOW_V2_CRDS = (
    "trainjobs.trainer.kubeflow.org",
    "clustertrainingruntimes.trainer.kubeflow.org",
    "trainingruntimes.trainer.kubeflow.org",
    JOBSET_CRD,
)


class FakeCluster:
    """A Kubernetes API server with the Kubeflow training operator, on a loopback port.

    Use as a context manager, or call start()/stop(). See the package docstring.
    """

    def __init__(
        self,
        namespaces: Iterable[str] = ("default",),
        capacity: dict[str, Any] | None = None,
        strict_schemas: bool = True,
        *,
        crds_dir: Path | None = None,
        token: str | None = None,
        user: str = DEFAULT_USER,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        grace_cap: float = 2.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 1.6,
        operator: bool = True,
        kubeflow: Iterable[str] = ("v1",),
        trainer_release: str = "v2.3",
        runtimes: Iterable[Obj] | None = None,
        missing_runtime: str = "deny",
        torchrun: bool | None = None,
        image_users: dict[str, str] | None = None,
        pytorch_init_template: str | None = None,
        nodes: Iterable[dict[str, Any]] | None = None,
        private_images: dict[str, str] | None = None,
    ) -> None:
        self.kubeflow = tuple(kubeflow)
        unknown = set(self.kubeflow) - {"v1", "v2", "katib"}
        if unknown:
            raise ValueError(f"kubeflow: unknown API(s) {sorted(unknown)}; known: v1, v2, katib")
        if trainer_release not in RELEASES:
            raise ValueError(f"trainer_release must be one of {', '.join(RELEASES)}")
        self.trainer_release = trainer_release
        self._runtimes = [torch_runtime()] if runtimes is None else list(runtimes)
        self._torchrun = torchrun
        self._image_users = image_users
        self._pytorch_init_template = pytorch_init_template
        self.namespaces = tuple(namespaces)
        self.nodes = parse_nodes(nodes, capacity)
        self.capacity = self.nodes[0].capacity
        self._private_images = dict(private_images or {})
        self.strict_schemas = strict_schemas
        self.token = token or secrets.token_urlsafe(24)
        self.user = user
        self._crds_dir = crds_dir
        self._history_size = history_size
        self._bookmark_interval = bookmark_interval
        self._grace_cap = grace_cap
        self._backoff = (backoff_base, backoff_cap)
        self._with_operator = operator
        self._tmp: Path | None = None
        self._started = False
        self.store = Store(history_size)
        releases = ("kubeflow-v1", TRAINER_RELEASES[trainer_release], RUNTIMES_RELEASE)
        self.registry = Registry(self.store, crds_dir, strict_schemas, releases)
        self.registry.add_admission("jobsets", validate=validate_jobset, mutate=default_jobset)
        self.trainer = Trainer(self.registry, trainer_release, missing_runtime)
        #: Katib (its webhooks are admission hooks from the start), with kubeflow "katib".
        self.katib = Katib(self.registry) if "katib" in self.kubeflow else None
        self._installed = [
            *(KUBEFLOW_V1_CRDS if "v1" in self.kubeflow else ()),
            *(KUBEFLOW_V2_CRDS if "v2" in self.kubeflow else ()),
            *(KATIB_CRDS if self.katib is not None else ()),
        ]
        self.faults = Faults()
        self.authorizer = Authorizer(self.token, user)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeCluster:
        if self._started:
            return self
        self._tmp = Path(tempfile.mkdtemp(prefix="fakecluster-"))
        self.logbook = LogBook(self._tmp / "logs")
        self.runtime = ContainerRuntime(self._tmp / "runtime", self._torchrun)
        self.kubelet = Kubelet(
            self.registry,
            self.logbook,
            self.faults,
            self.runtime,
            self.nodes,
            grace_cap=self._grace_cap,
            backoff_base=self._backoff[0],
            backoff_cap=self._backoff[1],
            image_users=self._image_users,
            private_images=self._private_images,
        )
        self.gc = GarbageCollector(self.registry)
        self.controllers: list[Controller] = (
            [
                *training_operator(self.registry, self._pytorch_init_template),
                TrainJobController(self.registry, self.trainer),
                JobSetController(self.registry),
                JobController(self.registry),
                *(self.katib.controllers() if self.katib is not None else ()),
            ]
            if self._with_operator
            else []
        )
        if self.katib is not None:
            self.katib.attach(self.kubelet)
        self.apiserver = ApiServer(
            self.registry,
            self.authorizer,
            self.faults,
            self.kubelet,
            bookmark_interval=self._bookmark_interval,
        )
        for name in self._installed:
            self.registry.install_crd(name)
        for priority_class in system_priority_classes():  # the apiserver makes them at start
            self.registry.create(self.registry.by_plural("priorityclasses"), None, priority_class)
        for ns in self.namespaces:
            self.registry.create(CORE["namespaces"], None, {"metadata": {"name": ns}})
        if "v2" in self.kubeflow:
            for runtime in self._runtimes:
                self.create(
                    "trainingruntimes"
                    if runtime.get("kind") == "TrainingRuntime"
                    else ("clustertrainingruntimes"),
                    runtime,
                )
        for node in self.kubelet.node_objects():
            self.store.insert("nodes", node)
        self.kubelet.start()
        self.gc.start()
        for controller in self.controllers:
            controller.start()
        self.apiserver.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, kill every pod process, join every thread, remove temp files."""
        if not self._started:
            return
        self._started = False
        self.apiserver.stop()
        for controller in self.controllers:
            controller.stop()
        self.gc.stop()
        self.kubelet.stop()
        self.logbook.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client access ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.apiserver.url

    def write_kubeconfig(
        self, path: str | Path, namespace: str = "default", context: str = "fake"
    ) -> Path:
        """A kubeconfig `kubernetes.config.load_kube_config` loads: http server, bearer token."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for this cluster (no kubeconfig needed)."""
        import kubernetes.client

        conf = kubernetes.client.Configuration()
        conf.host = self.url
        conf.api_key = {"BearerToken": self.token}
        conf.api_key_prefix = {"BearerToken": "Bearer"}
        return kubernetes.client.ApiClient(conf)

    # -- store access for assertions ----------------------------------------------------
    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        info = self.registry.by_plural(resource)
        return self.store.get(resource, namespace if info.namespaced else None, name)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        info = self.registry.by_plural(resource)
        items: builtins.list[Obj] = self.registry.list(
            info, namespace, label_selector, field_selector
        )["items"]
        for item in items:
            item.setdefault("kind", info.kind)
            item.setdefault("apiVersion", info.api_version)
        return items

    def create(self, resource: str, obj: Obj, namespace: str | None = None) -> Obj:
        """Create through the same admission path as a client's POST."""
        info = self.registry.by_plural(resource)
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or "default"
        return self.registry.create(info, ns if info.namespaced else None, obj)[0]

    def label_namespace(self, name: str, labels: dict[str, str | None]) -> builtins.list[str]:
        """Set (None: remove) labels of a namespace through admission, as `kubectl label`
        does; the Warning texts of the answer (PodSecurity's about existing pods)."""
        info = CORE["namespaces"]
        while True:
            current = self.registry.store.get("namespaces", None, name)
            if current is None:
                raise info.not_found(name)
            body = copy.deepcopy(current)
            merged = {**(body["metadata"].get("labels") or {}), **labels}
            body["metadata"]["labels"] = {k: v for k, v in merged.items() if v is not None}
            try:
                return self.registry.update(info, None, name, body)[1]
            except StatusError as err:
                if err.code != 409:
                    raise

    def create_claim(
        self,
        name: str,
        namespace: str = "default",
        access_modes: Iterable[str] = ("ReadWriteOnce",),
        storage: str = "10Gi",
        bound: bool = True,
    ) -> Obj:
        """A PersistentVolumeClaim through admission: of the default StorageClass (bound at
        once to a new volume), or with bound=False of class `manual`, which no provisioner
        serves (it stays Pending)."""
        claim: Obj = {
            "metadata": {"name": name},
            "spec": {
                "accessModes": list(access_modes),
                "resources": {"requests": {"storage": storage}},
            },
        }
        if not bound:
            claim["spec"]["storageClassName"] = "manual"
        return self.create("persistentvolumeclaims", claim, namespace)

    def claim_path(self, name: str, namespace: str = "default") -> Path:
        """The data of a bound claim, as every pod mounting it sees it (made if need be)."""
        claim = self.get("persistentvolumeclaims", namespace, name)
        if claim is None:
            raise CORE["persistentvolumeclaims"].not_found(name)
        volume = volume_name(claim)
        if not volume:
            raise ValueError(f"persistentvolumeclaim {namespace}/{name} is not bound")
        path = self.runtime.volume_path(volume)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def delete(
        self, resource: str, namespace: str | None, name: str, propagation: str | None = None
    ) -> Obj:
        info = self.registry.by_plural(resource)
        return self.registry.delete(info, namespace, name, propagation)

    def events(
        self, namespace: str = "default", involved: str | None = None, reason: str | None = None
    ) -> builtins.list[Obj]:
        out = []
        for ev in self.list("events", namespace):
            if involved and ev["involvedObject"].get("name") != involved:
                continue
            if reason and ev.get("reason") != reason:
                continue
            out.append(ev)
        return out

    def logs(
        self,
        namespace: str,
        pod: str,
        container: str | None = None,
        previous: bool = False,
        timestamps: bool = False,
    ) -> str:
        """A pod's log as `kubectl logs` prints it (raises StatusError like the API)."""
        obj = self.get("pods", namespace, pod)
        if obj is None:
            raise CORE["pods"].not_found(pod)
        name = container or obj["spec"]["containers"][0]["name"]
        log = self.kubelet.container_log(obj, name, previous)
        return b"".join(stream_log(log, timestamps=timestamps)).decode(errors="replace")

    def pod_processes(self) -> dict[str, int]:
        """Running container processes: `namespace/pod/container` -> pid."""
        return self.kubelet.processes()

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 30.0, message: str = "condition"
    ) -> T:
        """Poll until `predicate()` is truthy; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value: T | None
            try:
                value = predicate()
            except (KeyError, TypeError, IndexError, StatusError):
                value = None
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {message}")
            time.sleep(0.05)

    # -- RBAC, CRDs, faults -------------------------------------------------------------
    def deny(self, verb: str, resource: str, namespace: str | None = None) -> DenyRule:
        """Requests for `verb` on `resource` (e.g. "pods/log", "*") get the real 403."""
        return self.authorizer.deny(verb, resource, namespace)

    def allow(self, rule: DenyRule | None = None) -> None:
        self.authorizer.allow(rule)

    @contextmanager
    def kueue(self) -> Iterator[Kueue]:
        """Kueue's job integration while inside: queued jobs start suspended until
        `kueue.admit(plural, namespace, name)`."""
        kueue = Kueue(self.registry)
        try:
            yield kueue
        finally:
            kueue.uninstall()

    def uninstall_crd(self, name: str) -> None:
        """`pytorchjobs.kubeflow.org` disappears: its paths 404, its objects are gone."""
        self.registry.uninstall_crd(name)

    def install_crd(self, name: str) -> Obj:
        return self.registry.install_crd(name)

    def openapi(self, path: str | None = None) -> Obj | None:
        """GET /openapi/v3 (path None) or /openapi/v3/<path>, as the server answers them."""
        from .openapi import document, index

        return index(self.registry) if path is None else document(self.registry, path)

    def trainjob_pods(self, name: str, namespace: str = "default") -> builtins.list[Obj]:
        """A TrainJob's pods (label jobset.sigs.k8s.io/jobset-name), by node rank."""
        pods = self.list("pods", namespace, f"jobset.sigs.k8s.io/jobset-name={name}")
        return sorted(
            pods,
            key=lambda p: int(
                (p["metadata"].get("labels") or {}).get(
                    "batch.kubernetes.io/job-completion-index", 0
                )
            ),
        )

    def inject(self, fault: str, **params: Any) -> Fault:
        """Inject a fault (see faults.KINDS); pod faults take match keys pod=, job=, ...."""
        if fault == "watch_drop":
            f = self.faults.add(fault, **params)
            after, abrupt = int(f.params["after_events"]), bool(f.params["abrupt"])
            f.fired = self.apiserver.drop_watches(after, abrupt)
            f.active = False
            return f
        return self.faults.add(fault, **params)

    def clear_faults(self) -> None:
        self.faults.clear()

    def drop_watches(self, after_events: int = 0, abrupt: bool = False) -> int:
        """Close every open watch stream now, or after N more events each."""
        return self.apiserver.drop_watches(after_events, abrupt)

    def compact(self) -> int:
        """Forget the watch history: resuming from any older resourceVersion gets 410."""
        return self.store.compact()
