"""The container runtime stand-in: a pod's container becomes a local process.

What maps to what:
- `command` + `args` ($(VAR) expanded); a leading python/python3[.x] is this interpreter;
  no command: `args` alone; neither: a process that exits 0 at once.
- volumes become directories: configMap and secret keys are files (defaultMode, items;
  FailedMount `MountVolume.SetUp failed for volume "v" : secret "s" not found` until the
  object exists, unless optional), emptyDir and everything else an empty directory of the
  pod's sandbox, hostPath the host path itself, and a persistentVolumeClaim the directory
  of its bound volume, one per claim, that every pod mounting the claim shares and that
  outlives them (until the claim is deleted). Any argument, env value or workingDir under
  a volumeMount's mountPath is rewritten to the local directory; inside Python, file
  functions map the mount paths, refuse writes to read-only mounts and report a Memory
  emptyDir's size (podfs.py).
- env: `value`, `valueFrom.fieldRef` (metadata.name/namespace/uid/labels/annotations,
  spec.nodeName, spec.serviceAccountName, status.podIP/hostIP), configMapKeyRef,
  secretKeyRef, envFrom configMapRef and secretRef (keys that are not environment variable
  names skipped), as the kubelet's makeEnvironmentVariables: a ConfigMap, Secret or key
  that does not exist is a ConfigError with the kubelet's text (`secret "hf" not found`,
  `couldn't find key token in Secret default/hf`) unless `optional: true`; plus HOSTNAME
  (spec.hostname, else the pod's name), PATH with this interpreter's bin directory first
  (so `python`, `torchrun` in shell commands are this venv's), and a PYTHONPATH with a
  generated sitecustomize that is the pod's cluster DNS inside Python (C-level resolvers
  are not patched; torch's TCPStore is, see below), and the container's mounts (podfs.py).
- pod IPs: every pod has an address of its own in 127.0.0.0/8, derived from its UID
  (127.1-254.x.y; a hostNetwork pod has its node's, 127.0.0.N), in status.podIP and the
  downward API; its hostname resolves to it. So pods of two jobs can listen on one port
  (the v1 operator's 23456, torchrun's 29500) at once, as on separate nodes: a server binds
  its pod's address. torch's TCPStore binds 0.0.0.0 itself, so the sitecustomize gives a
  store server whose host is its own pod's address a socket bound there (master_listen_fd).
  gloo listens on ephemeral ports (of the machine's hostname's address), which never clash;
  a plain 0.0.0.0 bind takes the port on every pod's address, as one network namespace.
- cluster DNS (what CoreDNS answers from the Endpoints controller's lists): a Service
  name (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`) answers the addresses of the pods
  its selector selects in its namespace that are bound to the node, not finished and not
  terminating (terminating ones too with publishNotReadyAddresses). Unlike upstream, a pod
  is answered from its binding on, before it is Ready: the pod's own processes resolve the
  name once (TCPStore) where torch on a cluster would retry until it is. A ClusterIP
  Service stands for kube-proxy by answering its pods' addresses directly (ports are not
  translated); without pods it answers an address of its own (127.0.x.y, x >= 1) where no
  pod listens, so a connection is refused as kube-proxy rejects it; a headless one answers
  NXDOMAIN (socket.gaierror EAI_NONAME). `<hostname>.<subdomain>[.ns[.svc...]]` answers a
  bound pod with that hostname under a headless Service `<subdomain>` (as JobSet pods have),
  until the pod is gone, finished or not.
- `torchrun ...` (exec form) runs `<this python> -m torch.distributed.run ...`; without an
  importable torch it fails to start like a missing binary (StartError, exit code 128,
  `exec: "torchrun": executable file not found in $PATH`).
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import podfs, storage
from .configdata import configmap_data, secret_data

SITECUSTOMIZE = '''"""fakecluster: this pod's cluster DNS (service and pod names -> addresses)."""
import json as _json
import os as _os
import socket as _socket
import sys as _sys
import warnings as _warnings

_HOSTS = {hosts!r}
_NAMESPACE = {namespace!r}
_HOSTNAME = {hostname!r}
_POD_IP = {pod_ip!r}
_cache = [None, {{}}]


def _services():
    try:
        mtime = _os.stat(_HOSTS).st_mtime_ns
        if _cache[0] != mtime:
            with open(_HOSTS) as f:
                _cache[1] = _json.load(f)
            _cache[0] = mtime
    except (OSError, ValueError):
        pass
    return _cache[1]


def _addresses(host):
    """A cluster name's addresses ([] when it has none: NXDOMAIN); None for other names."""
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    if not isinstance(host, str) or not host:
        return None
    name = host.rstrip(".").lower()
    if name == _HOSTNAME:
        return [_POD_IP]
    if name.endswith(".cluster.local"):
        name = name[: -len(".cluster.local")]
    if name.endswith(".svc"):
        name = name[: -len(".svc")]
    parts = name.split(".")
    table = _services()
    if len(parts) == 1:
        return table.get(_NAMESPACE, {{}}).get(name)
    if len(parts) == 2:
        found = table.get(_NAMESPACE, {{}}).get(name)
        return found if found is not None else table.get(parts[1], {{}}).get(parts[0])
    if len(parts) == 3:
        return table.get(parts[2], {{}}).get(parts[0] + "." + parts[1])
    return None


def _resolve(host):
    found = _addresses(host)
    return found[0] if found else None


def _lookup(host):
    """`_addresses`, but a cluster name without addresses raises NXDOMAIN."""
    addresses = _addresses(host)
    if addresses is not None and not addresses:
        raise _socket.gaierror(_socket.EAI_NONAME, "Name or service not known")
    return addresses


_getaddrinfo = _socket.getaddrinfo
_gethostbyname = _socket.gethostbyname
_gethostbyname_ex = _socket.gethostbyname_ex


def getaddrinfo(host, *args, **kwargs):
    addresses = _lookup(host)
    if addresses is None:
        return _getaddrinfo(host, *args, **kwargs)
    return [info for ip in addresses for info in _getaddrinfo(ip, *args, **kwargs)]


def gethostbyname(host):
    addresses = _lookup(host)
    return addresses[0] if addresses else _gethostbyname(host)


def gethostbyname_ex(host):
    addresses = _lookup(host)
    return (host, [], list(addresses)) if addresses else _gethostbyname_ex(host)


_socket.getaddrinfo = getaddrinfo
_socket.gethostbyname = gethostbyname
_socket.gethostbyname_ex = gethostbyname_ex
_socket.gethostname = lambda: _HOSTNAME


def _patch_c10d(c10d):
    """torch's TCPStore resolves names in C++: give it the address, bind servers on it."""
    base = getattr(c10d, "TCPStore", None)
    if base is None or getattr(base, "_fakecluster", False):
        return

    class TCPStore(base):
        _fakecluster = True

        def __init__(self, *args, **kwargs):
            args = list(args)
            host = args[0] if args else kwargs.get("host_name")
            ip = _resolve(host) if isinstance(host, str) else None
            if ip is not None:
                if args:
                    args[0] = ip
                else:
                    kwargs["host_name"] = ip
                port = args[1] if len(args) > 1 else kwargs.get("port")
                master = args[3] if len(args) > 3 else kwargs.get("is_master", False)
                if (
                    master
                    and port
                    and ip == _POD_IP
                    and ip != "127.0.0.1"
                    and len(args) < 8
                    and kwargs.get("master_listen_fd") is None
                ):
                    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
                    sock.bind((ip, int(port)))
                    sock.listen(2048)
                    kwargs["master_listen_fd"] = sock.detach()
            super().__init__(*args, **kwargs)

    TCPStore.__module__ = base.__module__
    TCPStore.__qualname__ = base.__qualname__
    c10d.TCPStore = TCPStore


class _TorchDistributedHook:
    """Patch TCPStore once torch.distributed creates it (before anything imports it)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch.distributed":
            tc = _sys.modules.get("torch._C")
            init = getattr(tc, "_c10d_init", None)
            if init is not None and not getattr(init, "_fakecluster", False):

                def _c10d_init():
                    ok = init()
                    c10d = getattr(tc, "_distributed_c10d", None)
                    if c10d is not None:
                        _patch_c10d(c10d)
                    return ok

                _c10d_init._fakecluster = True
                tc._c10d_init = _c10d_init
        return None


_sys.meta_path.insert(0, _TorchDistributedHook())

# The pytorch/pytorch images ship NumPy; this venv's torch would warn on every import.
_warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

try:  # the container's mounts (podfs.py), in the container's own site directory
    import _fakecluster_fs  # noqa: F401
except ImportError:
    pass
'''

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
NODE_IP = "127.0.0.1"


def _digest(uid: str) -> bytes:
    return hashlib.sha256(uid.encode()).digest()


def pod_ip(pod: dict[str, Any]) -> str:
    """The pod's own address, 127.1-254.x.y from its UID (a hostNetwork pod: its node's)."""
    if (pod.get("spec") or {}).get("hostNetwork"):
        return str((pod.get("status") or {}).get("hostIP") or NODE_IP)
    h = _digest(pod["metadata"].get("uid", ""))
    return f"127.{1 + h[0] % 254}.{h[1]}.{1 + h[2] % 254}"


def unserved_ip(service: dict[str, Any]) -> str:
    """A ClusterIP Service's address while it has no endpoints: 127.0.x.y (x >= 1), which no
    pod has, so connecting is refused as kube-proxy's reject rule answers."""
    h = _digest(service["metadata"].get("uid", ""))
    return f"127.0.{1 + h[0] % 254}.{1 + h[1] % 254}"


def torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def _terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def endpoints(service: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    """The addresses of the pods the Service's selector selects in its namespace that are
    bound to the node and not finished (nor terminating, unless publishNotReadyAddresses),
    by pod name; Ready or not (see the module docstring). No selector: none."""
    spec = service.get("spec") or {}
    selector: dict[str, str] = spec.get("selector") or {}
    if not selector:
        return []
    namespace = service["metadata"]["namespace"]
    terminating_too = bool(spec.get("publishNotReadyAddresses"))
    out = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if meta.get("namespace") != namespace or any(
            labels.get(k) != v for k, v in selector.items()
        ):
            continue
        if not (pod.get("spec") or {}).get("nodeName") or _terminal(pod):
            continue
        if meta.get("deletionTimestamp") and not terminating_too:
            continue
        out.append(pod_ip(pod))
    return out


def dns_records(
    services: list[dict[str, Any]], pods: list[dict[str, Any]]
) -> dict[str, dict[str, list[str]]]:
    """What cluster DNS answers, by namespace and name: a Service's endpoints (a ClusterIP
    one without any: its unserved address), and `<hostname>.<subdomain>` -> the pod's
    address for bound pods under a headless Service (kept until the pod is gone, finished
    or not: a JobSet's Service publishes not-ready addresses, and never flaky)."""
    table: dict[str, dict[str, list[str]]] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue  # a CNAME to a name outside the cluster: not simulated
        addresses = endpoints(svc, pods)
        if not addresses and spec.get("clusterIP") != "None":
            addresses = [unserved_ip(svc)]
        table.setdefault(svc["metadata"]["namespace"], {})[svc["metadata"]["name"]] = addresses
    for pod in pods:
        spec = pod.get("spec") or {}
        ns = pod["metadata"].get("namespace", "")
        hostname, subdomain = spec.get("hostname"), spec.get("subdomain")
        if not (hostname and subdomain and spec.get("nodeName")):
            continue
        if subdomain not in table.get(ns, {}):
            continue
        table[ns][f"{hostname}.{subdomain}"] = [pod_ip(pod)]
    return table


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class MountError(Exception):
    """A volume cannot be set up yet (e.g. its ConfigMap does not exist)."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(message)
        self.volume = volume


class ConfigError(Exception):
    """The container's configuration cannot be made yet (CreateContainerConfigError)."""


#: IsEnvVarName (strict: RelaxedEnvironmentVariableValidation is off in v1.31).
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


class _Sources:
    """The ConfigMaps and Secrets one container's env reads, each fetched once."""

    def __init__(self, namespace: str, lookup: ObjectLookup) -> None:
        self.namespace = namespace
        self.lookup = lookup
        self._seen: dict[tuple[str, str], dict[str, str]] = {}

    def get(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        """A source's data as text; None when it is missing and optional, else a
        ConfigError `secret "hf" not found` (the kubelet's managers name it singular)."""
        if (kind, name) in self._seen:
            return self._seen[(kind, name)]
        obj = self.lookup("secrets" if kind == "secret" else "configmaps", self.namespace, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        if kind == "secret":
            data = {k: v.decode(errors="replace") for k, v in secret_data(obj).items()}
        else:
            data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        self._seen[(kind, name)] = data
        return data


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined names are replaced, $$ escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


@dataclass
class Sandbox:
    """A pod's directories: one per volume, a site dir, a working dir, a rootfs; which
    volumes are read-only, and the size of its Memory emptyDirs."""

    root: Path
    volumes: dict[str, Path] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"


#: (resource plural, namespace, name) -> the object or None: what the kubelet reads.
ObjectLookup = Callable[[str, str, str], "dict[str, Any] | None"]
#: Volume sources the kubelet always mounts read-only.
READ_ONLY_SOURCES = ("configMap", "secret", "downwardAPI", "projected")


class ContainerRuntime:
    """Builds sandboxes and starts container processes."""

    def __init__(self, root: Path, torchrun: bool | None = None) -> None:
        self.root = root
        self.hosts_file = root / "services.json"
        self._hosts_lock = threading.Lock()
        self._written: Any = None
        self.torchrun = torch_importable() if torchrun is None else torchrun
        root.mkdir(parents=True, exist_ok=True)
        self.write_services({})

    def write_services(self, table: dict[str, dict[str, list[str]]]) -> None:
        """The names sitecustomize resolves (`dns_records`); replaced atomically, and only
        when it changes."""
        with self._hosts_lock:
            if table == self._written:
                return
            tmp = self.hosts_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(table))
            os.replace(tmp, self.hosts_file)
            self._written = table

    def volume_path(self, volume: str) -> Path:
        """A persistent volume's data (`pvc-<claim uid>`): one directory whatever mounts it."""
        return self.root / "persistentvolumes" / volume

    def remove_volume(self, volume: str) -> None:
        if volume:
            shutil.rmtree(self.volume_path(volume), ignore_errors=True)

    def create_sandbox(
        self, pod: dict[str, Any], lookup: ObjectLookup, node_memory: Decimal | None = None
    ) -> Sandbox:
        meta = pod["metadata"]
        sandbox = Sandbox(self.root / "pods" / meta["uid"])
        for sub in ("site", "rootfs", "home", "tmp", "volumes"):
            (sandbox.root / sub).mkdir(parents=True, exist_ok=True)
        (sandbox.site / "sitecustomize.py").write_text(
            SITECUSTOMIZE.format(
                hosts=str(self.hosts_file),
                namespace=meta["namespace"],
                hostname=(pod.get("spec") or {}).get("hostname") or meta["name"],
                pod_ip=pod_ip(pod),
            )
        )
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            if any(source in vol for source in READ_ONLY_SOURCES):
                sandbox.read_only.add(name)
            if "hostPath" in vol:
                sandbox.volumes[name] = Path(vol["hostPath"].get("path", "/"))
                continue
            if "persistentVolumeClaim" in vol:
                sandbox.volumes[name] = self._claim_directory(vol, meta["namespace"], lookup)
                if vol["persistentVolumeClaim"].get("readOnly"):
                    sandbox.read_only.add(name)
                continue
            directory = sandbox.root / "volumes" / name
            directory.mkdir(parents=True, exist_ok=True)
            sandbox.volumes[name] = directory
            empty_dir = vol.get("emptyDir")
            if isinstance(empty_dir, dict) and empty_dir.get("medium") == "Memory":
                memory = node_memory if node_memory is not None else Decimal(32 * 1024**3)
                sandbox.sizes[name] = podfs.memory_volume_size(vol, pod, memory)
            if "configMap" in vol or "secret" in vol:
                self._materialise(vol, directory, meta["namespace"], lookup)
        return sandbox

    def _claim_directory(self, vol: dict[str, Any], namespace: str, lookup: ObjectLookup) -> Path:
        """The bound volume's directory; a claim gone or unbound (the kubelet waits for it
        without an event) is a MountError without a message."""
        claim = lookup(
            "persistentvolumeclaims", namespace, vol["persistentVolumeClaim"].get("claimName", "")
        )
        if claim is None or not storage.bound(claim):
            raise MountError(vol["name"], "")
        directory = self.volume_path(storage.volume_name(claim))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    @staticmethod
    def _materialise(
        vol: dict[str, Any], directory: Path, namespace: str, lookup: ObjectLookup
    ) -> None:
        """A configMap or secret volume's keys as files (secret.go, configmap.go)."""
        if "secret" in vol:
            source, what, key_word = vol["secret"], "secret", "secret key"
            name = source.get("secretName", "")
            obj = lookup("secrets", namespace, name)
            data = secret_data(obj) if obj is not None else {}
        else:
            source, what, key_word = vol["configMap"], "configmap", "config key"
            name = source.get("name", "")
            obj = lookup("configmaps", namespace, name)
            data = configmap_data(obj) if obj is not None else {}
        prefix = f'MountVolume.SetUp failed for volume "{vol["name"]}" : '
        if obj is None:
            if source.get("optional"):
                return
            raise MountError(vol["name"], f'{prefix}{what} "{name}" not found')
        mode = int(source.get("defaultMode", 420))
        files: dict[str, tuple[bytes, int]] = {}
        items = source.get("items")
        if items:
            for item in items:
                key = item.get("key", "")
                if key not in data:
                    if source.get("optional"):
                        continue
                    reference = "configmap references" if what == "configmap" else "references"
                    raise MountError(
                        vol["name"], f"{prefix}{reference} non-existent {key_word}: {key}"
                    )
                files[item.get("path", key)] = (data[key], int(item.get("mode", mode)))
        else:
            files = {key: (content, mode) for key, content in data.items()}
        for rel, (content, file_mode) in files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.chmod(0o600)
            path.write_bytes(content)
            path.chmod(file_mode & 0o777)

    # -- processes ----------------------------------------------------------------------
    @staticmethod
    def _mount_table(container: dict[str, Any], sandbox: Sandbox) -> list[podfs.Mount]:
        """The container's mounts: path, directory (subPath made), read-only, tmpfs size."""
        out = []
        for m in container.get("volumeMounts") or []:
            name = m.get("name", "")
            local = sandbox.volumes.get(name)
            if local is None:
                continue
            if m.get("subPath"):
                local = local / m["subPath"]
                local.mkdir(parents=True, exist_ok=True)
            read_only = bool(m.get("readOnly")) or name in sandbox.read_only
            path = m["mountPath"].rstrip("/") or "/"
            out.append(podfs.Mount(path, str(local), read_only, sandbox.sizes.get(name)))
        out.sort(key=lambda m: len(m.path), reverse=True)
        return out

    @classmethod
    def _mounts(cls, container: dict[str, Any], sandbox: Sandbox) -> list[tuple[str, str]]:
        return [(m.path, m.local) for m in cls._mount_table(container, sandbox)]

    @classmethod
    def local_path(cls, container: dict[str, Any], sandbox: Sandbox, path: str) -> Path | None:
        """Where `path` (as the container sees it) is on this machine: under one of the
        container's mounts, else None (the image's own filesystem is not simulated)."""
        for mount_path, local in cls._mounts(container, sandbox):  # longest first
            if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                return Path(local) / path[len(mount_path) :].lstrip("/")
        return None

    @staticmethod
    def _rewrite(text: str, mounts: list[tuple[str, str]]) -> str:
        for mount_path, local in mounts:
            pattern = r"(?<![\w./-])" + re.escape(mount_path) + r"(?=/|$|[\s\"'`;:,)\]])"
            text = re.sub(pattern, local.replace("\\", "\\\\"), text)
        return text

    def command(
        self, container: dict[str, Any], sandbox: Sandbox, env: dict[str, str]
    ) -> list[str]:
        argv = [expand(a, env) for a in (container.get("command") or [])]
        argv += [expand(a, env) for a in (container.get("args") or [])]
        if not argv:
            return [sys.executable, "-c", ""]
        mounts = self._mounts(container, sandbox)
        argv = [self._rewrite(a, mounts) for a in argv]
        if _PYTHON.match(os.path.basename(argv[0])):
            argv[0] = sys.executable
        elif argv[0] == "torchrun":
            if not self.torchrun:
                raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH")
            argv = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
        return argv

    def working_dir(self, container: dict[str, Any], sandbox: Sandbox) -> Path:
        wd: str = container.get("workingDir") or ""
        if not wd:
            return sandbox.rootfs
        rewritten = self._rewrite(wd, self._mounts(container, sandbox))
        if rewritten != wd:
            return Path(rewritten)
        local = sandbox.rootfs / wd.lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        return local

    def environment(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        sandbox: Sandbox,
        lookup: ObjectLookup,
    ) -> dict[str, str]:
        """The container's environment (makeEnvironmentVariables: envFrom, then env), and
        its mounts for Python (podfs.py); ConfigError when a source is missing."""
        meta = pod["metadata"]
        path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        bindir = os.path.dirname(sys.executable)
        if path.split(os.pathsep)[0] != bindir:
            path = bindir + os.pathsep + path
        base = {
            "PATH": path,
            "HOME": str(sandbox.root / "home"),
            "TMPDIR": str(sandbox.root / "tmp"),
            "LANG": "C.UTF-8",
            "HOSTNAME": (pod.get("spec") or {}).get("hostname") or meta["name"],
        }
        sources = _Sources(meta["namespace"], lookup)
        env: dict[str, str] = {}
        for src in container.get("envFrom") or []:
            for kind, ref in (
                ("configmap", src.get("configMapRef")),
                ("secret", src.get("secretRef")),
            ):
                if not isinstance(ref, dict):
                    continue
                data = sources.get(kind, ref.get("name", ""), bool(ref.get("optional")))
                for k, v in (data or {}).items():
                    key = src.get("prefix", "") + k
                    if _ENV_NAME.fullmatch(key):  # others are skipped (and an event said so)
                        env[key] = v
        for var in container.get("env") or []:
            name = var.get("name")
            if not name:
                continue
            if "value" in var:
                env[name] = expand(str(var["value"]), {**base, **env})
            elif "valueFrom" in var:
                value = self._value_from(pod, var["valueFrom"], sources)
                if value is not None:
                    env[name] = value
        table = self._mount_table(container, sandbox)
        mounts = [(m.path, m.local) for m in table]
        env = {k: self._rewrite(v, mounts) for k, v in env.items()}
        merged = {**base, **env}
        site = sandbox.root / "containers" / str(container.get("name", ""))
        podfs.write_module(site, table, str(self.root))
        user_path = merged.get("PYTHONPATH")
        merged["PYTHONPATH"] = os.pathsep.join(
            [str(site), str(sandbox.site), *([user_path] if user_path else [])]
        )
        return merged

    @staticmethod
    def _value_from(pod: dict[str, Any], source: dict[str, Any], sources: _Sources) -> str | None:
        meta = pod["metadata"]
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath", "")
            m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
            if m:
                return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
            return {
                "metadata.name": meta.get("name"),
                "metadata.namespace": meta.get("namespace"),
                "metadata.uid": meta.get("uid"),
                "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
                "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
                "status.podIP": pod_ip(pod),
                "status.hostIP": str((pod.get("status") or {}).get("hostIP") or NODE_IP),
            }.get(path)
        for kind, field_name in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
            ref = source.get(field_name)
            if not isinstance(ref, dict):
                continue
            optional = bool(ref.get("optional"))
            name, key = ref.get("name", ""), ref.get("key", "")
            data = sources.get(kind, name, optional)
            if data is None:
                return None
            if key not in data:
                if optional:
                    return None
                what = "ConfigMap" if kind == "configmap" else "Secret"
                raise ConfigError(f"couldn't find key {key} in {what} {meta['namespace']}/{name}")
            return data[key]
        return None

    def spawn(
        self, pod: dict[str, Any], container: dict[str, Any], sandbox: Sandbox, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start the process in its own session, so a kill reaches all its children."""
        return subprocess.Popen(
            self.command(container, sandbox, env),
            env=env,
            cwd=str(self.working_dir(container, sandbox)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def remove_sandbox(self, uid: str) -> None:
        shutil.rmtree(self.root / "pods" / uid, ignore_errors=True)
