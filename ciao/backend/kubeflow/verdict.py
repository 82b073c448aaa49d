"""What a failed Kubeflow job's verdict says: the replica that failed first and how, in the
cell's words before Kubeflow's, and its last lines (or, under torchrun, the failed
process's own lines before torchrun's report), gathered while the job is followed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ciao.backend.record import RunDir
from ciao.backend.tails import TAIL_LINES, LastLines
from ciao.backend.types import JobDone

#: torchrun's line when a process it started fails; its report (a traceback of its own and a
#: table) follows and would push the cell's own last lines out of the verdict's tail.
_TORCHRUN_FAILED = re.compile(r"\] failed \(exitcode: (-?\d+)\) local_rank: (\d+) \(pid: \d+\)")


@dataclass(frozen=True)
class TorchrunFailure:
    """torchrun said one of its processes failed: which, how, and the lines before its
    report (the process's own last lines)."""

    local_rank: int
    exit_code: int
    lines_before: tuple[str, ...]


class Evidence:
    """What the verdict of a failed job needs, kept as the job is followed: each replica's
    first non-zero exit (the operator may delete the pods before it says the job failed),
    its last lines, and the process torchrun reported failed."""

    def __init__(
        self, container: str, record: RunDir | None = None, recorded_before: int = 0
    ) -> None:
        """`recorded_before`: where `record` ended when an %attach began following the job
        again; its failed replica's earlier lines are there."""
        self.container = container
        self.record = record
        self.recorded_before = recorded_before
        #: Every replica's first non-zero exit: (finishedAt, exit code, reason).
        self.exits: dict[str, tuple[str, int, str]] = {}
        self.last_lines = LastLines()
        #: The first failed process each replica's torchrun reported.
        self.torchrun_failures: dict[str, TorchrunFailure] = {}

    def line(self, replica: str, text: str) -> None:
        """A line a replica wrote (on its log follower's thread)."""
        if replica not in self.torchrun_failures:
            failed = _TORCHRUN_FAILED.search(text)
            if failed:
                self.torchrun_failures[replica] = TorchrunFailure(
                    int(failed.group(2)), int(failed.group(1)), self.last_lines.of(replica)
                )
        self.last_lines.add(replica, (text,))

    def pod(self, replica: str, pod: dict[str, Any]) -> None:
        """Keep the replica's first non-zero exit (its container's state or last state)."""
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != self.container:
                continue
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                ended = state.get("terminated") or {}
                if ended.get("exitCode"):
                    seen = (ended.get("finishedAt") or "", int(ended["exitCode"]))
                    known = self.exits.get(replica)
                    if known is None or seen[0] < known[0]:
                        self.exits[replica] = (*seen, ended.get("reason") or "")

    def failed(self, condition: dict[str, Any]) -> JobDone:
        """The verdict of a job whose Failed condition is `condition`."""
        replica, code, why = self._failed_replica()
        torchrun = self.torchrun_failures.get(replica)
        if torchrun is not None and torchrun.lines_before:
            tail = torchrun.lines_before
        else:
            tail = self.last_lines.of(replica) if replica else ()
        return JobDone(
            False,
            condition.get("reason") or "Failed",
            _failure_message(condition.get("message", ""), replica, code, why, torchrun),
            failed_replica=replica,
            exit_code=code,
            tail=self._with_earlier_lines(replica, tail),
        )

    def _failed_replica(self) -> tuple[str, int | None, str]:
        """The first replica whose container ended with a non-zero exit code, from all
        that was seen while the pods lived (they may be gone: backoff limit, deadline)."""
        if not self.exits:
            return "", None, ""
        replica, (_, code, reason) = min(self.exits.items(), key=lambda item: item[1])
        return replica, code, reason

    def _with_earlier_lines(self, replica: str, tail: tuple[str, ...]) -> tuple[str, ...]:
        """The tail, completed with the replica's lines recorded before an %attach."""
        record = self.record
        if not replica or not self.recorded_before or record is None or len(tail) >= TAIL_LINES:
            return tail
        earlier = record.last_lines(replica, TAIL_LINES, self.recorded_before)
        return (*earlier, *tail)[-TAIL_LINES:]


def _failure_message(
    message: str,
    replica: str,
    code: int | None,
    reason: str = "",
    torchrun: TorchrunFailure | None = None,
) -> str:
    """What failed, first, in the cell's words (the replica and its exit), then what
    Kubeflow said (which may name only a Job, or no replica at all)."""
    if not replica:
        return message
    how = f"was {reason}, exit code {code}" if reason == "OOMKilled" else f"exited with code {code}"
    if torchrun is not None:
        rank, exit_code = torchrun.local_rank, torchrun.exit_code
        how += f" (torchrun: its process of local rank {rank} exited with {exit_code})"
    return f"{replica} {how}; Kubeflow says: {message}" if message else f"{replica} {how}"
