"""A process as the run record names it: pid, start time and boot, so that a signal meant
for a job's process never reaches another one that got its pid later.

A pid alone is reused; (pid, start time in clock ticks since boot, boot id) is not. Where
the platform has pidfds the signal goes through one, opened before the identity is
checked, so the process cannot be replaced between the check and the signal.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start_time: int  # field 22 of /proc/<pid>/stat; 0 where /proc has none
    boot_id: str = ""

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of a running process, None if there is none with that pid."""
        start = _start_time(pid)
        if start is None:
            return None
        return cls(pid, start, _boot_id())

    def as_list(self) -> list[int | str]:
        return [self.pid, self.start_time, self.boot_id]

    @classmethod
    def from_list(cls, data: object) -> ProcessIdentity | None:
        """From the record; None for anything that is not an identity (a pid alone: too
        weak to signal by)."""
        if not isinstance(data, list) or len(data) != 3:
            return None
        pid, start, boot = data
        if not (isinstance(pid, int) and isinstance(start, int) and isinstance(boot, str)):
            return None
        if pid <= 1:
            return None
        return cls(pid, start, boot)

    def is_running(self) -> bool:
        """Whether this very process still runs (a zombie does not)."""
        if self.boot_id and self.boot_id != _boot_id():
            return False
        return _start_time(self.pid) == self.start_time and not _zombie(self.pid)

    def send(self, sig: signal.Signals) -> bool:
        """Send `sig` to this process if it is still the one recorded; False if not."""
        pidfd = _pidfd(self.pid)
        try:
            if not self.is_running():
                return False
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def send_to_group(self, sig: signal.Signals) -> bool:
        """Send `sig` to the process group this process leads (a replica and what it
        started), if it is still the one recorded.

        A group has no pidfd. The leader's pidfd is opened before its identity is checked
        and asked again just before the signal: while the leader has not exited, its pid
        (the group's id) cannot belong to anything else, so the window left is the
        instant between that last look and the signal."""
        pidfd = _pidfd(self.pid)
        try:
            if not self.is_running() or (pidfd is not None and _exited(pidfd)):
                return False
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
                return True
            return False
        finally:
            if pidfd is not None:
                os.close(pidfd)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None.

    The command name (field 2) may hold spaces and parentheses: the fields start after its
    last ")"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = stat_fields(pid)
    if fields is None:
        # no /proc (not Linux): a live pid is all there is to go by
        return 0 if not Path("/proc/self").exists() and _exists(pid) else None
    return int(fields[19])


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] == "Z"


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _exited(pidfd: int) -> bool:
    """Whether the process of `pidfd` has exited (its pidfd is readable then)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None
