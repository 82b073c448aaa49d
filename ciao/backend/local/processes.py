"""One local job at run time: its replica processes, their log followers, stop and cancel.

Threads, and why:
- one reader for every replica's pipes (a selector: each chunk read becomes a batch of
  events, so the supervisor writes the record once per chunk, not once per line) and one
  waiter per replica feed ONE bounded queue that the follower (`ReplicaProcesses.follow`)
  drains. Puts block while the queue is full, so chatty replicas are slowed down (their
  pipes fill) instead of losing lines or filling memory.
- the waiter decides the job's outcome and stops replicas itself, so the job ends by the
  operator's rules even when nobody follows it.
- nothing that `cancel` waits for blocks on the queue while holding the lock: signals are
  sent and processes reaped under the lock, queue puts happen outside it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

from ciao.backend.identity import stat_fields
from ciao.backend.local.policy import (
    exit_message,
    exit_status,
    outcome_of_exit,
    stop_reason_after_outcome,
)
from ciao.backend.splitter import LineSplitter
from ciao.backend.tails import LastLines
from ciao.backend.types import (
    Diagnosis,
    Event,
    JobDone,
    LogLine,
    LogLines,
    ReplicaState,
    StreamName,
)
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter

#: Bytes read from a pipe at once (a pipe's capacity on Linux).
READ_BYTES = 64 * 1024
#: How long a round of reading gathers output once some came, and how much at most.
COALESCE = 0.005
BATCH_BYTES = 256 * 1024

CANCEL_REASON = "cancelled by the user"

#: How often a producer blocked on a full queue checks whether the follower went away.
_PUT_POLL_SECONDS = 0.1
#: How long a replica's pipes are read after it exited: a process it started that keeps
#: them open (a daemon) must not hold the job up.
PIPE_GRACE = 2.0


@dataclass(frozen=True)
class _StreamClosed:
    replica: str


@dataclass(frozen=True)
class _Exited:
    replica: str


@dataclass
class _Replica:
    """A replica's process and what Ciao knows about it."""

    name: str
    process: subprocess.Popen[bytes]
    stop_reason: str = ""  # set when Ciao stops it: it is then Stopped, not Failed
    kill_scheduled: bool = False
    returncode: int | None = None
    final: ReplicaState | None = None
    reaped: threading.Event = field(default_factory=threading.Event)
    reaped_at: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid


class ReplicaProcesses:
    """The running job behind `Job.handle` of the local backend.

    Replicas are never restarted: a replica that exits non-zero fails the job, as a
    restartPolicy of Never would.
    """

    def __init__(
        self,
        parameter: Parameter,
        processes: dict[str, subprocess.Popen[bytes]],
        stop_grace: float,
        queue_size: int,
    ) -> None:
        self.parameter = parameter
        self.stop_grace = stop_grace
        self.replicas = {name: _Replica(name, proc) for name, proc in processes.items()}
        self._queue: queue.Queue[list[Event] | _StreamClosed | _Exited] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._outcome: JobDone | None = None
        self._followed = False
        self._detached = threading.Event()
        #: Each replica's last lines as they are followed, for a failed job's verdict.
        self._last = LastLines()

    def start(self) -> None:
        """Start the reader and the waiters (daemons: they end when the pipes close)."""
        pipes: list[tuple[_Replica, IO[bytes], StreamName]] = []
        for rep in self.replicas.values():
            assert rep.process.stdout is not None and rep.process.stderr is not None
            pipes += [(rep, rep.process.stdout, "stdout"), (rep, rep.process.stderr, "stderr")]
        name = "ciao-local-reader"
        threading.Thread(target=self._read, args=(pipes,), name=name, daemon=True).start()
        for rep in self.replicas.values():
            self._thread(self._wait, rep, kind="wait")

    # -- following ---------------------------------------------------------------------

    def follow_batches(self) -> Iterator[list[Event]]:
        """Every replica's start, lines and end, then one JobDone (see
        ReplicaEngine.get_log_batches), in the batches they were read in (one per chunk).

        A replica's final state comes after all its lines. Closing the iterator early
        detaches: the job keeps running and its further lines are read and discarded, so no
        replica blocks on a full pipe and no thread waits forever on the queue.
        """
        with self._lock:
            if self._followed:
                raise BackendError("the logs of a local job can be followed only once")
            self._followed = True
        try:
            yield [
                ReplicaState(rep.name, "Running", where=f"pid {rep.pid}")
                for rep in self.replicas.values()
            ]
            open_streams = {name: 2 for name in self.replicas}
            exited: set[str] = set()
            pending = set(self.replicas)
            while pending:
                item = self._queue.get()
                if isinstance(item, list):
                    self._keep_last_lines(item)
                    yield item
                    continue
                if isinstance(item, _StreamClosed):
                    open_streams[item.replica] -= 1
                else:
                    exited.add(item.replica)
                if open_streams[item.replica] == 0 and item.replica in exited:
                    pending.discard(item.replica)
                    final = self.replicas[item.replica].final
                    assert final is not None
                    yield [final]
            yield [self._job_done()]
        finally:
            self._detached.set()

    def _keep_last_lines(self, batch: list[Event]) -> None:
        for event in batch:
            if isinstance(event, LogLines):
                self._last.add(event.replica, event.lines)
            elif isinstance(event, LogLine):
                self._last.add(event.replica, (event.text,))

    def _job_done(self) -> JobDone:
        """The outcome, with the failed replica's last lines (all its lines came before)."""
        with self._lock:
            outcome = self._outcome
        if outcome is None:
            return JobDone(False, "Unknown", "the job ended without a deciding replica")
        if outcome.failed_replica:
            return replace(outcome, tail=self._last.of(outcome.failed_replica))
        return outcome

    # -- stopping ----------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop every replica and return once all are gone. Idempotent, thread-safe."""
        with self._lock:
            running = [rep for rep in self.replicas.values() if not rep.reaped.is_set()]
            if running:
                self._outcome = JobDone(False, "Cancelled", CANCEL_REASON)
            for rep in running:
                self._stop_locked(rep, CANCEL_REASON)
        deadline = self.stop_grace + 10.0
        stuck = [rep.name for rep in self.replicas.values() if not rep.reaped.wait(deadline)]
        if stuck:
            raise BackendError(f"could not stop {', '.join(stuck)} (still running after SIGKILL)")

    def kill_all(self) -> None:
        """SIGKILL every replica and reap it; for a job that failed to start."""
        for rep in self.replicas.values():
            _killpg(rep.pid, signal.SIGKILL)
            rep.process.wait()
            for pipe in (rep.process.stdout, rep.process.stderr):
                if pipe is not None:
                    pipe.close()

    def _stop_locked(self, rep: _Replica, reason: str) -> None:
        """SIGTERM to the replica's process group, SIGKILL after the grace. Lock held."""
        if rep.reaped.is_set():
            return
        rep.stop_reason = rep.stop_reason or reason
        _killpg(rep.pid, signal.SIGTERM)
        if not rep.kill_scheduled:
            rep.kill_scheduled = True
            self._thread(self._kill_after_grace, rep, kind="kill")

    def _kill_after_grace(self, rep: _Replica) -> None:
        if rep.reaped.wait(self.stop_grace):
            return
        with self._lock:
            if not rep.reaped.is_set():
                _killpg(rep.pid, signal.SIGKILL)

    # -- threads -----------------------------------------------------------------------

    def _thread(self, target: Callable[..., None], *args: Any, kind: str) -> None:
        name = f"ciao-local-{kind}-{args[0].name}"
        threading.Thread(target=target, args=args, name=name, daemon=True).start()

    def _put(self, item: list[Event] | _StreamClosed | _Exited) -> bool:
        """Blocking put, given up only once nobody follows the job any more."""
        while not self._detached.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, pipes: list[tuple[_Replica, IO[bytes], StreamName]]) -> None:
        """Read every pipe as data comes; each round's lines go out as one batch.

        Reads are bounded (READ_BYTES) and lines are split in linear time (LineSplitter),
        so neither a huge line nor a flood of short ones can exhaust memory.
        """
        with selectors.DefaultSelector() as selector:
            for rep, pipe, stream in pipes:
                selector.register(pipe.fileno(), selectors.EVENT_READ, (rep, pipe, stream))
            splitters = {
                pipe.fileno(): LineSplitter(rep.name, stream, batch=True)
                for rep, pipe, stream in pipes
            }
            while selector.get_map():
                batch: list[Event] = []
                closed: list[_Replica] = []
                for key in self._held_open(selector):
                    rep, pipe, stream = key.data
                    batch += splitters[key.fd].close()
                    batch.append(
                        Diagnosis(
                            rep.name,
                            "OutputLeftOpen",
                            f"its {stream} stayed open {PIPE_GRACE:g} s after it exited (a "
                            "process it started in the background?): no longer read",
                        )
                    )
                    selector.unregister(key.fd)
                    pipe.close()
                    closed.append(rep)
                self._read_round(selector, splitters, batch, closed)
                if batch:
                    self._put(batch)
                for rep in closed:
                    self._put(_StreamClosed(rep.name))

    def _read_round(
        self,
        selector: selectors.BaseSelector,
        splitters: dict[int, LineSplitter],
        batch: list[Event],
        closed: list[_Replica],
    ) -> None:
        """Read what the pipes have, for up to COALESCE seconds once the first data came
        (or BATCH_BYTES), so chatty replicas make few large batches: one record write and
        one wake-up of the kernel per round, not per line."""
        received: dict[int, list[bytes]] = {}
        size = 0
        deadline: float | None = None
        ready = selector.select(timeout=0.25)
        while ready:
            for key, _ in ready:
                rep, pipe, stream = key.data
                try:
                    data = os.read(key.fd, READ_BYTES)
                except OSError as err:
                    data = b""
                    message = f"[ciao: reading {stream} failed: {err}]"
                    batch.append(LogLine(rep.name, message, "stderr"))
                if data:
                    received.setdefault(key.fd, []).append(data)
                    size += len(data)
                    continue
                batch += splitters[key.fd].feed(b"".join(received.pop(key.fd, [])))
                batch += splitters[key.fd].close()
                selector.unregister(key.fd)
                pipe.close()
                closed.append(rep)
            now = time.monotonic()
            deadline = deadline or now + COALESCE
            if size >= BATCH_BYTES or now >= deadline or not selector.get_map():
                break
            ready = selector.select(timeout=deadline - now)
        for fd, chunks in received.items():
            batch += splitters[fd].feed(b"".join(chunks))

    @staticmethod
    def _held_open(selector: selectors.BaseSelector) -> list[selectors.SelectorKey]:
        """Pipes of replicas that exited more than PIPE_GRACE ago."""
        now = time.monotonic()
        return [
            key
            for key in list(selector.get_map().values())
            if key.data[0].reaped.is_set() and now - key.data[0].reaped_at > PIPE_GRACE
        ]

    def _wait(self, rep: _Replica) -> None:
        """Reap the replica, decide the job's outcome, stop what the outcome says."""
        if hasattr(os, "waitid"):
            # Wait without reaping, so the process group id stays ours while we kill the
            # replica's leftovers: a container's processes die with its main process.
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, rep.pid, os.WEXITED | os.WNOWAIT)
        else:
            rep.process.wait()  # never under the lock: cancel must not wait behind it
        with self._lock:
            _killpg(rep.pid, signal.SIGKILL)
            _kill_session(rep.pid)  # what moved to another group but stayed in its session
            rep.returncode = rep.process.wait()
            rep.final = self._final_state(rep, rep.returncode)
            rep.reaped_at = time.monotonic()
            rep.reaped.set()
            if not rep.stop_reason and self._outcome is None:
                self._decide_locked(rep, rep.returncode)
        self._put(_Exited(rep.name))

    def _decide_locked(self, rep: _Replica, returncode: int) -> None:
        exited = {
            r.name: r.returncode
            for r in self.replicas.values()
            if r.returncode is not None and not r.stop_reason
        }
        self._outcome = outcome_of_exit(self.parameter, rep.name, returncode, exited)
        if self._outcome is None:
            return
        for other in self.replicas.values():
            if not other.reaped.is_set():
                reason = stop_reason_after_outcome(
                    self.parameter, other.name, self._outcome.succeeded
                )
                if reason:
                    self._stop_locked(other, reason)

    @staticmethod
    def _final_state(rep: _Replica, returncode: int) -> ReplicaState:
        exit_code, reason = exit_status(returncode)
        where = f"pid {rep.pid}"
        if rep.stop_reason:
            phase, message = "Stopped", rep.stop_reason
        elif returncode == 0:
            phase, message = "Succeeded", exit_message(rep.name, returncode)
        else:
            phase, message = "Failed", exit_message(rep.name, returncode)
        return ReplicaState(
            rep.name, phase, reason=reason, message=message, exit_code=exit_code, where=where
        )


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (a replica's: it leads its own)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = stat_fields(int(entry))
        try:
            session = int(fields[3]) if fields else 0
        except (ValueError, IndexError):
            continue
        if session == sid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)


def _killpg(pgid: int, sig: signal.Signals) -> None:
    """Signal a replica's process group; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
