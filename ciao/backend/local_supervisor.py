"""`python -m ciao.backend.local_supervisor <run dir>`: the process that owns a local job.

It plays the training operator's part for local jobs: starts the replicas, applies the
success and clean-up rules (LocalReplicas), and records every event in the run
directory's events.jsonl. It lives in its own session, so a job outlives the kernel that
submitted it (detach, kernel restarts); SIGTERM cancels the job.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ciao.backend.local_replicas import LocalReplicas
from ciao.backend.run_dir import RunDir, encode
from ciao.backend.types import JobDone
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter, Resources, RoleSpec


def parameter_to_spec(parameter: Parameter) -> dict[str, Any]:
    return {
        "framework": parameter.framework,
        "generate_name": parameter.generate_name,
        "image": parameter.image,
        "clean_policy": parameter.clean_policy,
        "roles": {
            role: {
                "count": spec.count,
                "cpu": spec.resources.cpu,
                "memory": spec.resources.memory,
                "gpu": spec.resources.gpu,
            }
            for role, spec in parameter.roles.items()
        },
        "owner": dict(parameter.owner),
    }


def parameter_from_spec(spec: dict[str, Any]) -> Parameter:
    return Parameter(
        framework=spec["framework"],
        roles={
            role: RoleSpec(role, r["count"], Resources(r.get("cpu"), r.get("memory"), r["gpu"]))
            for role, r in spec["roles"].items()
        },
        generate_name=spec["generate_name"],
        image=spec["image"],
        clean_policy=spec.get("clean_policy"),
        owner=dict(spec.get("owner") or {}),
    )


def supervise(run: RunDir, python: str, stop_grace: float) -> int:
    spec = run.spec()
    parameter = parameter_from_spec(spec["parameter"])
    replicas = LocalReplicas(python=python, stop_grace=stop_grace)
    out = run.open_for_append()
    cancelling = threading.Event()
    started: list = []

    def cancel(signum: int = 0, frame: object = None) -> None:
        """A cancel before the replicas exist is kept and carried out once they do."""
        if not cancelling.is_set():
            cancelling.set()
            if started:
                threading.Thread(target=replicas.cancel, args=started, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, cancel)
    try:
        job = replicas.exec_code(parameter)
    except BackendError as exc:
        os.write(out, encode(JobDone(False, "StartFailed", str(exc))))
        return 1
    started.append(job)
    if cancelling.is_set():
        threading.Thread(target=replicas.cancel, args=(job,), daemon=True).start()
    for event in replicas.get_logs(job):
        os.write(out, encode(event))  # one write per event: readers never see half of one
    os.close(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0])
    run = RunDir(path.parent, path.name)
    spec = run.spec()
    return supervise(run, spec.get("python") or sys.executable, float(spec.get("grace", 3.0)))


if __name__ == "__main__":
    sys.exit(main())
