"""Follows one container's log across stream drops and restarts, delivering each line once.

Logs are read with `timestamps=true`; the follower keeps a cursor (the last delivered
line's timestamp, and how many lines carried exactly that timestamp). A dropped stream is
resumed with `sinceTime` (whole seconds, so some lines come again) and the lines at or
before the cursor are dropped; a line cut mid-way is never delivered from a follow stream
(it comes again, whole, on resume). When the container restarts, what the old instance
wrote after the cursor is read with `previous=true` before the new instance is followed.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ciao.backend.kubeflow.client import ApiError, Cluster, StreamWorker, lines
from ciao.backend.types import Diagnosis, LogLine

_LOST = (
    "its pod was deleted (cleanPodPolicy, or by someone) before Ciao could read its log: "
    "whatever it printed is gone; %cleanPolicy=none keeps finished pods"
)

log = logging.getLogger("ciao.kubernetes")


@dataclass(frozen=True)
class ContainerView:
    """What the pod informer last saw of the followed container."""

    exists: bool = True
    started: bool = False  # running or terminated: it has a log
    running: bool = False
    restarts: int = 0
    final: bool = False  # the pod is Succeeded/Failed: no further instance will come


def parse_timestamp(text: str) -> int | None:
    """RFC 3339 (nano) -> integer nanoseconds since the epoch; None if not a timestamp."""
    try:
        date, _, rest = text.partition("T")
        clock = rest.rstrip("Z")
        if "+" in clock or clock.count("-"):
            return None  # kubelet writes UTC with Z
        whole, _, fraction = clock.partition(".")
        year, month, day = (int(p) for p in date.split("-"))
        hour, minute, second = (int(p) for p in whole.split(":"))
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        return seconds * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        return None


def since_time(nanos: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(nanos // 1_000_000_000))


class ContainerFollower(StreamWorker):
    """One thread per (pod, container): the pod informer creates it when the pod appears."""

    def __init__(
        self,
        cluster: Cluster,
        pod_path: str,
        container: str,
        replica: str,
        view: Callable[[], ContainerView],
        changed: threading.Condition,
        put: Callable[[LogLine | Diagnosis], bool],
        start: tuple[int, int] | None = None,
    ) -> None:
        self.cluster = cluster
        self.pod_path = pod_path
        self.container = container
        self.replica = replica
        self._view = view
        self._changed = changed
        self._put = put
        # (timestamp of the last delivered line, lines delivered with exactly that time):
        # one tuple, replaced only once the line is in the queue, so a reader on another
        # thread (the cursors saved for %attach) never sees half of it or an undelivered line
        self._position: tuple[int, int] | None = tuple(start) if start else None  # type: ignore[assignment]
        self._seen_at_cursor = 0  # of those lines, how many this read has met again
        self._opened = False  # a log request of this container has succeeded
        self.done = threading.Event()
        super().__init__(f"ciao-log {replica}")

    @property
    def cursor(self) -> tuple[int, int] | None:
        """Where the delivered lines end: (timestamp in ns, lines at exactly that time)."""
        return self._position

    @property
    def _cursor(self) -> int | None:
        return None if self._position is None else self._position[0]

    def stop(self) -> None:
        super().stop()
        with self._changed:
            self._changed.notify_all()

    def _run(self) -> None:
        try:
            self._follow_all()
        except Exception:
            log.exception("following %s failed", self.replica)
        finally:
            self.done.set()

    def _follow_all(self) -> None:
        instance = 0  # the container instance (restart count) being read
        while not self._stop.is_set():
            view = self._wait(lambda v: not v.exists or v.started or v.final)
            if view is None or not view.exists:
                return
            if view.restarts > instance:
                self._read(previous=True)  # the rest of the instance that ended
            if not view.started:  # final without ever starting (image pull failure...)
                return
            instance = view.restarts
            cut = self._read(follow=view.running)
            if not cut and view.running:  # ended with its container: let the status catch up
                self._wait(_ended_or_restarted(instance), timeout=0.5)
            view = self._view()
            if not view.exists:
                if not self._opened:  # deleted (cleanPodPolicy) before its log could be read
                    self._put(Diagnosis(self.replica, "LogsLost", _LOST))
                return
            if view.final and not view.running:
                if cut or view.restarts > instance:
                    self._read(previous=view.restarts > instance)
                    self._read()
                return
            if not view.running and view.restarts == instance:
                # terminated, a restart is coming: wait for it (or for the end)
                self._wait(_gone_final_or_restarted(instance))

    def _wait(
        self, ready: Callable[[ContainerView], bool], timeout: float | None = None
    ) -> ContainerView | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._stop.is_set():
                view = self._view()
                if ready(view):
                    return view
                if deadline is not None and time.monotonic() >= deadline:
                    return view
                self._changed.wait(
                    1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                )
        return None

    def _read(self, follow: bool = False, previous: bool = False) -> bool:
        """Read (and deliver) the log from the cursor on; True if a line was cut short."""
        query: dict[str, Any] = {
            "container": self.container,
            "timestamps": True,
            "follow": follow or None,
            "previous": previous or None,
            "sinceTime": since_time(self._cursor) if self._cursor is not None else None,
        }
        try:
            response = self.cluster.stream(f"{self.pod_path}/log", query, timeout=(10, None))
        except ApiError as exc:
            if exc.status in (400, 404):  # not started yet, no previous, or the pod is gone
                log.debug("log of %s unavailable: %s", self.replica, exc)
                return False
            if exc.status == 403:  # RBAC without pods/log: say so once, follow no further
                hint = f"Ciao may not read this replica's log ({exc}); allow get on pods/log"
                self._put(Diagnosis(self.replica, "LogForbidden", hint))
                self._stop.set()
                return False
            raise
        self._opened = True
        cut = False
        self._seen_at_cursor = 0
        with self._streaming(response):
            try:
                for raw in lines(response):
                    if not raw.endswith(b"\n"):
                        cut = follow
                        if follow:
                            break  # a partial line: it comes again, whole, when resumed
                    if not self._deliver(raw.decode("utf-8", "replace").rstrip("\r\n")):
                        break
            except Exception as exc:  # the connection dropped: the caller resumes
                log.info("log stream of %s dropped: %s", self.replica, exc)
                cut = True
        return cut

    def _deliver(self, line: str) -> bool:
        """Put the line in the queue unless it was delivered before; False once following
        stopped (the line was not delivered, so the cursor stays before it)."""
        stamp, _, text = line.partition(" ")
        nanos = parse_timestamp(stamp)
        if nanos is None:
            return self._put(LogLine(self.replica, line))
        position = self._position
        if position is not None and nanos < position[0]:
            return True
        if position is not None and nanos == position[0]:
            if self._seen_at_cursor < position[1]:
                self._seen_at_cursor += 1
                return True
            following = (nanos, position[1] + 1)
        else:
            following = (nanos, 1)
            self._seen_at_cursor = 0
        if not self._put(LogLine(self.replica, text)):
            return False
        self._position = following
        self._seen_at_cursor += 1
        return True


def _ended_or_restarted(instance: int) -> Callable[[ContainerView], bool]:
    return lambda view: not view.running or view.restarts > instance


def _gone_final_or_restarted(instance: int) -> Callable[[ContainerView], bool]:
    return lambda view: not view.exists or view.final or view.restarts > instance
