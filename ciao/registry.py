"""Which S2IClient and Backend run a cell, and which backend knows a job: chosen from the
config alone, without connecting to a cluster (the Kubeflow backend connects on first use).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ciao.backend.bound import BoundBackend, ManagedBackend
from ciao.backend.record import RunDir
from ciao.config import DEFAULT_MAX_REPLICAS, Config
from ciao.errors import BackendError, ConfigError
from ciao.s2i.types import S2IClient

if TYPE_CHECKING:  # the backends (and the kubernetes client) load on first use
    from ciao.backend.kubeflow.backend import KubeflowBackend
    from ciao.backend.local.backend import LocalBackend

#: `backend:` values and `%backend=` choices.
BACKENDS = ("local", "kubeflow")
#: `s2i.provider` values for the Kubeflow backend.
PROVIDERS = ("configmap", "s2i", "img")


class Registry:
    """The components the Manager uses; tests give the Manager another registry."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        #: What local jobs inherit (the composition root leaves Jupyter's variables out);
        #: None: this process's environment as it is when a job starts.
        self.environ = environ

    def components(self, config: Config, backend: str = "") -> tuple[S2IClient, ManagedBackend]:
        """The S2IClient and the backend (bound: plans come back to it) for a cell: its
        `%backend`, else the config's."""
        backend = backend or config.backend
        allowed(config, backend)
        if backend == "local":
            from ciao.backend.local.code_file import LocalCodeFile

            return LocalCodeFile(config.run_dir), BoundBackend(self.local(config))
        if config.s2i.provider not in PROVIDERS:
            raise ConfigError(
                f"s2i.provider {config.s2i.provider!r} (from {config.source or 'config'}) is "
                f"not one of {', '.join(PROVIDERS)}"
            )
        s2i: S2IClient
        if config.s2i.provider == "configmap":
            from ciao.s2i.configmap import ConfigMapCode

            s2i = ConfigMapCode(config.images)
        else:  # build and push an image of the cell
            from ciao.s2i.s2i import DockerfileBuild, S2IBuild

            build = S2IBuild if config.s2i.provider == "s2i" else DockerfileBuild
            s2i = build(config.s2i, config.images, source=config.source)
        return s2i, BoundBackend(self.kubeflow(config))

    def local(self, config: Config) -> LocalBackend:
        from ciao.backend.local.backend import LocalBackend

        return LocalBackend(config.run_dir, environ=self.environ)

    def kubeflow(self, config: Config) -> KubeflowBackend:
        return _kubeflow_backend(config)

    def backends(self, config: Config) -> list[ManagedBackend]:
        """The backends whose jobs the job commands (%jobs, %status...) look at: the local
        one always, the cluster's when the config names a cluster."""
        found: list[ManagedBackend] = []
        if "local" in config.backends:
            local = BoundBackend(self.local(config))  # its types from the backend, not `found`
            found.append(local)
        if _names_a_cluster(config):
            cluster = BoundBackend(self.kubeflow(config))
            found.append(cluster)
        return found

    def kubeflow_apis(self, config: Config) -> dict[str, str]:
        """For %config: the Kubeflow API each framework's cells would run on, and why;
        nothing when the config names no cluster. Asks the cluster: errors are answers."""
        return _kubeflow_backend(config).api_summary() if _names_a_cluster(config) else {}

    def backend_of(self, config: Config, name: str) -> ManagedBackend:
        """The backend that ran job `name`: its run record says; else the cluster's."""
        try:
            recorded = RunDir(config.run_dir, name).spec().get("backend")
        except ValueError:
            raise BackendError(f"{name!r} is not a job name") from None
        if recorded != "local":
            for backend in self.backends(config):
                if backend.name == "kubeflow":
                    return backend
        allowed(config, "local")
        return BoundBackend(self.local(config))


def _kubeflow_backend(config: Config) -> KubeflowBackend:
    """Connects on first use, not here: choosing a backend needs no cluster."""
    from ciao.backend.kubeflow.backend import KubeflowBackend
    from ciao.backend.kubeflow.client import connect

    return KubeflowBackend(lambda: connect(config), config.run_dir, settings=config.kubeflow)


def _names_a_cluster(config: Config) -> bool:
    return "kubeflow" in config.backends and bool(config.backend == "kubeflow" or config.kubeconfig)


def check_replicas(config: Config, backend: str, replicas: int) -> None:
    """Refuse a cell with more replicas than its backend may run (`limits.max_replicas`)."""
    limit = config.max_replicas or DEFAULT_MAX_REPLICAS.get(backend, 0)
    if limit and replicas > limit:
        raise ConfigError(
            f"this cell asks for {replicas} replicas; the {backend} backend runs at most "
            f"{limit} (limits.max_replicas in {config.source or 'the config'})"
        )


def allowed(config: Config, backend: str) -> None:
    """Refuse a backend the config does not allow (`backends:`), naming the rule's source."""
    if backend not in config.backends:
        raise ConfigError(
            f"backend {backend!r} is not allowed here: {config.source or 'the config'} has "
            f"backends: [{', '.join(config.backends)}]"
        )
