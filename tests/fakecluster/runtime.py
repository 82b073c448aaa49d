"""The container runtime stand-in: a pod's container becomes a local process.

What maps to what:
- `command` + `args` ($(VAR) expanded); a leading python/python3[.x] is this interpreter;
  no command: `args` alone; neither: a process that exits 0 at once.
- volumes become directories of a per-pod sandbox: configMap keys are files, emptyDir and
  everything else an empty directory, hostPath the host path itself; any argument, env
  value or workingDir under a volumeMount's mountPath is rewritten to the local directory.
- env: `value`, `valueFrom.fieldRef` (metadata.name/namespace/uid/labels/annotations,
  spec.nodeName, spec.serviceAccountName, status.podIP/hostIP), configMapKeyRef and
  envFrom configMapRef; plus HOSTNAME (spec.hostname, else the pod's name), PATH with this
  interpreter's bin directory first (so `python`, `torchrun` in shell commands are this
  venv's), and a PYTHONPATH with a generated sitecustomize that is the pod's cluster DNS
  inside Python (C-level resolvers are not patched; torch's TCPStore is, see below).
- pod IPs: every pod has an address of its own in 127.0.0.0/8, derived from its UID
  (127.1-254.x.y; a hostNetwork pod has the node's, 127.0.0.1), in status.podIP and the
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

import base64
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
from pathlib import Path
from typing import Any

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
'''

_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
NODE_IP = "127.0.0.1"


def _digest(uid: str) -> bytes:
    return hashlib.sha256(uid.encode()).digest()


def pod_ip(pod: dict[str, Any]) -> str:
    """The pod's own address, 127.1-254.x.y from its UID (a hostNetwork pod: the node's)."""
    if (pod.get("spec") or {}).get("hostNetwork"):
        return NODE_IP
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


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined names are replaced, $$ escapes, others stay."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(sub, text)


@dataclass
class Sandbox:
    """A pod's directories: one per volume, a site dir, a working dir, a rootfs."""

    root: Path
    volumes: dict[str, Path] = field(default_factory=dict)

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"


ConfigMapLookup = Callable[[str, str], "dict[str, Any] | None"]


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

    def create_sandbox(self, pod: dict[str, Any], configmap: ConfigMapLookup) -> Sandbox:
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
            if "hostPath" in vol:
                sandbox.volumes[name] = Path(vol["hostPath"].get("path", "/"))
                continue
            directory = sandbox.root / "volumes" / name
            directory.mkdir(parents=True, exist_ok=True)
            sandbox.volumes[name] = directory
            if "configMap" in vol:
                self._materialise_configmap(vol, directory, meta["namespace"], configmap)
        return sandbox

    @staticmethod
    def _materialise_configmap(
        vol: dict[str, Any], directory: Path, namespace: str, configmap: ConfigMapLookup
    ) -> None:
        source = vol["configMap"]
        cm = configmap(namespace, source.get("name", ""))
        if cm is None:
            if source.get("optional"):
                return
            raise MountError(
                vol["name"],
                f'MountVolume.SetUp failed for volume "{vol["name"]}" : configmap '
                f'"{source.get("name", "")}" not found',
            )
        data: dict[str, str | bytes] = {**(cm.get("data") or {})}
        for key, value in (cm.get("binaryData") or {}).items():
            data[key] = base64.b64decode(value)
        items = source.get("items")
        files = (
            {i["path"]: data[i["key"]] for i in items if i.get("key") in data}
            if items
            else {k: v for k, v in data.items()}
        )
        mode = int(source.get("defaultMode", 420))
        for rel, content in files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            path.chmod(mode & 0o777)

    # -- processes ----------------------------------------------------------------------
    @staticmethod
    def _mounts(container: dict[str, Any], sandbox: Sandbox) -> list[tuple[str, str]]:
        mounts = []
        for m in container.get("volumeMounts") or []:
            local = sandbox.volumes.get(m.get("name", ""))
            if local is None:
                continue
            if m.get("subPath"):
                local = local / m["subPath"]
            mounts.append((m["mountPath"].rstrip("/") or "/", str(local)))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        return mounts

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
        configmap: ConfigMapLookup,
    ) -> dict[str, str]:
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
        env: dict[str, str] = {}
        for src in container.get("envFrom") or []:
            ref = src.get("configMapRef")
            if ref:
                cm = configmap(meta["namespace"], ref.get("name", "")) or {}
                for k, v in (cm.get("data") or {}).items():
                    env[src.get("prefix", "") + k] = v
        for var in container.get("env") or []:
            name = var.get("name")
            if not name:
                continue
            if "value" in var:
                env[name] = expand(str(var["value"]), {**base, **env})
            elif "valueFrom" in var:
                value = self._value_from(pod, var["valueFrom"], configmap)
                if value is not None:
                    env[name] = value
        mounts = self._mounts(container, sandbox)
        env = {k: self._rewrite(v, mounts) for k, v in env.items()}
        merged = {**base, **env}
        user_path = merged.get("PYTHONPATH")
        merged["PYTHONPATH"] = str(sandbox.site) + (os.pathsep + user_path if user_path else "")
        return merged

    @staticmethod
    def _value_from(
        pod: dict[str, Any], source: dict[str, Any], configmap: ConfigMapLookup
    ) -> str | None:
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
                "status.hostIP": NODE_IP,
            }.get(path)
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            cm = configmap(meta["namespace"], ref.get("name", "")) or {}
            return (cm.get("data") or {}).get(ref.get("key", ""))
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
