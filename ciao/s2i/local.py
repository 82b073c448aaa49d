"""The local backend's S2I: no image, the cell's code written to the job's own directory."""

from __future__ import annotations

from pathlib import Path

from ciao.interpreter.types import Parameter
from ciao.s2i.types import Progress

CODE_FILE = "code.py"


class LocalCodeFile:
    """Writes `<run_root>/<job name>/code.py`; its path is the job's "image".

    That directory is also the replicas' working directory, so files a job writes stay
    with it, as they would in a pod of their own.
    """

    def __init__(self, run_root: Path) -> None:
        self.run_root = Path(run_root)

    def source_to_image(
        self, code: str, parameter: Parameter, progress: Progress | None = None
    ) -> str:
        """The absolute path of the written code file."""
        name = parameter.generate_name
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"job name {name!r} cannot name a directory")
        job_dir = self.run_root / name
        job_dir.mkdir(parents=True, exist_ok=True)
        path = job_dir / CODE_FILE
        path.write_text(code, encoding="utf-8")
        return str(path.resolve())

    def cancel(self) -> None:
        """Nothing to stop: writing the code takes no time worth interrupting."""
