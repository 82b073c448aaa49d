"""What a job cell takes from the notebook: the kernel's memory of its cells, and the
session's values.

The kernel alone knows the notebook's cells (in order, and which ran in the session) and
can reach the session; this module asks `ciao.interpreter.carry` what a job cell needs from
source, then asks the session for the values among it, and refuses, before anything is
built or created, a name that is defined nowhere, a value too large to travel, one that
cannot be pickled, and a value only a job or a lost session held.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ciao.errors import CiaoError
from ciao.interpreter.carry import (
    Carried,
    CarriedValue,
    Chunk,
    HistoryCell,
    Needed,
    cell_label,
    needed,
)
from ciao.interpreter.types import Parameter
from ciao.kernel import probe
from ciao.s2i.bundle import size_text

#: How long the session may take to describe and pickle the values a job needs.
PROBE_TIMEOUT = 120.0


class CarryError(CiaoError):
    """A name the job cell uses that cannot travel to its replicas."""

    ename = "CarryError"


class SessionLike(Protocol):
    """What carrying needs of the Python session (ciao.session)."""

    @property
    def running(self) -> bool: ...

    def run_hidden(self, code: str, timeout: float) -> None: ...


class NotebookMemory:
    """Every cell the kernel ran, oldest first, and whether it ran in the session."""

    def __init__(self, session: Callable[[], SessionLike | None], directory: str) -> None:
        self.cells: list[HistoryCell] = []
        self.session = session
        self.directory = directory
        self._scratch: Path | None = None

    @property
    def scratch(self) -> Path:
        """Where the session pickles values for a job (private, made on first use)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="ciao-carry-"))
        return self._scratch

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def record(self, count: int, code: str, in_session: bool) -> None:
        self.cells.append(HistoryCell(count, code, in_session))

    def carry(self, parameter: Parameter, count: int, max_value_bytes: int) -> Carried:
        """What the cell `count` (a job) takes from the cells before it; raises CarryError
        naming each name that cannot travel, and why."""
        history = [cell for cell in self.cells if cell.count < count]
        found = needed(parameter.code, history)
        problems = dict(found.refused)
        values: list[CarriedValue] = []
        imports: list[Chunk] = list(found.imports)
        if found.values:
            by_source = {
                name: _defined_before(found, origin, found.value_lines.get(name, 0))
                for name, origin in found.values.items()
            }
            asked = self._ask_session(parameter, found.values, max_value_bytes, by_source)
            for name, origin in sorted(found.values.items()):
                answer = asked.get(name)
                line = found.value_lines.get(name, 0)
                value, chunk, problem = _decide(name, origin, line, answer, max_value_bytes)
                if value is not None:
                    values.append(value)
                if chunk is not None:
                    imports.append(chunk)
                missing = answer is None or answer.get("kind") == "missing"
                if problem and not (missing and origin is None and found.star_import):
                    problems[name] = problem  # (a star import may well define it)
        if problems:
            raise CarryError(_problems_text(problems, self._session_state()))
        cells = {c.count: c.code for c in history}
        return Carried(
            count=count,
            imports=tuple(imports),
            sources=found.sources,
            values=tuple(values),
            cells=cells,
        )

    def scratch_for(self, name: str) -> Path:
        return self.scratch / name

    def forget(self, name: str) -> None:
        """Remove a job's pickled values once they were shipped (or the cell failed)."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch / name, ignore_errors=True)

    def _session_state(self) -> str:
        session = self.session()
        if session is None:
            return "off"
        return "running" if session.running else "stopped"

    def _ask_session(
        self,
        parameter: Parameter,
        names: dict[str, int | None],
        cap: int,
        by_source: dict[str, list[str]],
    ) -> dict[str, dict[str, object]]:
        session = self.session()
        if session is None or not session.running:
            return {}
        out = self.scratch_for(parameter.generate_name)
        out.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(dir=out))
        asked = ", ".join(sorted(names))
        try:
            session.run_hidden(probe.call(sorted(names), str(out), cap, by_source), PROBE_TIMEOUT)
            answer: dict[str, dict[str, object]] = json.loads((out / "probe.json").read_text())
        except (CiaoError, OSError, ValueError) as exc:
            raise CarryError(
                f"the Python session could not hand over {asked}, which this cell uses: {exc}"
            ) from exc
        return answer


def _defined_before(found: Needed, origin: int | None, line: int) -> list[str]:
    """The carried functions and classes main.py defines before it loads a value made at
    `origin`, `line` (all of them for a value no cell shows: it is loaded last): only those
    can be pickled by reference in it; later ones travel inside it, by value."""
    if origin is None:
        return [n for chunk in found.sources for n in chunk.names]
    return [n for c in found.sources if (c.count, c.line) < (origin, line) for n in c.names]


def _decide(
    name: str, origin: int | None, line: int, answer: dict[str, object] | None, cap: int
) -> tuple[CarriedValue | None, Chunk | None, str]:
    """A value to carry, an import line, or why the name cannot travel."""
    made = f" (made in {cell_label(origin)})" if origin is not None else ""
    if answer is None or answer.get("kind") == "missing":
        if origin is None:
            return None, None, f"{name} is not defined in any cell of this notebook"
        return None, None, f"{name}{made} is not in the Python session"
    kind = answer["kind"]
    if kind == "module":
        module = str(answer["module"])
        text = f"import {module}" if module == name else f"import {module} as {name}"
        return None, Chunk(0, 1, text, (name,)), ""
    if kind == "unpicklable":
        return None, None, f"{name}{made} cannot be pickled to travel: {answer['error']}"
    size = int(str(answer["size"]))
    if "file" not in answer:
        return (
            None,
            None,
            f"{name}{made} is {size_text(size)} pickled, more than session.max_value_bytes "
            f"({size_text(cap)}): save it to a file and take it with %files, put it on a volume, "
            "or load it inside the job",
        )
    listed = answer.get("modules")
    modules = tuple(str(m) for m in listed) if isinstance(listed, list) else ()
    kind = str(answer["type"])
    return CarriedValue(name, origin, size, str(answer["file"]), kind, line, modules), None, ""


def _problems_text(problems: dict[str, str], session: str) -> str:
    lines = [f"  {problems[name]}" for name in sorted(problems)]
    hint = ""
    if any("not in the Python session" in p for p in problems.values()):
        hint = (
            "\nThe session is off (session.enabled: false): only imports, functions and "
            "classes of earlier cells travel; assign values in this cell."
            if session == "off"
            else "\nRun the cells that make them again (the session restarted since), or "
            "assign them in this cell."
        )
    count = len(problems)
    what = "a name" if count == 1 else f"{count} names"
    return f"this cell uses {what} that cannot travel to its replicas:\n" + "\n".join(lines) + hint
