"""A container's filesystem as its Python sees it: mount paths, read-only mounts, sizes.

A container's processes run on this machine, so `/data` is not where the claim's data is.
runtime.py rewrites mount paths in argv, env and workingDir; this module goes further for
Python: a generated module, imported by the pod's sitecustomize, maps every path under a
volumeMount's mountPath to the volume's directory in Python's file functions (open,
io.open, os.open, stat, lstat, listdir, scandir, access, chdir, mkdir, rmdir, remove,
unlink, rename, replace, utime, chmod, truncate, readlink, statvfs; and so os.path,
pathlib, shutil, glob and os.walk, which call them), so code with `/data/train.csv`
written in it reads the claim. It also makes a read-only mount refuse writes (OSError
EROFS `Read-only file system`, as a read-only bind mount does): mounts with readOnly,
claims mounted readOnly, and Secret and ConfigMap volumes, which the kubelet always mounts
read-only. And it makes os.statvfs (shutil.disk_usage, `df` in Python) report what a
container sees: a `medium: Memory` emptyDir is a tmpfs of the size the kubelet gives it
(calculateEmptyDirMemorySize: the node's allocatable memory, else the pod's memory limit
when every container has one, else the volume's sizeLimit, whichever is smallest), and
`/dev/shm` without a volume is the runtime's default 64 MiB.

torch.save(path) is mapped too (it opens the path in C++).
Not simulated: other C-level file access (numpy.memmap, torch's shared memory) and other
programs than Python see the machine's paths, sizes and permissions; a full tmpfs does not
give ENOSPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

SHM = "/dev/shm"
DEFAULT_SHM_BYTES = 64 * 1024 * 1024
MODULE = "_fakecluster_fs"


@dataclass(frozen=True)
class Mount:
    """One mount of a container: where it shows, which directory holds it."""

    path: str
    local: str
    read_only: bool = False
    size: int | None = None  # a tmpfs's size in bytes


def memory_volume_size(volume: dict[str, Any], pod: dict[str, Any], node_memory: Decimal) -> int:
    """calculateEmptyDirMemorySize (pkg/volume/emptydir)."""
    size = node_memory
    spec = pod.get("spec") or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    limits = [((c.get("resources") or {}).get("limits") or {}).get("memory") for c in containers]
    if containers and all(limit is not None for limit in limits):
        main = sum(
            (
                parse_quantity(c["resources"]["limits"]["memory"])
                for c in spec.get("containers") or []
            ),
            Decimal(0),
        )
        init = max(
            (
                parse_quantity(c["resources"]["limits"]["memory"])
                for c in spec.get("initContainers") or []
            ),
            default=Decimal(0),
        )
        pod_limit = max(main, init)
        if 0 < pod_limit <= size:
            size = pod_limit
    limit = (volume.get("emptyDir") or {}).get("sizeLimit")
    if limit is not None:
        wanted = parse_quantity(limit)
        if 0 < wanted <= size:
            size = wanted
    return int(size)


def write_module(site: Path, mounts: list[Mount], root: str) -> None:
    """The container's `_fakecluster_fs` module, in its own site directory."""
    site.mkdir(parents=True, exist_ok=True)
    table = [[m.path, m.local, m.read_only, m.size] for m in mounts]
    source = TEMPLATE.replace("__MOUNTS__", repr(table)).replace("__ROOT__", repr(root))
    source = source.replace("__SHM__", repr(SHM))
    source = source.replace("__SHM_BYTES__", repr(DEFAULT_SHM_BYTES))
    target = site / f"{MODULE}.py"
    if not target.exists() or target.read_text() != source:
        target.write_text(source)


TEMPLATE = r'''"""fakecluster: this container's mounts in Python's file functions (see podfs.py)."""
import builtins as _builtins
import errno as _errno
import io as _io
import os as _os

# (mount path, local directory, read-only, tmpfs bytes or None), longest path first
_MOUNTS = sorted(
    (tuple(m) for m in __MOUNTS__), key=lambda m: len(m[0]), reverse=True
)
_ROOT = __ROOT__
_SHM = __SHM__
_SHM_BYTES = __SHM_BYTES__
_WRITE_FLAGS = _os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_TRUNC | _os.O_APPEND


def _lookup(path):
    """(mapped path, read-only, tmpfs size, mount) of a path; the path itself if no mount."""
    if isinstance(path, int):
        return path, False, None, None
    try:
        text = _os.fspath(path)
    except TypeError:
        return path, False, None, None
    as_bytes = isinstance(text, bytes)
    if as_bytes:
        text = text.decode(errors="surrogateescape")
    mapped, found = text, None
    if not text.startswith(_ROOT):
        for mount in _MOUNTS:
            where = mount[0]
            if where == "/" or text == where or text.startswith(where + "/"):
                rest = text[len(where):] if where != "/" else text
                mapped, found = mount[1] + rest, mount
                break
    if found is None:
        for mount in _MOUNTS:
            local = mount[1]
            if text == local or text.startswith(local + "/"):
                found = mount
                break
    if as_bytes:
        mapped = mapped.encode(errors="surrogateescape")
    if found is None:
        return mapped, False, None, None
    return mapped, bool(found[2]), found[3], found


def _map(path):
    return _lookup(path)[0]


def _refuse(path):
    raise OSError(_errno.EROFS, "Read-only file system", path)


def _writable(path):
    mapped, read_only, _, _ = _lookup(path)
    if read_only:
        _refuse(path)
    return mapped


_open = _builtins.open


def open(file, mode="r", *args, **kwargs):  # noqa: A001 - builtins.open's stand-in
    mapped, read_only, _, _ = _lookup(file)
    if read_only and any(c in mode for c in "wax+"):
        _refuse(file)
    return _open(mapped, mode, *args, **kwargs)


_builtins.open = open
_io.open = open

_os_open = _os.open


def _open_fd(path, flags, *args, **kwargs):
    mapped, read_only, _, _ = _lookup(path)
    if read_only and flags & _WRITE_FLAGS:
        _refuse(path)
    return _os_open(mapped, flags, *args, **kwargs)


_os.open = _open_fd


def _reading(name):
    real = getattr(_os, name)

    def wrapper(path=".", *args, **kwargs):
        return real(_map(path), *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = real.__doc__
    setattr(_os, name, wrapper)


def _writing(name):
    real = getattr(_os, name)

    def wrapper(path, *args, **kwargs):
        return real(_writable(path), *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = real.__doc__
    setattr(_os, name, wrapper)


def _moving(name):
    real = getattr(_os, name)

    def wrapper(src, dst, *args, **kwargs):
        return real(_writable(src), _writable(dst), *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = real.__doc__
    setattr(_os, name, wrapper)


for _name in ("stat", "lstat", "listdir", "scandir", "access", "chdir", "readlink"):
    _reading(_name)
for _name in ("mkdir", "rmdir", "remove", "unlink", "utime", "chmod", "truncate"):
    _writing(_name)
for _name in ("rename", "replace"):
    _moving(_name)

_statvfs = _os.statvfs


def _used(directory):
    total = 0
    for top, _dirs, files in _os.walk(directory):
        for name in files:
            try:
                total += _os.lstat(_os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def statvfs(path):
    mapped, _, size, mount = _lookup(path)
    real = _statvfs(mapped if not isinstance(mapped, int) else mapped)
    text = path if isinstance(path, str) else None
    if size is None and mount is None and text is not None and (
        text == _SHM or text.startswith(_SHM + "/")
    ):
        size, used = _SHM_BYTES, 0
    elif size is not None:
        used = _used(mount[1])
    else:
        return real
    block = 4096
    blocks = size // block
    free = max(blocks - (used + block - 1) // block, 0)
    return _os.statvfs_result(
        (block, block, blocks, free, free, real.f_files, real.f_ffree, real.f_favail,
         real.f_flag, real.f_namemax)
    )


_os.statvfs = statvfs


def _patch_serialization(module):
    """torch.save(path) hands the path to C++: give it the mapped one."""
    writer = getattr(module, "_open_zipfile_writer_file", None)
    init = getattr(writer, "__init__", None)
    if init is None or getattr(init, "_fakecluster", False):
        return

    def __init__(self, name, *args, **kwargs):
        init(self, _writable(name), *args, **kwargs)

    __init__._fakecluster = True
    writer.__init__ = __init__


class _TorchSerializationHook:
    """Patch torch.serialization as it is imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch.serialization":
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch_serialization(module)

        loader.exec_module = exec_and_patch
        return spec


import sys as _sys  # noqa: E402

_sys.meta_path.insert(0, _TorchSerializationHook())
'''
