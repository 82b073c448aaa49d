"""Katib's file metrics collector (cmd/metricscollector/v1beta1/file-metricscollector), the
program of the `metrics-logger-and-collector` sidecar, run in-process by the kubelet
(programs.py) for the image ghcr.io/kubeflow/katib/file-metrics-collector.

As main.go: it logs `Trial Name: <t>`, then prints every line of the metrics file through
klog (`I0203 23:43:00.465480      13 main.go:143] loss=0.42`, on stderr) as the file grows;
it waits for the pod's other containers' processes to end (WaitAll: an Istio proxy that never
exits keeps it, and so the pod, running); the main one (whose command line writes `echo
completed > <dir>`, else the first) must have left `<dir>/<pid>.pid` saying `completed`, or
it fails (`Failed to wait for worker container: training container is failed. Unable to read
file /var/log/katib/7.pid for pid 7, error: open /var/log/katib/7.pid: no such file or
directory`, exit 255); then it parses the whole file (metrics.py), reports the logs to
katib-db-manager (the ObservationDB) and logs `Metrics reported. :` with them. A file that
does not exist at the end fails it (`Failed to collect logs: failed to open the file: open
/var/log/katib/metrics.log: no such file or directory`, exit 255). Early stopping rules
(-stop-rule) are not simulated.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..programs import Program, ProgramRun, Sibling
from . import config as C
from .metrics import CollectError, ObservationDB, parse_json, parse_text, text_format

#: The collector's pid in its pod (klog's thread id column).
PID = 13
POLL = 0.05


def flags(args: list[str]) -> dict[str, str]:
    """Go's flag package, for the `-name value` pairs the webhook passes."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        name = args[i].lstrip("-")
        if "=" in name:
            key, value = name.split("=", 1)
            out[key] = value
            i += 1
            continue
        out[name] = args[i + 1] if i + 1 < len(args) else ""
        i += 2
    return out


def klog(level: str, line: int, message: str, source: str = "main.go") -> str:
    now = datetime.now(timezone.utc)
    return f"{level}{now:%m%d %H:%M:%S.%f} {PID:7d} {source}:{line}] {message}"


class Collector:
    """One run of the sidecar."""

    def __init__(self, run: ProgramRun, db: ObservationDB) -> None:
        self.run = run
        self.db = db
        self.flags = flags(run.args)
        self.path = self.flags.get("path", "")
        self.directory = self.path.rsplit("/", 1)[0] or "/"
        self._printed = 0

    def fatal(self, line: int, message: str) -> int:
        self.run.say(klog("F", line, message))
        return 255

    def __call__(self) -> int:
        run = self.run
        run.say(klog("I", 400, f"Trial Name: {self.flags.get('t', '')}"))
        siblings = self._started_siblings()
        if siblings is None:
            return 143
        marker = f"echo {C.TRAINING_COMPLETED} > {self.directory}"
        main = next((s for s in siblings if marker in s.cmdline), siblings[0] if siblings else None)
        if main is None:
            return self.fatal(
                425,
                "Failed to wait for worker container: unable to find main pid from the process "
                f"list [1 {PID}]",
            )
        error = self._wait(main, siblings)
        if run.stopping:
            return 143
        self._print_lines(final=True)
        if error:
            return self.fatal(425, f"Failed to wait for worker container: {error}")
        return self._report()

    # -- GetMainProcesses / WaitPIDs ------------------------------------------------------
    def _started_siblings(self) -> list[Sibling] | None:
        """The other containers' processes, once each has one (the kubelet starts the
        sidecar last); None if the pod is stopped meanwhile."""
        while True:
            siblings = self.run.siblings()
            if all(s.pid is not None or s.done for s in siblings):
                return [s for s in siblings if s.pid is not None]
            if self.run.wait(POLL):
                return None

    def _wait(self, main: Sibling, siblings: list[Sibling]) -> str:
        """Until every process seen at start has ended; the error text when the main one
        left no `completed` mark."""
        waiting = {s.name: s.pid for s in siblings}
        while waiting:
            for s in self.run.siblings():
                if s.name not in waiting or (s.pid == waiting[s.name] and s.running):
                    continue
                pid = waiting.pop(s.name)
                if s.name == main.name:
                    error = self._check_mark(pid)
                    if error:
                        return error
            self._print_lines()
            if waiting and self.run.wait(POLL):
                return ""
        return ""

    def _check_mark(self, pid: int | None) -> str:
        shown = f"{self.directory.rstrip('/')}/{pid}.pid"
        local = self.run.local(shown)
        try:
            text = local.read_text() if local is not None else None
        except OSError:
            text = None
        if text is None:
            return (
                f"training container is failed. Unable to read file {shown} for pid {pid}, "
                f"error: open {shown}: no such file or directory"
            )
        if text.strip() != C.TRAINING_COMPLETED:
            return (
                f"unable to find marker: {C.TRAINING_COMPLETED} in file: {shown} with contents: "
                f"{text} for pid: {pid}"
            )
        return ""

    # -- printMetricsFile -----------------------------------------------------------------
    def _read(self) -> str | None:
        local = self.run.local(self.path) if self.path else None
        try:
            return local.read_text(errors="replace") if local is not None else None
        except OSError:
            return None

    def _print_lines(self, final: bool = False) -> None:
        """The file's new complete lines (and, at the end, a last unfinished one), each
        through klog.Info."""
        text = self._read()
        if text is None or len(text) <= self._printed:
            return
        fresh = text[self._printed :]
        if not final:
            fresh = fresh[: fresh.rfind("\n") + 1]
        if not fresh:
            return
        self._printed += len(fresh)
        for line in fresh.removesuffix("\n").split("\n"):
            self.run.say(klog("I", 143, line))

    # -- reportMetrics --------------------------------------------------------------------
    def _report(self) -> int:
        metrics = [m for m in self.flags.get("m", "").split(";") if m] or [""]
        filters = [f for f in self.flags.get("f", "").split(";") if f]
        fmt = self.flags.get("format", "")
        if fmt not in ("TEXT", "JSON"):
            return self.fatal(449, "Failed to collect logs: format must be set TEXT or JSON")
        text = self._read()
        if text is None:
            return self.fatal(
                449,
                f"Failed to collect logs: failed to open the file: open {self.path}: no such "
                "file or directory",
            )
        lines = text.split("\n")
        try:
            logs = (
                parse_text(lines, metrics, filters) if fmt == "TEXT" else parse_json(lines, metrics)
            )
        except CollectError as exc:
            return self.fatal(449, f"Failed to collect logs: {exc}")
        if logs and logs[0].value == C.UNAVAILABLE and len(logs) == 1:
            self.run.say(
                klog(
                    "I",
                    181,
                    f"Objective metric {metrics[0]} is not found in training logs, "
                    f"{C.UNAVAILABLE} value is reported",
                    "file-metricscollector.go",
                )
            )
        self.db.report(self.flags.get("t", ""), logs)
        self.run.say(klog("I", 459, "Metrics reported. :\n" + text_format(logs)))
        return 0


def collector_program(db: ObservationDB) -> Program:
    """The program the kubelet runs for the file-metrics-collector image."""

    def program(run: ProgramRun) -> int:
        return Collector(run, db)()

    return program
