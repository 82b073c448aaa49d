"""`local.keep`: run records of finished jobs are removed when they are old (or many), so
`~/.ciao/runs` does not only grow. Running jobs are kept; a local job whose supervisor is
gone without a verdict (Lost: killed, or the machine rebooted) counts as finished."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from ciao.backend.record import list_run_dirs

log = logging.getLogger("ciao.retention")

DAY = 86400.0


def prune(root: Path, keep: tuple[str, int], now: float | None = None) -> list[str]:
    """Remove what `keep` does not keep; the names removed."""
    now = time.time() if now is None else now
    finished = [run for run in list_run_dirs(root) if run.verdict() is not None]  # newest first
    kind, amount = keep
    if kind == "days":
        doomed = [run for run in finished if now - run.created() > amount * DAY]
    else:
        doomed = finished[amount:]
    removed = []
    for run in doomed:
        shutil.rmtree(run.path, ignore_errors=True)
        removed.append(run.name)
    if removed:
        log.info("removed the records of %d finished job(s) (local.keep)", len(removed))
    return removed
