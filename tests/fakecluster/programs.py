"""Container programs the kubelet runs in-process instead of a local process.

Most containers of the test cluster run their own command as a local process (runtime.py).
An image whose program is not a command a test gives (a Kubeflow component's binary, such
as Katib's metrics collector) has a stand-in registered by image repository
(`Kubelet.add_program`): the kubelet starts it on the container's thread with a
`ProgramRun`, records what it says as the container's log and its return value as the exit
code, exactly as for a process. What it may see of the pod is what the real program sees
with shareProcessNamespace and its volume mounts: the other containers' processes
(`siblings`) and files under its mounts (`local`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .logs import ContainerLog


@dataclass(frozen=True)
class Sibling:
    """Another container of the pod, as a shared process namespace shows it."""

    name: str
    #: The pid of its current (or last) process; None before it first started.
    pid: int | None
    running: bool
    #: It will not run again (exited for good, or could not start).
    done: bool
    #: Its command line (command and args of the spec, joined by spaces).
    cmdline: str


class ProgramRun:
    """One run of a container program: its spec, its log, the pod around it."""

    def __init__(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        log: ContainerLog,
        terminating: threading.Event,
        siblings: Callable[[], list[Sibling]],
        local: Callable[[str], Path | None],
    ) -> None:
        self.pod = pod
        self.container = container
        self._log = log
        self._terminating = terminating
        self._siblings = siblings
        self._local = local

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.container.get("args") or []]

    def say(self, text: str, stream: str = "stderr") -> None:
        """One line (or several) of the container's log."""
        for line in text.split("\n"):
            self._log.append(stream, line.encode())

    def siblings(self) -> list[Sibling]:
        return self._siblings()

    def local(self, path: str) -> Path | None:
        """`path` as the container sees it, on this machine (None outside its mounts)."""
        return self._local(path)

    def wait(self, seconds: float) -> bool:
        """Sleep; True as soon as the container is being stopped."""
        return self._terminating.wait(seconds)

    @property
    def stopping(self) -> bool:
        return self._terminating.is_set()


#: A program: runs until done, returns the container's exit code.
Program = Callable[[ProgramRun], int]


def repository(image: str) -> str:
    """`ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0` -> the part before the tag."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last
