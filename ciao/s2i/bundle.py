"""What travels with a cell's code: the notebook's definitions, values and files.

A cell that needs nothing from the notebook ships as it always has: code.py, run as is. One
that carries definitions or values, or takes files along, also ships main.py (the
standard-library bootstrap in carry_main.py), carried.json (what to run before the code,
from which cell), the values as value-N.pkl, and the files as files.tar.gz; the replicas
then run main.py. Every S2I provider ships the same bundle its own way (a ConfigMap, an
image, the run's directory), so what runs is the same everywhere. A Katib trial's code
(`Parameter.metrics_file`) always runs main.py, which also appends its metric lines to the
file Katib's File collector reads (carried.json's `metrics`: the file, Katib's filter).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ciao.constants import CODE_FILE, KATIB_FILTER
from ciao.interpreter.carry import Carried, Chunk
from ciao.interpreter.requirements import requirement_name
from ciao.interpreter.types import Parameter
from ciao.s2i import files as notebook_files
from ciao.s2i.files import ShippedFile

MAIN_FILE = "main.py"
MANIFEST_FILE = "carried.json"
FILES_ARCHIVE = "files.tar.gz"
#: Ciao's own modules a cell may import in its replicas, and the file each travels as:
#: where Ciao is not installed (a cluster's image), main.py provides them from it.
CIAO_MODULES = {"ciao.hp": "ciao_hp.py"}


def ciao_module_source(module: str) -> str:
    """The text of one of CIAO_MODULES (standard library only, so it runs anywhere)."""
    return (Path(__file__).parent.parent / (module.split(".", 1)[1] + ".py")).read_text(
        encoding="utf-8"
    )


def bootstrap_source() -> str:
    """carry_main.py's text: what runs first in every replica of a carrying cell."""
    return (Path(__file__).with_name("carry_main.py")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Bundle:
    """A cell's code and what travels with it. `texts` are written as they are, `blobs`
    (pickled values) are copied from this machine, `files` come from the notebook's folder
    (packed in files.tar.gz where they must travel; the local backend runs beside them)."""

    entry: str
    texts: Mapping[str, str]
    blobs: Mapping[str, Path] = field(default_factory=dict)
    files: tuple[ShippedFile, ...] = ()
    directory: str = "."
    carried: Carried | None = None

    @property
    def carries(self) -> bool:
        return self.entry == MAIN_FILE

    def requirements(self, asked: list[str]) -> list[str]:
        """The cell's requirements, and cloudpickle when a carried value was pickled by
        value (a function or class of the notebook's): a stock image has none to load it."""
        needs = any(b"cloudpickle" in path.read_bytes() for path in self.blobs.values())
        named = {requirement_name(r) for r in asked}
        if needs and "cloudpickle" not in named:  # the version that pickled them loads them
            return [*asked, f"cloudpickle=={metadata.version('cloudpickle')}"]
        return list(asked)

    def digest(self) -> str:
        """A hash of everything in the bundle, file contents included (image tags)."""
        digest = hashlib.sha256()
        for name in sorted(self.texts):
            digest.update(f"{name}\0{self.texts[name]}\0".encode())
        for name in sorted(self.blobs):
            digest.update(f"{name}\0".encode() + _file_digest(self.blobs[name]))
        for file in self.files:
            digest.update(f"{file.path}\0".encode())
            digest.update(_file_digest(Path(self.directory, file.path)))
        return digest.hexdigest()

    def sizes(self) -> dict[str, int]:
        """Bytes of each part: the code (and the bootstrap), each value, the files."""
        sizes = {name: len(text.encode("utf-8")) for name, text in self.texts.items()}
        sizes.update({name: path.stat().st_size for name, path in self.blobs.items()})
        if self.files:
            sizes[FILES_ARCHIVE] = notebook_files.total_size(self.files)
        return sizes

    def payload(self, pack_files: bool) -> dict[str, str | bytes]:
        """Every file as it is shipped beside the code (reads the values and the files)."""
        out: dict[str, str | bytes] = dict(self.texts)
        out.update({name: path.read_bytes() for name, path in self.blobs.items()})
        if pack_files and self.files:
            out[FILES_ARCHIVE] = notebook_files.archive(self.directory, self.files)
        return out

    def payload_names(self, pack_files: bool) -> list[str]:
        """The names `payload` gives, without reading anything."""
        names = [*self.texts, *self.blobs]
        return names + [FILES_ARCHIVE] if pack_files and self.files else names

    def summary(self) -> str:
        """The cell's one line: what travels (empty when nothing does)."""
        parts = []
        if self.carried is not None and not self.carried.empty:
            parts.append(f"carried: {self.carried.summary()}")
        if self.files:
            modules = [f.path for f in self.files if f.reason == "module"]
            asked = [f.path for f in self.files if f.reason != "module"]
            size = size_text(notebook_files.total_size(self.files))
            named = [*(f"{m} (module)" for m in modules), *asked]
            more = f", ... {len(named) - 8} more" if len(named) > 8 else ""
            shown = ", ".join(named[:8]) + more
            parts.append(f"files: {shown} ({size})")
        return "; ".join(parts)

    def describe(self) -> dict[str, Any]:
        """What travels, in full, for %dryrun."""
        carried = self.carried
        return {
            "entry": self.entry,
            "imports": [_chunk_view(c) for c in carried.imports] if carried else [],
            "definitions": [_chunk_view(c) for c in carried.sources] if carried else [],
            "values": [
                {"name": v.name, "cell": v.label, "type": v.type_name, "bytes": v.size}
                for v in (carried.values if carried else ())
            ],
            "files": [{"path": f.path, "bytes": f.size, "why": f.reason} for f in self.files],
        }


def bundle_of(parameter: Parameter, pack_files: bool = True) -> Bundle:
    """The cell's bundle: its code alone when nothing travels with it."""
    carried = parameter.carried
    directory = parameter.directory
    sources = [parameter.code]
    if carried is not None:
        sources += [c.source for c in (*carried.imports, *carried.sources)]
    modules = notebook_files.imported_modules(sources)
    if carried is not None:  # a value of a class from utils.py needs utils.py to load
        modules |= {module for value in carried.values for module in value.modules}
    uses_ciao = "ciao" in modules  # `import ciao.hp`: Ciao's module travels, not a folder's
    found = notebook_files.collect(directory, parameter.files, modules - {"ciao"})
    texts = {CODE_FILE: parameter.code}
    tees = bool(parameter.metrics_file)  # a Katib trial's: main.py feeds its collector
    if (carried is None or carried.empty) and not found and not uses_ciao and not tees:
        return Bundle(CODE_FILE, texts, directory=directory, carried=carried)
    values = carried.values if carried is not None else ()
    blobs = {f"value-{i}.pkl": Path(v.path) for i, v in enumerate(values)}
    manifest: dict[str, Any] = {
        "code": CODE_FILE,
        "label": carried.label if carried is not None else "",
        "steps": _steps(carried, list(blobs)) if carried else [],
        "cells": _carried_lines(carried) if carried else {},
        "files": FILES_ARCHIVE if (found and pack_files) else "",
        "shipped": [{"path": f.path, "bytes": f.size} for f in found],
        "modules": dict(CIAO_MODULES) if uses_ciao else {},
        "metrics": {"file": parameter.metrics_file, "filter": KATIB_FILTER} if tees else {},
    }
    if uses_ciao:
        texts.update({file: ciao_module_source(m) for m, file in CIAO_MODULES.items()})
    texts[MAIN_FILE] = bootstrap_source()
    texts[MANIFEST_FILE] = json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
    return Bundle(MAIN_FILE, texts, blobs, found, directory, carried)


def _carried_lines(carried: Carried) -> dict[str, str]:
    """Each cell's text as tracebacks show it: the lines of what travels, the others
    blank (another line of the cell, a token say, never leaves the notebook)."""
    cells: dict[str, list[str]] = {}
    for chunk in (*carried.imports, *carried.sources):
        if not chunk.count:
            continue  # found in the session alone: no cell to show
        original = carried.cells.get(chunk.count, chunk.source).split("\n")
        lines = cells.setdefault(chunk.label, [""] * len(original))
        for offset in range(len(chunk.source.split("\n"))):
            index = chunk.line - 1 + offset
            if index < len(lines):
                lines[index] = original[index]
    return {label: "\n".join(lines) for label, lines in cells.items()}


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _steps(carried: Carried, files: list[str]) -> list[dict[str, Any]]:
    """What main.py runs before the cell, in the order the notebook made it: imports,
    functions and classes at their cell and line, a value after everything its cell and
    those before it defined (so a value of a notebook class is an instance of the carried
    class, and a function's default may be a value); the session's own last."""
    last = float("inf")
    steps: list[tuple[tuple[float, float, int], dict[str, Any]]] = [
        ((c.count, c.line, 0), {"label": c.label, "line": c.line, "source": c.source})
        for c in (*carried.imports, *carried.sources)
    ]
    steps += [
        (
            (v.count, v.line, 1) if v.count is not None else (last, last, 1),
            {"name": v.name, "label": v.label, "file": name},
        )
        for name, v in zip(files, carried.values, strict=True)
    ]
    return [step for _, step in sorted(steps, key=lambda s: s[0])]


def _chunk_view(chunk: Chunk) -> dict[str, Any]:
    return {"names": list(chunk.names), "cell": chunk.label, "line": chunk.line}


def size_text(size: float) -> str:
    """`512 bytes`, `1.5 MiB`: sizes as people read them."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"
