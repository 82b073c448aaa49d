"""Running the build tools (s2i, docker, podman, img): argument lists, never a shell; each
in its own process group with a timeout; output streamed line by line into the cell; and
stoppable from another thread (an interrupt), which then ends the build with JobCancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from ciao.errors import BackendError, JobCancelled
from ciao.s2i.types import LineCallback
from ciao.secrets import redact, values_to_environment

log = logging.getLogger("ciao.s2i")

#: Lines of a failed tool's output that its error shows.
TAIL_LINES = 20
#: Longest line passed on to the cell (a tool's progress bar can be one endless line).
MAX_LINE = 2000
#: After the tool exits, how long to wait for the end of its output (a grandchild that
#: escaped its process group may hold the pipe open).
_DRAIN_GRACE = 2.0
_EOF = object()


class BuildError(BackendError):
    """Phase 2 failed: a tool is missing, or a build or push failed or took too long.
    Nothing was submitted."""

    ename = "BuildError"


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    #: The last lines of its output (stdout and stderr together), for error messages.
    tail: tuple[str, ...]
    timed_out: bool = False


class ToolRunner:
    """Runs one tool at a time on the caller's thread; `cancel()` from any thread stops it."""

    def __init__(
        self,
        timeout: float,
        env: Mapping[str, str] | None = None,
        kill_grace: float = 3.0,
    ) -> None:
        self.timeout = timeout
        #: The tools see the kernel's environment: DOCKER_HOST, DOCKER_CONFIG, HOME,
        #: REGISTRY_AUTH_FILE... tell them where the daemon and the login store are.
        self.env = dict(os.environ if env is None else env)
        self.kill_grace = kill_grace
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- from any thread ------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the running tool (SIGTERM to its group, SIGKILL after a grace); returns at
        once. A tool not started yet never starts."""
        self._cancelled.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _signal_group(proc, signal.SIGTERM)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    # ---- on the building thread -----------------------------------------------------

    def which(self, tool: str) -> str | None:
        """The tool's path on the kernel's PATH (as the tools will be run), or None."""
        return shutil.which(tool, path=self.env.get("PATH", os.defpath))

    def check_cancelled(self, what: str) -> None:
        if self._cancelled.is_set():
            raise JobCancelled(f"interrupted while {what}; nothing was submitted")

    def run(
        self,
        argv: Sequence[str],
        prefix: str,
        progress: LineCallback | None,
        cwd: str | None = None,
        hide_values: bool = True,
    ) -> ToolResult:
        """Run `argv` to its end, each output line to `progress` as `<prefix> <line>`.

        With `hide_values` (build tools) `--build-arg`/`-e`/`--env` values go to the tool's
        environment instead of its argv; pip's `-e` is another option and stays as given.
        Raises JobCancelled if cancelled; a timeout is a ToolResult with timed_out set.
        """
        self.check_cancelled(f"running {argv[0]}")
        log.info("running %s", shlex.join(redact(argv) if hide_values else argv))
        secret_env: dict[str, str] = {}
        if hide_values:  # build-arg values: not in argv
            argv, secret_env = values_to_environment(argv)
        env = {**(self.env if self.env is not None else os.environ), **secret_env}
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env if secret_env else self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with self._lock:
            self._proc = proc
        try:
            if self._cancelled.is_set():  # cancel() came between the check and the start
                _signal_group(proc, signal.SIGTERM)
            result = self._follow(proc, prefix, progress)
            log.info(
                "%s exited with code %s%s",
                argv[0],
                result.returncode,
                " (timed out)" if result.timed_out else "",
            )
            if self._cancelled.is_set():
                raise JobCancelled(
                    f"interrupted while running {' '.join(argv[:2])}; nothing was submitted"
                )
            return result
        finally:
            with self._lock:
                self._proc = None
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def _follow(
        self, proc: subprocess.Popen[bytes], prefix: str, progress: LineCallback | None
    ) -> ToolResult:
        lines: queue.Queue[object] = queue.Queue()
        assert proc.stdout is not None
        reader = threading.Thread(
            target=_read_lines, args=(proc.stdout, lines), name="ciao-build-output", daemon=True
        )
        reader.start()
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        deadline = time.monotonic() + self.timeout
        timed_out = False
        stopping_since: float | None = None  # SIGTERM sent (timeout or cancel)
        exited_since: float | None = None
        eof = False
        while True:
            try:
                item = lines.get(timeout=0.1)
            except queue.Empty:
                item = None
            if item is _EOF:
                eof = True
            elif isinstance(item, str):
                tail.append(item)
                if progress is not None:
                    progress(f"{prefix} {item}")
            now = time.monotonic()
            exited = proc.poll() is not None
            if exited and (eof or (exited_since is not None and now - exited_since > _DRAIN_GRACE)):
                break
            if exited:
                exited_since = exited_since or now
                continue
            if not timed_out and now > deadline:
                timed_out = True
                _signal_group(proc, signal.SIGTERM)
            if stopping_since is None and (timed_out or self._cancelled.is_set()):
                stopping_since = now
            if stopping_since is not None and now - stopping_since > self.kill_grace:
                _signal_group(proc, signal.SIGKILL)
        return ToolResult(proc.wait(), tuple(tail), timed_out)


def _read_lines(stream: IO[bytes], lines: queue.Queue[object]) -> None:
    """Each line of the tool's output (the last state of a `\\r`-redrawn line), then _EOF."""
    try:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            text = text.rsplit("\r", 1)[-1].rstrip()
            if text:
                lines.put(text[:MAX_LINE])
    except (OSError, ValueError):  # the pipe was closed under us
        pass
    finally:
        lines.put(_EOF)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the tool's whole process group (it is its leader: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
