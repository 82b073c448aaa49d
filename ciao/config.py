"""Ciao's config file: where it is looked for, its keys, their defaults and validation.

Looked for in `$CIAO_CONFIG`, then `~/.ciao/config.yaml`, `./config.yaml` (only when it
has a top-level `ciao:` key, whose value is then the config: a notebook directory's
config.yaml is often another tool's), `/etc/ciao/config.yaml`; no file at all is fine. It
is read for every cell, so an edit takes effect at once, and a mistake in it is an error
in the cell, not a dead kernel.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ciao.config_file import read_yaml
from ciao.config_keys import check_keys as _check_keys
from ciao.config_keys import shown as _shown
from ciao.config_pod import pod_as_dict, read_pod, read_profiles
from ciao.errors import ConfigError
from ciao.interpreter.pod import PodSettings
from ciao.interpreter.types import ALL_ROLES, FRAMEWORKS, QUEUE_NAME, Resources
from ciao.names import DNS_LABEL
from ciao.secrets import redact

BACKENDS = ("local", "kubeflow")
S2I_PROVIDERS = ("s2i", "img", "configmap")

_TOP_KEYS = {
    "backend": "local | kubeflow (default local)",
    "backends": "the backends cells may use, e.g. [kubeflow] (default: both)",
    "framework": "the framework of a cell without %framework (default pytorch)",
    "kubeconfig": "path of the kubeconfig (empty: $KUBECONFIG, default, or in-cluster)",
    "context": "kubeconfig context to use",
    "namespace": "namespace of the jobs",
    "s2i": "how code reaches the cluster: {provider, registry, repository, builders, ...}",
    "images": "stock image per framework (configmap and img providers): {tensorflow, pytorch}",
    "local": "local backend: {run_dir, keep: 30d (days) or 100 (newest jobs) of finished jobs}",
    "output": "what a cell shows: {max_bytes_per_second, max_messages_per_second, max_lines}",
    "kubeflow": "which Kubeflow API runs cells: {api: auto|v1|v2, runtime, release}",
    "files": "paths in the notebook's folder every job takes along (as %files), e.g. [data/]",
    "limits": "what one cell may ask for: {max_replicas} (default 64 locally, 1000 on Kubernetes)",
    "session": "the Python session of cells without job magics: {enabled, max_value_bytes}",
    "pod": "every job's pod settings: {volumes, env, tolerations, nodeSelector, ...} (as the "
    "pod magics: %volume, %env, ...)",
    "profiles": "named pod settings a cell picks with %profile=NAME: {NAME: {...as pod:}}",
    "tune": "how %tune cells run their trials: {engine: auto | ciao | katib}",
    **{role: f"default resources of a {role} replica: {{cpu, memory, gpu}}" for role in ALL_ROLES},
}
_S2I_KEYS = (
    "provider",
    "registry",
    "username",
    "repository",
    "builders",
    "build_command",
    "push_command",
    "timeout",
)
_LOCAL_KEYS = ("run_dir", "keep")
#: `local.keep`: finished jobs' run directories are removed after this many days.
DEFAULT_KEEP = "30d"
#: Replicas one cell may have per backend, unless `limits.max_replicas` says otherwise: a
#: laptop runs tens of processes, a cluster's quota is the cluster's business.
DEFAULT_MAX_REPLICAS = {"local": 64, "kubeflow": 1000}
KUBEFLOW_APIS = ("auto", "v1", "v2")
POD_SECURITY = ("restricted", "none")
#: `kubeflow.run_as_user`: the stock framework images run as root, which Pod Security
#: `restricted` forbids; run as this uid instead (the image needs no user of that id).
DEFAULT_RUN_AS_USER = 1000
#: `kubeflow.no_pods_after`: seconds without a pod before a cell says so (and looks for the
#: pods by older operators' labels); long enough for a busy operator to make them.
DEFAULT_NO_PODS_AFTER = 10.0
#: The largest uid Kubernetes accepts in a securityContext.
MAX_UID = 2147483647
TRAINER_RELEASES = ("auto", "v2.0", "v2.1", "v2.2", "v2.3")
_KUBEFLOW_KEYS = {
    "api": "auto (Trainer v2 for PyTorch when installed, else v1) | v1 | v2",
    "runtime": "the Trainer v2 runtime of PyTorch cells (default torch-distributed)",
    "release": "the Trainer v2 release, for its pod-override field (default: read from the "
    "API server's OpenAPI)",
    "queue": "the Kueue LocalQueue jobs wait in (label kueue.x-k8s.io/queue-name; default none)",
    "pod_security": "restricted (default: job pods pass Pod Security `restricted`: non-root, "
    "seccomp RuntimeDefault, no privilege escalation, no capabilities) | none (no "
    "securityContext: for an image that must run as root, where the namespace allows it)",
    "run_as_user": "the uid (also gid and fsGroup) job pods run as under restricted (default "
    "1000), or image: the image's own user (numeric, not root)",
    "no_pods_after": "seconds a running job may have no pod before the cell says so and looks "
    "for its pods by older operators' labels (default 10; a queued job never counts)",
}
_SESSION_KEYS = {
    "enabled": "true (default): cells without job magics run in a Python session in a child "
    "process of the kernel; false: every cell is a job",
    "max_value_bytes": "the largest value (pickled) a job cell takes from the session "
    "(default 104857600: 100 MiB)",
}
#: `tune.engine`: who runs a %tune cell's study. auto: Katib where the cluster serves
#: experiments.kubeflow.org, else Ciao's own (Optuna); local cells always Ciao's.
TUNE_ENGINES = ("auto", "ciao", "katib")
_TUNE_KEYS = {
    "engine": "auto (default: Katib where the cluster serves it, else Ciao's) | ciao | katib"
}
#: `session.max_value_bytes`: a value bigger than this is refused to a job, by name.
DEFAULT_MAX_VALUE_BYTES = 100 * 1024 * 1024
_OUTPUT_KEYS = {
    "max_bytes_per_second": "log output a cell may send, averaged over 3 s (0: unlimited)",
    "max_messages_per_second": "IOPub messages a cell may send a second (0: unlimited)",
    "max_lines": "log lines one cell shows, first and latest (0: unlimited)",
}
#: Stock framework images the configmap provider runs the code in (both have python).
DEFAULT_IMAGES = {
    "tensorflow": "tensorflow/tensorflow:2.18.0",
    "pytorch": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
}
#: s2i builder images per framework (`s2i.builders`): the generic Python builder of the
#: sclorg project (it pip-installs requirements.txt, and runs code.py through the
#: APP_FILE=code.py that Ciao writes to .s2i/environment). It has no framework installed:
#: add it to %requirements, or name a builder image that has it.
DEFAULT_BUILDERS = {
    "tensorflow": "registry.access.redhat.com/ubi9/python-311",
    "pytorch": "registry.access.redhat.com/ubi9/python-311",
}
DEFAULT_BUILD_COMMAND = ("docker", "build")
DEFAULT_PUSH_COMMAND = ("docker", "push")
DEFAULT_S2I_TIMEOUT = 1800.0
#: Words that mark a credential in a build or push command: Ciao never passes one on a
#: command line (visible in `ps`, shell history, logs); the tool's login store holds them.
_SECRET_WORDS = ("cred", "pass", "token", "secret")
_RESOURCE_KEYS = ("cpu", "memory", "gpu")


@dataclass(frozen=True)
class S2IConfig:
    """`s2i:` of the config: how the cell's code reaches the cluster (docs in README).

    configmap: code (and requirements.txt) in a ConfigMap, run in `images.<framework>`.
    s2i: `s2i build <dir> <builders.<framework>> <image>`, then `push_command <image>`.
    img: a Dockerfile FROM `images.<framework>`, `build_command -t <image> <dir>`, then push.
    The image is `<registry>/<repository>:<content hash>`.
    """

    provider: str = "configmap"
    registry: str = ""
    username: str = ""
    repository: str = "ciao"
    builders: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_BUILDERS))
    build_command: tuple[str, ...] = DEFAULT_BUILD_COMMAND
    push_command: tuple[str, ...] = DEFAULT_PUSH_COMMAND
    #: Seconds each build or push may take before it is stopped.
    timeout: float = DEFAULT_S2I_TIMEOUT


@dataclass(frozen=True)
class OutputConfig:
    """`output:` of the config: what a cell may send to the notebook.

    Jupyter Server drops every IOPub message while a kernel is over 1,000,000 bytes/s of
    stream output or 1,000 messages/s (averaged over 3 s), so the defaults stay well
    under; 0 turns a limit off (papermill, nbclient). Every line is in the job's record.
    """

    max_bytes_per_second: int = 500_000
    max_messages_per_second: int = 200
    max_lines: int = 5_000


@dataclass(frozen=True)
class KubeflowConfig:
    """`kubeflow:` of the config: Training Operator v1 (PyTorchJob, TFJob) or Kubeflow
    Trainer v2 (TrainJob), and v2's runtime and release."""

    api: str = "auto"
    runtime: str = "torch-distributed"
    release: str = "auto"
    #: The Kueue LocalQueue of every job (label kueue.x-k8s.io/queue-name); empty: none.
    queue: str = ""
    #: restricted: job pods pass Pod Security `restricted`; none: no securityContext.
    pod_security: str = "restricted"
    #: The uid (and gid, fsGroup) of job pods under restricted; None: the image's own user.
    run_as_user: int | None = DEFAULT_RUN_AS_USER
    #: Seconds a job (not suspended) may have no pod before its cell says so.
    no_pods_after: float = DEFAULT_NO_PODS_AFTER


@dataclass(frozen=True)
class SessionConfig:
    """`session:` of the config: whether cells without job magics run in a persistent
    Python session (a child process of the kernel, in the kernel's Python and directory),
    and how big a value of it a job cell may carry. Off in the gateway's deployment: the
    session would run code in the gateway's pod."""

    enabled: bool = True
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES


@dataclass(frozen=True)
class TuneConfig:
    """`tune:` of the config: which engine runs a %tune cell's study."""

    engine: str = "auto"


@dataclass(frozen=True)
class Config:
    source: Path | None = None
    backend: str = "local"
    #: The backends a cell may choose (`%backend`); the gateway's deployment allows only
    #: kubeflow, so no cell runs in the gateway's pod.
    backends: tuple[str, ...] = BACKENDS
    framework: str = "pytorch"
    kubeconfig: str = ""
    context: str = ""
    namespace: str = ""
    s2i: S2IConfig = field(default_factory=S2IConfig)
    defaults: dict[str, Resources] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_IMAGES))
    run_dir: Path = field(default_factory=lambda: Path.home() / ".ciao" / "runs")
    #: `local.keep`: ("days", N) or ("jobs", N): which finished jobs' records stay.
    keep: tuple[str, int] = ("days", 30)
    output: OutputConfig = field(default_factory=OutputConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)
    #: `limits.max_replicas`; 0: each backend's default (DEFAULT_MAX_REPLICAS).
    max_replicas: int = 0
    #: `files:`: what every job takes from the notebook's folder (before its own %files).
    files: tuple[str, ...] = ()
    session: SessionConfig = field(default_factory=SessionConfig)
    #: `pod:`: every job's pod settings (under its profile's and its cell's).
    pod: PodSettings = field(default_factory=PodSettings)
    #: `profiles:`: pod settings by name, for `%profile=NAME`.
    profiles: dict[str, PodSettings] = field(default_factory=dict)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration, as `%config` shows it."""
        return {
            "source": str(self.source) if self.source else None,
            "backend": self.backend,
            "backends": list(self.backends),
            "framework": self.framework,
            "kubeconfig": self.kubeconfig,
            "context": self.context,
            "namespace": self.namespace,
            "s2i": {
                "provider": self.s2i.provider,
                "registry": self.s2i.registry,
                "username": self.s2i.username,
                "repository": self.s2i.repository,
                "builders": dict(self.s2i.builders),
                "build_command": redact(self.s2i.build_command),
                "push_command": redact(self.s2i.push_command),
                "timeout": self.s2i.timeout,
            },
            "images": dict(self.images),
            "local": {"run_dir": str(self.run_dir), "keep": _keep_text(self.keep)},
            "output": dataclasses.asdict(self.output),
            "kubeflow": {
                **dataclasses.asdict(self.kubeflow),
                "run_as_user": (
                    "image" if self.kubeflow.run_as_user is None else self.kubeflow.run_as_user
                ),
            },
            "limits": {"max_replicas": self.max_replicas or dict(DEFAULT_MAX_REPLICAS)},
            "files": list(self.files),
            "session": dataclasses.asdict(self.session),
            "tune": dataclasses.asdict(self.tune),
            "pod": pod_as_dict(self.pod),
            "profiles": {name: pod_as_dict(pod) for name, pod in self.profiles.items()},
            **{
                role: {"cpu": res.cpu, "memory": res.memory, "gpu": res.gpu}
                for role, res in self.defaults.items()
            },
        }


def candidate_paths(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    env = os.environ if env is None else env
    paths = []
    if env.get("CIAO_CONFIG"):
        paths.append(Path(env["CIAO_CONFIG"]).expanduser())
    paths += [
        Path(env.get("HOME", str(Path.home()))) / ".ciao" / "config.yaml",
        (cwd or Path.cwd()) / "config.yaml",
        Path("/etc/ciao/config.yaml"),
    ]
    return paths


def load_config(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Config:
    """The first config file found, validated; the defaults when there is none."""
    env = os.environ if env is None else env
    paths = candidate_paths(env, cwd)
    if env.get("CIAO_CONFIG") and not paths[0].is_file():
        raise ConfigError(f"$CIAO_CONFIG names {paths[0]}, which is not a readable file")
    here = (cwd or Path.cwd()) / "config.yaml"
    for path in paths:
        if not path.is_file():
            continue
        data = read_yaml(path)
        if path == here and path != paths[0]:
            if not (isinstance(data, dict) and "ciao" in data):
                continue  # another tool's config.yaml
            data = data["ciao"] or {}
        return parse_config(data, path)
    return parse_config({}, None, home=env.get("HOME"))


def _files(data: dict[str, Any], where: str) -> tuple[str, ...]:
    """`files:` a list of paths relative to the notebook's folder (as `%files` takes)."""
    value = data.get("files", [])
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: files: expected a list of paths, got {_shown(value)}")
    paths = tuple(v.strip() for v in value if v.strip())
    for path in paths:
        if path.startswith(("/", "~")) or ".." in path.replace("\\", "/").split("/"):
            raise ConfigError(
                f"{where}: files: {_shown(path)} is not inside the notebook's folder: "
                "name it relative to it"
            )
    return paths


def parse_config(data: Any, source: Path | None, home: str | None = None) -> Config:
    """Validate a parsed config document; every error names the file and the key."""
    where = str(source) if source else "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    _check_keys(data, _TOP_KEYS, where, "")
    backends = _backends(data, where)
    backend = _choice(
        data, "backend", BACKENDS, where, backends[0] if "local" not in backends else "local"
    )
    if backend not in backends:
        raise ConfigError(
            f"{where}: backend: {_shown(backend)} is not one of the allowed backends "
            f"({', '.join(backends)})"
        )
    framework = _choice(data, "framework", FRAMEWORKS, where, "pytorch")
    s2i = _section(data, "s2i", where)
    if "password" in s2i:
        raise ConfigError(
            f"{where}: s2i.password: Ciao does not read registry passwords from its config "
            "(they would sit in plain text); log in with `docker login <registry>` instead, "
            "and remove the key"
        )
    _check_keys(s2i, dict.fromkeys(_S2I_KEYS, ""), where, "s2i.")
    builders = _section(s2i, "builders", where, "s2i.")
    _check_keys(builders, DEFAULT_BUILDERS, where, "s2i.builders.")
    images = _section(data, "images", where)
    _check_keys(images, DEFAULT_IMAGES, where, "images.")
    local = _section(data, "local", where)
    _check_keys(local, dict.fromkeys(_LOCAL_KEYS, ""), where, "local.")
    output = _section(data, "output", where)
    _check_keys(output, _OUTPUT_KEYS, where, "output.")
    limits = _section(data, "limits", where)
    _check_keys(limits, {"max_replicas": ""}, where, "limits.")
    max_replicas = limits.get("max_replicas", 0)
    if isinstance(max_replicas, bool) or not isinstance(max_replicas, int) or max_replicas < 0:
        raise ConfigError(
            f"{where}: limits.max_replicas: expected a whole number >= 1 (0: the backend's "
            f"default), got {_shown(max_replicas)}"
        )
    session = _session(data, where)
    tune = _section(data, "tune", where)
    _check_keys(tune, _TUNE_KEYS, where, "tune.")
    kubeflow = _section(data, "kubeflow", where)
    _check_keys(kubeflow, _KUBEFLOW_KEYS, where, "kubeflow.")
    runtime = _string(kubeflow, "runtime", where, "kubeflow.") or "torch-distributed"
    if not DNS_LABEL.fullmatch(runtime):
        raise ConfigError(f"{where}: kubeflow.runtime: {_shown(runtime)} is not a runtime name")
    queue = _string(kubeflow, "queue", where, "kubeflow.")
    if queue and not QUEUE_NAME.fullmatch(queue):
        raise ConfigError(f"{where}: kubeflow.queue: {_shown(queue)} is not a queue name")
    pod_security = _pod_security(kubeflow, where)
    defaults = {}
    for role in ALL_ROLES:
        if role in data:
            defaults[role] = _resources(_section(data, role, where), where, role)
    run_dir = local.get("run_dir") or str(Path(home or Path.home()) / ".ciao" / "runs")
    files = _files(data, where)
    return Config(
        source=source,
        files=files,
        pod=read_pod(data.get("pod"), where, "pod", "config pod"),
        profiles=read_profiles(data.get("profiles"), where),
        backend=backend,
        backends=backends,
        framework=framework,
        kubeconfig=_string(data, "kubeconfig", where),
        context=_string(data, "context", where),
        namespace=_string(data, "namespace", where),
        s2i=S2IConfig(
            provider=_choice(s2i, "provider", S2I_PROVIDERS, where, "configmap", "s2i."),
            registry=_string(s2i, "registry", where, "s2i.").rstrip("/"),
            username=_string(s2i, "username", where, "s2i."),
            repository=_repository(s2i, where),
            builders={
                fw: _string(builders, fw, where, "s2i.builders.") or image
                for fw, image in DEFAULT_BUILDERS.items()
            },
            build_command=_command(s2i, "build_command", DEFAULT_BUILD_COMMAND, where),
            push_command=_command(s2i, "push_command", DEFAULT_PUSH_COMMAND, where),
            timeout=_seconds(s2i, "timeout", DEFAULT_S2I_TIMEOUT, where, "s2i."),
        ),
        defaults=defaults,
        images={
            fw: _string(images, fw, where, "images.") or image
            for fw, image in DEFAULT_IMAGES.items()
        },
        run_dir=Path(str(run_dir)).expanduser(),
        keep=_keep(local.get("keep", DEFAULT_KEEP), where),
        max_replicas=max_replicas,
        session=session,
        tune=TuneConfig(engine=_choice(tune, "engine", TUNE_ENGINES, where, "auto", "tune.")),
        kubeflow=KubeflowConfig(
            api=_choice(kubeflow, "api", KUBEFLOW_APIS, where, "auto", "kubeflow."),
            runtime=runtime,
            release=_choice(kubeflow, "release", TRAINER_RELEASES, where, "auto", "kubeflow."),
            queue=queue,
            pod_security=pod_security,
            run_as_user=_run_as_user(kubeflow, pod_security, where),
            no_pods_after=_seconds(
                kubeflow, "no_pods_after", DEFAULT_NO_PODS_AFTER, where, "kubeflow."
            ),
        ),
        output=OutputConfig(
            **{key: _count(output, key, getattr(OutputConfig, key), where) for key in _OUTPUT_KEYS}
        ),
    )


def _session(data: dict, where: str) -> SessionConfig:
    """`session: {enabled, max_value_bytes}`."""
    section = _section(data, "session", where)
    _check_keys(section, _SESSION_KEYS, where, "session.")
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(
            f"{where}: session.enabled: expected true or false, got {_shown(enabled)}"
        )
    size = section.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"{where}: session.max_value_bytes: expected a number of bytes >= 1 "
            f"(like 104857600 for 100 MiB), got {_shown(size)}"
        )
    return SessionConfig(enabled=enabled, max_value_bytes=size)


def _pod_security(kubeflow: dict, where: str) -> str:
    """`kubeflow.pod_security`: restricted | none (YAML reads an unquoted off or no as
    false: that is none too)."""
    if kubeflow.get("pod_security") is False:
        return "none"
    return _choice(kubeflow, "pod_security", POD_SECURITY, where, "restricted", "kubeflow.")


def _run_as_user(kubeflow: dict, pod_security: str, where: str) -> int | None:
    """`kubeflow.run_as_user`: a uid other than root, or `image` (None): the image's user."""
    if "run_as_user" not in kubeflow:
        return DEFAULT_RUN_AS_USER
    value = kubeflow["run_as_user"]
    if pod_security == "none":
        raise ConfigError(
            f"{where}: kubeflow.run_as_user: pods get no securityContext with "
            "kubeflow.pod_security: none, so they run as the image's user; remove one of the two"
        )
    if value == "image":
        return None
    if value == 0 and not isinstance(value, bool):
        raise ConfigError(
            f"{where}: kubeflow.run_as_user: 0 is root, which Pod Security `restricted` forbids; "
            "for an image that must run as root, set kubeflow.pod_security: none (in a namespace "
            "whose Pod Security level allows it)"
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_UID:
        raise ConfigError(
            f"{where}: kubeflow.run_as_user: expected a uid (a whole number from 1 to {MAX_UID}) "
            f"or image (the image's own user), got {_shown(value)}"
        )
    return value


def _backends(data: dict, where: str) -> tuple[str, ...]:
    value = data.get("backends")
    if value is None:
        return BACKENDS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{where}: backends: expected a list like [kubeflow], got {_shown(value)}"
        )
    chosen = tuple(dict.fromkeys(v.lower() for v in value))
    unknown = [v for v in chosen if v not in BACKENDS]
    if unknown:
        raise ConfigError(
            f"{where}: backends: {', '.join(unknown)} is not a backend (known: "
            f"{', '.join(BACKENDS)})"
        )
    return chosen


def _section(data: dict, key: str, where: str, prefix: str = "") -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {prefix}{key}: expected a mapping, got {_shown(value)}")
    return value


def _string(data: dict, key: str, where: str, prefix: str = "") -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{where}: {prefix}{key}: expected a string, got {_shown(value)}")
    return str(value)


def _choice(
    data: dict, key: str, allowed: tuple[str, ...], where: str, default: str, prefix: str = ""
) -> str:
    value = _string(data, key, where, prefix) or default
    if value.lower() not in allowed:
        raise ConfigError(
            f"{where}: {prefix}{key}: {_shown(value)} is not one of {', '.join(allowed)}"
        )
    return value.lower()


def _repository(s2i: dict, where: str) -> str:
    """`s2i.repository`: a repository path in the registry (`ciao`, `team/ciao`)."""
    value = _string(s2i, "repository", where, "s2i.") or "ciao"
    part = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    if not re.fullmatch(rf"{part}(?:/{part})*", value):
        raise ConfigError(
            f"{where}: s2i.repository: {_shown(value)} is not a repository name "
            "(lower-case letters, digits, and . _ - / inside, like ciao or team/ciao)"
        )
    return value


def _command(s2i: dict, key: str, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    """A command as a list of strings (`[podman, push]`); never one with a credential."""
    value = s2i.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split()
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ConfigError(
            f"{where}: s2i.{key}: expected a non-empty list of strings "
            f"like {list(default)}, got {_shown(value)}"
        )
    for arg in _checked_words(value[1:]):
        if any(word in arg.lower() for word in _SECRET_WORDS):
            raise ConfigError(
                f"{where}: s2i.{key}: {arg.split('=')[0]!r} looks like a credential option; "
                "Ciao never puts credentials on a command line: log in once with the tool "
                f"(`{value[0]} login <registry>`) and remove it"
            )
    return tuple(value)


def _checked_words(args: list[str]) -> list[str]:
    """The arguments a credential must not hide in: not the values of --build-arg and
    -e/--env (they go to the tool's environment, shown as NAME=***) nor of BuildKit's
    --secret (it names a file or variable holding the secret, never the secret)."""
    checked, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        option = arg.split("=", 1)[0]
        if option in ("--build-arg", "--secret", "-e", "--env"):
            skip = "=" not in arg
            continue
        if arg.startswith("-e") and not arg.startswith("--"):  # -eNAME=VALUE
            continue
        checked.append(arg)
    return checked


def _seconds(section: dict, key: str, default: float, where: str, prefix: str) -> float:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(
            f"{where}: {prefix}{key}: expected a number of seconds > 0, got {_shown(value)}"
        )
    return float(value)


def _keep(value: Any, where: str) -> tuple[str, int]:
    """`30d` (days) or `100` (the newest jobs)."""
    text = str(value).strip().lower()
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return ("jobs", value)
    if re.fullmatch(r"\d+d", text) and int(text[:-1]) >= 1:
        return ("days", int(text[:-1]))
    raise ConfigError(
        f"{where}: local.keep: expected days like 30d or a number of jobs like 100, "
        f"got {_shown(value)}"
    )


def _keep_text(keep: tuple[str, int]) -> str | int:
    return f"{keep[1]}d" if keep[0] == "days" else keep[1]


def _count(section: dict, key: str, default: int, where: str) -> int:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{where}: output.{key}: expected a whole number >= 0 (0: unlimited), "
            f"got {_shown(value)}"
        )
    return value


def _resources(section: dict, where: str, role: str) -> Resources:
    from ciao.interpreter.quantity import check_quantity

    _check_keys(section, dict.fromkeys(_RESOURCE_KEYS, ""), where, f"{role}.")
    cpu = _string(section, "cpu", where, f"{role}.") or None
    memory = _string(section, "memory", where, f"{role}.") or None
    for kind, value in (("cpu", cpu), ("memory", memory)):
        problem = check_quantity(kind, value) if value else None
        if problem:
            raise ConfigError(f"{where}: {role}.{kind}: {problem}")
    gpu = section.get("gpu", 0)
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        raise ConfigError(f"{where}: {role}.gpu: expected a whole number >= 0, got {_shown(gpu)}")
    return Resources(cpu=cpu, memory=memory, gpu=gpu)
