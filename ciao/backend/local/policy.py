"""The operator's success and clean-up rules, as pure functions for the local backend.

Kept apart from the process handling so the rules read like the contract
(docs/kubeflow-contract.md, "Status" and "cleanPodPolicy") and are tested without processes.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping

from ciao.backend.types import JobDone
from ciao.interpreter.types import Parameter


def deciding_replica(parameter: Parameter) -> str | None:
    """The replica whose success is the job's success, or None if every replica must succeed.

    PyTorch: master-0. TF: the chief (or master) if there is one, else worker-0 (the
    operator's default successPolicy).
    """
    roles = ("master",) if parameter.framework == "pytorch" else ("chief", "master", "worker")
    for role in roles:
        if parameter.count(role):
            return f"{role}-0"
    return None


def exit_status(returncode: int) -> tuple[int, str]:
    """(exit code, reason) as Kubernetes reports a terminated container: a signal is 128+n."""
    if returncode == 0:
        return 0, "Completed"
    if returncode > 0:
        return returncode, f"ExitCode {returncode}"
    return 128 - returncode, f"Signal {_signal_name(-returncode)}"


def exit_message(replica: str, returncode: int) -> str:
    """One line for the user: how the replica ended."""
    if returncode == 0:
        return f"{replica} succeeded"
    if returncode > 0:
        return f"{replica} exited with code {returncode}"
    return f"{replica} was killed by signal {_signal_name(-returncode)}"


def outcome_of_exit(
    parameter: Parameter, replica: str, returncode: int, exited: Mapping[str, int]
) -> JobDone | None:
    """The job's outcome once `replica` ended on its own, or None while it is undecided.

    `exited` holds every replica that ended on its own so far (this one included) and its
    return code. Any failure fails the job: the local backend never restarts a replica.
    """
    if returncode != 0:
        exit_code, _ = exit_status(returncode)
        message = exit_message(replica, returncode)
        return JobDone(False, "Failed", message, failed_replica=replica, exit_code=exit_code)
    decider = deciding_replica(parameter)
    if replica == decider:
        return JobDone(True, "Succeeded", exit_message(replica, 0), exit_code=0)
    if decider is None:
        needed = [name for name in parameter.replica_names() if not name.startswith("ps-")]
        if all(exited.get(name) == 0 for name in needed):
            return JobDone(True, "Succeeded", "all replicas succeeded", exit_code=0)
    return None


def stop_reason_after_outcome(
    parameter: Parameter, replica: str, succeeded: bool = True
) -> str | None:
    """Why a replica still running when the job ended is stopped, or None to let it run.

    Parameter servers never exit on their own, so they are always stopped. After a
    failure the rest are stopped too: the verdict is in, and a worker left waiting for a
    dead master would hold the cell forever. After success the clean policy decides
    (All and Running stop them, None waits for them, as the operator leaves their pods).
    """
    if replica.startswith("ps-"):
        return "parameter servers are stopped when the job ends"
    if not succeeded:
        return "stopped because the job failed"
    policy = parameter.effective_clean_policy
    if policy in ("All", "Running"):
        return f"stopped when the job ended (clean policy {policy})"
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
