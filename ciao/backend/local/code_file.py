"""The local backend's S2I: no image, the cell's code written to the job's own directory.

The replicas run the kernel's own Python, so the cell's `%requirements` are not installed:
they are checked against the kernel's environment, and what it lacks is a warning in the
cell (the job still runs). Resources (%cpu, %memory, %gpu) cannot apply to local processes:
a note in the cell says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ciao.backend.local.plan import resources_note
from ciao.backend.record import RunDir
from ciao.constants import CODE_FILE
from ciao.interpreter.types import Parameter
from ciao.s2i.requirements import unmet_requirements
from ciao.s2i.types import Progress, Shipment


class LocalCodeFile:
    """Writes `<run_root>/<job name>/work/code.py`; its path is the job's "image".

    That directory is also the replicas' working directory, so files a job writes stay
    with it, as they would in a pod of their own, and apart from the job's record.
    """

    def __init__(self, run_root: Path) -> None:
        self.run_root = Path(run_root)

    def _path(self, parameter: Parameter) -> Path:
        name = parameter.generate_name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"job name {name!r} cannot name a directory")
        return (RunDir(self.run_root, name).work / CODE_FILE).resolve()

    def plan(self, parameter: Parameter) -> Shipment:
        """Where source_to_image writes the code; nothing is written."""
        return Shipment(image=str(self._path(parameter)))

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: Progress | None = None
    ) -> Shipment:
        """The code written where the plan says; warns of unmet requirements, notes
        unapplied resources."""
        path = Path(shipment.image)
        if path != self._path(parameter):
            raise ValueError(f"{path} is not where this cell's code goes")
        RunDir(self.run_root, parameter.generate_name).create()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(parameter.code)
        if parameter.requirements and progress is not None:
            for line in unmet_requirements(parameter.requirements):
                progress(line)
        note = resources_note(parameter)
        if note and progress is not None:
            progress(note)
        return shipment

    def cancel(self) -> None:
        """Nothing to stop: writing the code takes no time worth interrupting."""
