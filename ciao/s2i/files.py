"""The notebook's files a job takes along: `%files` (and `files:` of the config), and the
modules beside the notebook that the cell (or what it carries) imports.

Everything is found relative to the notebook's folder and stays inside it: an entry that
points outside, or a symlink that leads out, is refused or skipped, never followed. Folders
are walked honouring `.gitignore` and `.ciaoignore` at the notebook's folder (with git's own
matching rules, by pathspec), and never enter `.git`, `__pycache__` or
`.ipynb_checkpoints`. A file named on its own travels even when `.gitignore` lists it (data
often is); `.ciaoignore` is Ciao's own and always wins.
"""

from __future__ import annotations

import ast
import io
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ciao.errors import CiaoError

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

#: A folder's ignore rules (None: it has none).
Spec = Optional["GitIgnoreSpec"]

#: Folders never walked into.
SKIPPED_DIRS = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".venv", "node_modules"})
IGNORE_FILES = (".gitignore", ".ciaoignore")


@dataclass(frozen=True)
class ShippedFile:
    """One file that travels: its path relative to the notebook's folder, and its size."""

    path: str
    size: int
    #: Why it travels: "files" (asked for) or "module" (imported by the cell).
    reason: str = "files"


class FilesError(CiaoError):
    """A `%files` entry that cannot travel."""

    ename = "FilesError"


def collect(
    directory: str | Path, entries: Sequence[str], modules: Iterable[str] = ()
) -> tuple[ShippedFile, ...]:
    """The files `entries` name (files, folders, globs) and the local `modules` (imported
    names) resolve to, in `directory`; each once, sorted."""
    root = Path(directory).resolve()
    git, ciao = _ignore_specs(root)
    found: dict[str, ShippedFile] = {}
    for entry in entries:
        matches = _expand(root, entry)
        if not matches:
            raise FilesError(f"%files: {entry!r} matches nothing in the notebook's folder {root}")
        globbed = any(ch in entry for ch in "*?[")
        # What .gitignore says of the entry itself the user overrode by naming it (data
        # folders often are ignored): its rules still apply below it, unless they ignore
        # the entry as a whole.
        base = _entry_base(root, entry)
        rules = None if base and _ignored_dir(git, None, base) else git
        shipped = 0
        for path in matches:
            named = path.is_file() and not globbed
            for file in _walk(root, path, rules, ciao, named=named):
                found.setdefault(file.path, file)
                shipped += 1
        if not shipped:
            raise FilesError(
                f"%files: {entry!r} names no file that travels: everything in it is listed in "
                f"{' or '.join(IGNORE_FILES)}"
            )
    for module in _local_modules(root, modules):
        for file in _walk(root, module, git, ciao, named=True, reason="module"):
            found.setdefault(file.path, ShippedFile(file.path, file.size, "module"))
    return tuple(found[key] for key in sorted(found))


def total_size(files: Iterable[ShippedFile]) -> int:
    return sum(f.size for f in files)


def largest(files: Iterable[ShippedFile], count: int = 5) -> list[ShippedFile]:
    return sorted(files, key=lambda f: (-f.size, f.path))[:count]


def archive(directory: str | Path, files: Iterable[ShippedFile]) -> bytes:
    """The files as a gzipped tar (what the replicas unpack), read from `directory`."""
    root = Path(directory).resolve()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for file in files:
            path = (root / file.path).resolve()  # a symlink inside the folder: its content
            info = tar.gettarinfo(str(path), arcname=file.path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644 | (info.mode & 0o111)
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def imported_modules(sources: Iterable[str]) -> set[str]:
    """The top-level names of absolute imports in `sources` (`import utils.io` -> utils)."""
    names: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _local_modules(root: Path, names: Iterable[str]) -> list[Path]:
    """The modules and packages in `root` that `names` import, and those they import in
    turn (a package's own files are walked whole)."""
    found: list[Path] = []
    seen: set[str] = set()
    todo = sorted(set(names))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        module, package = root / f"{name}.py", root / name
        if module.is_file() and _inside(root, module):
            found.append(module)
            todo.extend(sorted(imported_modules([_read(module)]) - seen))
        elif package.is_dir() and _inside(root, package) and any(package.glob("*.py")):
            found.append(package)
            sources = [_read(p) for p in package.rglob("*.py") if _inside(root, p)]
            todo.extend(sorted(imported_modules(sources) - seen))
    return found


def _expand(root: Path, entry: str) -> list[Path]:
    text = entry.strip()
    if not text:
        return []
    if os.path.isabs(text) or text.startswith("~"):
        raise FilesError(
            f"%files: {entry!r} is not inside the notebook's folder: name files relative to it"
        )
    if any(ch in text for ch in "*?["):
        matches = sorted(
            path
            for path in root.glob(text.rstrip("/"))
            if not SKIPPED_DIRS.intersection(path.relative_to(root).parts)
        )
    else:
        candidate = root / text
        matches = [candidate] if candidate.exists() or candidate.is_symlink() else []
    for path in matches:
        if not _inside(root, path):
            raise FilesError(
                f"%files: {entry!r} leads outside the notebook's folder {root} "
                f"(to {path.resolve()}); only files inside it travel"
            )
    return matches


def _walk(
    root: Path, path: Path, git: Spec, ciao: Spec, named: bool, reason: str = "files"
) -> Iterable[ShippedFile]:
    if path.is_file():
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        if _ignored(ciao, rel) or (not named and _ignored(git, rel)):
            return
        if _inside(root, path):
            yield ShippedFile(rel, path.stat().st_size, reason)
        return
    for current, dirs, names in os.walk(path, followlinks=False):
        base = Path(current)
        rel_dir = os.path.relpath(base, root).replace(os.sep, "/")
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIPPED_DIRS
            and not (base / d).is_symlink()
            and not _ignored_dir(git, ciao, f"{rel_dir}/{d}")
        )
        for name in sorted(names):
            file = base / name
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if _ignored(git, rel) or _ignored(ciao, rel) or not _inside(root, file):
                continue  # a symlink out of the folder is never followed
            if file.is_file():
                yield ShippedFile(rel, file.stat().st_size, reason)


def _entry_base(root: Path, entry: str) -> str:
    """The folder part of an entry before any glob character (`data/*.csv` -> data)."""
    text = entry.strip().rstrip("/")
    for index, char in enumerate(text):
        if char in "*?[":
            text = text[:index].rsplit("/", 1)[0] if "/" in text[:index] else ""
            break
    else:
        if (root / text).is_file():
            text = text.rsplit("/", 1)[0] if "/" in text else ""
    return text


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _ignore_specs(root: Path) -> tuple[Spec, Spec]:
    import pathspec

    specs: list[Spec] = []
    for name in IGNORE_FILES:
        path = root / name
        lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
        specs.append(pathspec.GitIgnoreSpec.from_lines(lines) if lines else None)
    return specs[0], specs[1]


def _ignored(spec: Spec, relative: str) -> bool:
    return spec is not None and spec.match_file(relative)


def _ignored_dir(git: Spec, ciao: Spec, relative: str) -> bool:
    relative = relative.removeprefix("./")
    return _ignored(git, relative + "/") or _ignored(ciao, relative + "/")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
