"""`python -m ciao.backend.local.supervisor <run dir>`: the process that owns a local job.

It plays the training operator's part for local jobs: starts exactly the replicas of the
plan recorded in the run directory, applies the success and clean-up rules (ReplicaEngine),
and records every event in the run record (and the metrics of its lines beside them). It
lives in its own session, so a job outlives the kernel that submitted it (detach, kernel
restarts); SIGTERM cancels the job.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from ciao.backend.identity import ProcessIdentity
from ciao.backend.local.engine import ReplicaEngine
from ciao.backend.local.plan import LocalPlan
from ciao.backend.record import RunDir, encode, encode_all
from ciao.backend.recorder import MetricsRecorder
from ciao.backend.types import Job, JobDone
from ciao.errors import BackendError


def supervise(run: RunDir, python: str) -> int:
    spec = run.spec()
    plan = LocalPlan.from_dict(spec["plan"])
    engine = ReplicaEngine(python=python, stop_grace=plan.stop_grace)
    out = run.open_for_append()
    cancelling = threading.Event()
    started: list[Job] = []

    def cancel(signum: int = 0, frame: object = None) -> None:
        """A cancel before the replicas exist is kept and carried out once they do."""
        if not cancelling.is_set():
            cancelling.set()
            if started:
                threading.Thread(target=engine.cancel, args=started, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, cancel)
    try:
        job = engine.exec_code(plan)
    except BackendError as exc:
        os.write(out, encode(JobDone(False, "StartFailed", str(exc))))
        return 1
    started.append(job)
    run.set_replicas(
        {
            name: ProcessIdentity.of(replica.pid) or ProcessIdentity(replica.pid, 0)
            for name, replica in job.handle.replicas.items()
        }
    )
    if cancelling.is_set():
        threading.Thread(target=engine.cancel, args=(job,), daemon=True).start()
    metrics = MetricsRecorder(run, out)
    for batch in engine.get_log_batches(job):
        _write_all(out, encode_all(batch))  # one write per chunk read from the pipes
        metrics.wrote(batch)
    metrics.close()
    os.close(out)
    return 0


def _write_all(fd: int, data: bytes) -> None:
    """All of `data` (a regular file takes it in one write; a short write is continued)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0])
    run = RunDir(path.parent, path.name)
    return supervise(run, run.spec().get("python") or sys.executable)


if __name__ == "__main__":
    sys.exit(main())
