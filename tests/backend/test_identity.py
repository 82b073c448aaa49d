"""A recorded process is signalled only while it is the very one recorded; a group only
while its leader has not exited (so its id cannot be anyone else's)."""

from __future__ import annotations

import signal
import subprocess
import sys

from ciao.backend.identity import ProcessIdentity

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_group_is_signalled_while_its_leader_runs():
    leader = subprocess.Popen(SLEEP, start_new_session=True)
    try:
        identity = ProcessIdentity.of(leader.pid)
        assert identity is not None and identity.send_to_group(signal.SIGKILL)
        assert leader.wait(timeout=10) == -signal.SIGKILL
    finally:
        leader.kill()


def test_a_group_whose_leader_exited_is_not_signalled():
    leader = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    identity = ProcessIdentity.of(leader.pid) or ProcessIdentity(leader.pid, 0)
    while ProcessIdentity.of(leader.pid) is not None and identity.is_running():
        pass  # until it has exited (a zombie until reaped below)
    assert not identity.send_to_group(signal.SIGKILL)
    leader.wait(timeout=10)
    assert not identity.send_to_group(signal.SIGKILL)  # reaped: its pid may be reused


def test_a_process_recorded_with_another_start_time_is_never_signalled():
    other = subprocess.Popen(SLEEP, start_new_session=True)
    try:
        real = ProcessIdentity.of(other.pid)
        assert real is not None
        stale = ProcessIdentity(other.pid, real.start_time + 1, real.boot_id)
        assert not stale.send(signal.SIGKILL) and not stale.send_to_group(signal.SIGKILL)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
