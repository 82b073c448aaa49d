"""The local backend's S2I: no image, the cell's code written to the job's own directory.

The replicas run the kernel's own Python, so the cell's `%requirements` are not installed:
they are checked against the kernel's environment, and what it lacks is a warning in the
cell (the job still runs). Resources (%cpu, %memory, %gpu) cannot apply to local processes:
a note in the cell says so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ciao.backend.local.plan import resources_note
from ciao.backend.local.pod_settings import settings_note
from ciao.backend.record import RunDir
from ciao.constants import CODE_FILE
from ciao.interpreter.types import Parameter
from ciao.s2i.bundle import bundle_of
from ciao.s2i.requirements import unmet_requirements
from ciao.s2i.types import LineCallback, Shipment


class LocalCodeFile:
    """Writes `<run_root>/<job name>/work/code.py` (and, when the cell carries things from
    the notebook, main.py, carried.json and the pickled values beside it); the file the
    replicas run is the job's "image". They run in the notebook's folder, whose files are
    already there; the run directory keeps what ran, apart from the notebook."""

    def __init__(self, run_root: Path) -> None:
        self.run_root = Path(run_root)

    def _path(self, parameter: Parameter, entry: str = CODE_FILE) -> Path:
        name = parameter.generate_name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"job name {name!r} cannot name a directory")
        return (RunDir(self.run_root, name).work / entry).resolve()

    def plan(self, parameter: Parameter) -> Shipment:
        """Where source_to_image writes the code; nothing is written (the notebook's files
        named by %files are checked: they must exist, as on a cluster)."""
        bundle = bundle_of(parameter, pack_files=False)
        return Shipment(
            image=str(self._path(parameter, bundle.entry)),
            travels=bundle.describe() if bundle.carries else {},
            travels_line=bundle.summary(),
        )

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: LineCallback | None = None
    ) -> Shipment:
        """The code written where the plan says; warns of unmet requirements, notes
        unapplied resources."""
        bundle = bundle_of(parameter, pack_files=False)
        path = Path(shipment.image)
        if path != self._path(parameter, bundle.entry):
            raise ValueError(f"{path} is not where this cell's code goes")
        RunDir(self.run_root, parameter.generate_name).create()
        for name, text in bundle.texts.items():
            _write(path.parent / name, text.encode("utf-8"))
        for name, source in bundle.blobs.items():
            shutil.copyfile(source, path.parent / name)
            os.chmod(path.parent / name, 0o600)
        if shipment.travels_line and progress is not None:
            progress(f"[ciao] {shipment.travels_line}")
        if parameter.requirements and progress is not None:
            for line in unmet_requirements(parameter.requirements):
                progress(line)
        for note in (resources_note(parameter), settings_note(parameter)):
            if note and progress is not None:
                progress(note)
        return shipment

    def cancel(self) -> None:
        """Nothing to stop: writing the code takes no time worth interrupting."""


def _write(path: Path, data: bytes) -> None:
    """Only this user reads what a job ran (its code, the notebook's values)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
