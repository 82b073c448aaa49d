"""The job's entry point when a cell carries things from the notebook (shipped as main.py).

Never imported by Ciao: its text travels beside the cell's code.py and runs first in every
replica, with only the standard library (cloudpickle only if a carried value needs it). It
reads carried.json beside it, then:
1. unpacks the shipped files (files.tar.gz) into a writable working directory, or, when
   none were packed (the local backend), stays in the notebook's folder, where the kernel
   started it; either way that directory is first on sys.path, so `import utils` works;
   where Ciao is not installed, it provides Ciao's modules the cell imports (`ciao.hp`,
   shipped as ciao_hp.py);
2. runs the carried statements (imports, functions, classes), each compiled as the cell
   it came from, so a traceback through one reads `In [2], line 7`, and loads the carried
   values (value-N.pkl), in the order the notebook made them: a value of a class the
   notebook defined is an instance of the carried class itself;
3. runs the cell's own code.py as `__main__`, compiled as its own cell.
In a Katib trial (carried.json's `metrics`), every line the process writes that holds a
metric in Katib's format is also appended, timestamped, to the file Katib's File metrics
collector reads, where that file's folder exists (Katib mounts it in the primary container
only): the collector parses the file and the container's own log stays as it is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import linecache
import os
import pickle
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import traceback
import types
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))


def working_directory(manifest: dict[str, Any]) -> str:
    """Where the replica runs: the shipped files unpacked (once per node and content, so
    the processes of one pod share them and no stale copy is ever used), or the folder it
    started in."""
    archive = manifest.get("files")
    if not archive:
        return os.getcwd()
    path = os.path.join(HERE, archive)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    parent = os.environ.get("CIAO_WORKDIR") or tempfile.gettempdir()
    target = os.path.join(parent, "ciao-work-" + digest.hexdigest()[:16])
    if not os.path.isdir(target):
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".ciao-unpack-", dir=parent)
        with tarfile.open(path) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:  # Python < 3.12 without the backport: Ciao wrote this archive itself
                tar.extractall(staging)  # noqa: S202
        try:
            os.rename(staging, target)
        except OSError:  # another process of this node won: theirs is the same content
            shutil.rmtree(staging, ignore_errors=True)
    return target


def provide_modules(modules: dict[str, str]) -> None:
    """Ciao's own modules the cell imports (`ciao.hp` from ciao_hp.py), where the image
    has no Ciao installed; an installed Ciao is used as it is (locally, the kernel's)."""
    for name, file in modules.items():
        try:
            importlib.import_module(name)
            continue
        except ImportError:
            pass
        package, _, leaf = name.rpartition(".")
        parent = sys.modules.get(package)
        if parent is None:
            parent = types.ModuleType(package)
            parent.__path__ = []  # a package, whose modules are these files
            sys.modules[package] = parent
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        setattr(parent, leaf, module)


class MetricTee:
    """A text stream (sys.stdout, sys.stderr) whose whole lines holding a metric (`filter`
    finds a number) are also appended to `path`, each prefixed with its RFC 3339 time as
    Katib's collector reads it; everything else is the stream's own."""

    #: A line longer than this (a dump, not a metric) is not kept whole.
    LONGEST = 4096

    def __init__(self, stream: Any, path: str, pattern: str, lock: threading.Lock) -> None:
        self._stream = stream
        self._path = path
        self._filter = re.compile(pattern)
        self._lock = lock
        self._partial = ""

    def write(self, text: str) -> int:
        written: int = self._stream.write(text)
        with self._lock:
            self._partial += text
            if "\n" not in self._partial:
                self._partial = self._partial[-self.LONGEST :]
                return written
            *lines, self._partial = self._partial.split("\n")
            self._partial = self._partial[-self.LONGEST :]
            found = [line.rsplit("\r", 1)[-1] for line in lines]
            found = [line for line in found if self._is_metric(line)]
            if found:
                self._append(found)
        return written

    def _is_metric(self, line: str) -> bool:
        if "=" not in line or len(line) > self.LONGEST:
            return False
        for _, value, _, _ in self._filter.findall(line):
            try:
                float(value)
                return True
            except ValueError:
                continue
        return False

    def _append(self, lines: list[str]) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = "".join(f"{stamp} {line}\n" for line in lines)
        try:
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(text)  # one write: the pod's processes append whole lines
        except OSError as exc:
            self._stream.write(f"ciao: cannot append metrics to {self._path}: {exc}\n")
            self._append = lambda lines: None  # type: ignore[method-assign]  # said once

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tee_metrics(metrics: dict[str, str]) -> None:
    """Katib's collector reads the metric lines from `metrics["file"]`, if this replica is
    the one it watches (the file's folder is mounted there); else nothing changes."""
    path = metrics.get("file")
    if not path or not os.path.isdir(os.path.dirname(path)):
        return
    try:  # there from the start: a collector finding no file fails the pod, not the trial
        open(path, "a").close()  # noqa: SIM115
    except OSError as exc:
        sys.stderr.write(f"ciao: cannot append metrics to {path}: {exc}\n")
        return
    lock = threading.Lock()
    sys.stdout = MetricTee(sys.stdout, path, metrics["filter"], lock)
    sys.stderr = MetricTee(sys.stderr, path, metrics["filter"], lock)


def remember(label: str, text: str) -> None:
    """Let tracebacks show the carried lines (linecache serves them by the cell's name)."""
    lines = [line + "\n" for line in text.split("\n")]
    linecache.cache[label] = (len(text), None, lines, label)


def run_statement(chunk: dict[str, Any], namespace: dict[str, Any]) -> None:
    padding = "\n" * (chunk["line"] - 1)  # the line numbers of the cell it came from
    exec(compile(padding + chunk["source"], chunk["label"], "exec"), namespace)


def load_value(value: dict[str, Any], namespace: dict[str, Any]) -> None:
    path = os.path.join(HERE, value["file"])
    try:
        with open(path, "rb") as handle:
            namespace[value["name"]] = pickle.load(handle)
    except Exception as exc:
        where = f" (made in {value['label']})" if value.get("label") else ""
        raise RuntimeError(
            f"ciao: the notebook's value {value['name']}{where} could not be loaded here: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def excepthook_for(labels: tuple[str, ...]) -> Callable[..., None]:
    """Python's traceback, with the notebook's cells named as a notebook names them."""

    def excepthook(kind: Any, error: Any, tb: Any) -> None:
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # the bootstrap's own frames say nothing about the cell
        for line in traceback.format_exception(kind, error, tb):
            for label in labels:
                line = line.replace(f'File "{label}", line ', f"{label}, line ")
            sys.stderr.write(line)
        sys.stderr.flush()

    return excepthook


def main(name: str) -> None:
    """Run the cell as module `name` (`__main__`; `__mp_main__` in a process that
    multiprocessing spawned, which runs the cell's top level again, as for a script)."""
    with open(os.path.join(HERE, "carried.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    tee_metrics(dict(manifest.get("metrics") or {}))
    directory = working_directory(manifest)
    os.chdir(directory)
    # The working directory first, and not this script's own folder, whose code.py would
    # stand for the standard library's `code` module (pdb imports it).
    rest = [p for p in sys.path if os.path.abspath(p or ".") not in (HERE, directory)]
    sys.path[:] = rest if directory == HERE else [directory, *rest]
    provide_modules(dict(manifest.get("modules") or {}))
    label = manifest.get("label") or manifest["code"]
    with open(os.path.join(HERE, manifest["code"]), encoding="utf-8") as handle:
        code = handle.read()
    cells = dict(manifest.get("cells", {}))
    cells[label] = code
    for cell, text in cells.items():
        remember(cell, text)
    sys.excepthook = excepthook_for(tuple(cells))
    # A module of its own, registered as the main one, so pickle finds what the cell
    # defines (`__main__.Net`) and the bootstrap's own names stay out of the cell's way.
    module = types.ModuleType(name)
    module.__file__ = os.path.abspath(__file__)  # what a spawned process runs again
    sys.modules[name] = module
    if name == "__mp_main__":
        sys.modules["__main__"] = module
    namespace = module.__dict__
    for step in manifest.get("steps", []):  # in the order the notebook made them
        if "file" in step:
            load_value(step, namespace)
        else:
            run_statement(step, namespace)
    exec(compile(code, label, "exec"), namespace)
    if name == "__mp_main__":
        # multiprocessing makes the spawned process's main module from this script's own
        # globals once it has run (runpy.run_path): the cell's names must be among them.
        globals().update({k: v for k, v in namespace.items() if not k.startswith("__")})


if __name__ in ("__main__", "__mp_main__"):
    main(__name__)
