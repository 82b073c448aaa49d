"""Fan-in: N replicas x 20,000 lines of 75 bytes, three ways in one run (measured, not
asserted; issue 9 item 5).

- pipe floor: the N processes piped to one reader in this process (a selector), no kernel;
- ipykernel: a cell that starts the same N processes and relays every line with `print`,
  prefixed as Ciao prefixes them (`[worker-3] `);
- ciao: a `%master=1 %worker=N-1` cell running the same program, with the output budget
  off (`output: {max_bytes_per_second: 0, max_messages_per_second: 0, max_lines: 0}`).

Both kernels are started through jupyter_client from kernelspecs written to a temporary
directory, and the lines are counted as they arrive on the client's IOPub `stream`
messages (Ciao's display_data / update_display_data, its live job view, are not counted).
A run's time is from the execute_request sent to `status: idle`; a line that never arrived
is lost, one that arrived after idle is late. Each replica's lines are checked (every index
once, in order, then `DONE`).

Also: the Ciao kernel's peak RSS (VmHWM at the end of the cell), the supervisor's (VmHWM
sampled while it runs), and the size of the job's events.jsonl per byte of output.

`python bench/fanin.py [--replicas 8,16] [--lines 20000] [--repeats 3]`; the results go to
bench/results/fanin.json with the machine and the date. docs/performance.md says what the
figures are and the targets (issue 9).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import queue
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fanin.json"

LINES = 20_000
REPLICAS = (8, 16)
REPEATS = 5
#: `line 00042 ` + 63 x + newline: 75 bytes a line.
PAD = 63
LINE_BYTES = len(f"line {0:05d} ") + PAD + 1
#: Seconds one kernel run may take before it is counted as failed (and stopped).
RUN_TIMEOUT = 180.0
#: After idle, how long IOPub is still read for late lines.
DRAIN = 0.5

#: The targets of issue 9, item 4 and its Tests.
TARGET_RATIO = 0.5
TARGET_KERNEL_RSS_MB = 64.0
TARGET_RECORD_RATIO = 1.5

MODES = ("pipe floor", "ipykernel", "ciao")


def replica_program(lines: int) -> str:
    """What every replica runs, in all three modes."""
    return f"for i in range({lines}):\n    print(f'line {{i:05d}} ' + 'x' * {PAD})\nprint('DONE')\n"


def replica_names(n: int) -> list[str]:
    """Ciao's names for a job of one master and n - 1 workers."""
    return ["master-0"] + [f"worker-{k}" for k in range(n - 1)]


def output_bytes(n: int, lines: int) -> int:
    """Bytes the replicas print, newlines included (each: `lines` lines, then DONE)."""
    return n * (lines * LINE_BYTES + len("DONE\n"))


def replica_env() -> dict[str, str]:
    """Ciao's replicas run with PYTHONUNBUFFERED=1 (ciao/backend/local/env.py); so do the
    floor's and ipykernel's, so that all three read the same writes."""
    return dict(os.environ, PYTHONUNBUFFERED="1")


# ---- counting what arrived ---------------------------------------------------------------

_PREFIXED = re.compile(r"\[([a-z]+-\d+)\] (.*)")
_LINE = re.compile(r"line (\d{5}) x{" + str(PAD) + "}")


@dataclass
class Tally:
    """Every replica's lines as they arrived: lost, duplicated, out of order, other."""

    names: list[str]
    lines: int
    seen: dict[str, bytearray] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    done: dict[str, bool] = field(default_factory=dict)
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    other: int = 0
    other_examples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in self.names:
            self.seen[name] = bytearray(self.lines)
            self.last[name] = -1
            self.done[name] = False

    def add_text(self, texts: list[str]) -> None:
        """The stream texts of one stream name, in order (a line may span messages)."""
        whole = "".join(texts)
        parts = whole.split("\n")
        if parts and parts[-1] == "":
            parts.pop()
        for line in parts:
            self.add_line(line)

    def add_line(self, line: str) -> None:
        match = _PREFIXED.fullmatch(line)
        if match is None or match.group(1) not in self.seen:
            self._other(line)
            return
        name, text = match.groups()
        if text == "DONE":
            if self.done[name]:
                self.duplicates += 1
            self.done[name] = True
            self.received += 1
            return
        body = _LINE.fullmatch(text)
        if body is None:
            self._other(line)
            return
        index = int(body.group(1))
        if index >= self.lines:
            self._other(line)
            return
        self.received += 1
        if self.seen[name][index]:
            self.duplicates += 1
        self.seen[name][index] = 1
        if index < self.last[name] or self.done[name]:
            self.out_of_order += 1
        self.last[name] = max(self.last[name], index)

    def _other(self, line: str) -> None:
        self.other += 1
        if len(self.other_examples) < 5:
            self.other_examples.append(line[:200])

    @property
    def lost(self) -> int:
        missing = sum(self.lines - sum(seen) for seen in self.seen.values())
        return missing + sum(not done for done in self.done.values())


# ---- /proc ---------------------------------------------------------------------------------


def proc_status_kb(pid: int, key: str) -> int | None:
    """A `VmHWM` / `VmRSS` figure of /proc/<pid>/status, in kB; None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (/proc/<pid>/stat); None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 2)


def mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


class SupervisorSampler:
    """Finds the job's supervisor (the `supervisor` file of its run directory) and samples
    its VmHWM until stopped; the last sample before it exits is its peak (or close to it)."""

    def __init__(self, run_root: Path, interval: float = 0.02) -> None:
        self.run_root = run_root
        self.interval = interval
        self.pid: int | None = None
        self.peak_kb: int | None = None
        self.cpu_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SupervisorSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _find(self) -> int | None:
        for path in self.run_root.glob("*/supervisor"):
            with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
                pid = int(json.loads(path.read_text())[0])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"supervisor" in cmdline:
                    return pid
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.pid is None:
                self.pid = self._find()
            if self.pid is not None:
                hwm = proc_status_kb(self.pid, "VmHWM")
                if hwm is not None:
                    self.peak_kb = max(self.peak_kb or 0, hwm)
                    self.cpu_s = cpu_seconds(self.pid) or self.cpu_s
            self._stop.wait(self.interval)

    def stop_job(self) -> None:
        """After a failed run: SIGTERM the supervisor (it stops its replicas)."""
        if self.pid is not None and proc_status_kb(self.pid, "VmRSS") is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)


# ---- (a) the pipe floor ----------------------------------------------------------------------


def run_floor(n: int, lines: int) -> dict[str, Any]:
    """The N processes piped to one selector in this process: time until every line read."""
    program = replica_program(lines)
    env = replica_env()
    began = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, env=env)
        for _ in range(n)
    ]
    counts = dict.fromkeys(range(n), 0)
    with selectors.DefaultSelector() as selector:
        for k, process in enumerate(processes):
            assert process.stdout is not None
            selector.register(process.stdout, selectors.EVENT_READ, k)
        open_pipes = n
        while open_pipes:
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    open_pipes -= 1
                    continue
                counts[key.data] += data.count(b"\n")
    seconds = time.perf_counter() - began
    for process in processes:
        process.wait()
        assert process.stdout is not None
        process.stdout.close()
    expected = n * (lines + 1)
    received = sum(counts.values())
    return {"seconds": seconds, "received": received, "lost": max(0, expected - received)}


# ---- kernels -------------------------------------------------------------------------------


def write_kernelspecs(directory: Path) -> KernelSpecManager:
    """Temporary kernelspecs for both kernels, with this interpreter (so this venv)."""
    specs = {
        "bench-ipykernel": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "bench-ciao": [sys.executable, "-m", "ciao", "kernel", "-f", "{connection_file}"],
    }
    for name, argv in specs.items():
        path = directory / name
        path.mkdir(parents=True, exist_ok=True)
        spec = {"argv": argv, "display_name": name, "language": "python"}
        if name == "bench-ciao":
            spec["interrupt_mode"] = "message"
        (path / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(directory)])


@contextlib.contextmanager
def kernel(
    specs: KernelSpecManager, name: str, env: dict[str, str], log: Path
) -> Iterator[tuple[KernelManager, Any]]:
    km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
    with log.open("ab") as err:
        km.start_kernel(env=env, stdout=err, stderr=err)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)


def kernel_pid(km: KernelManager) -> int | None:
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None) or getattr(provisioner, "pid", None)
    return int(pid) if pid else None


def execute_and_count(kc: Any, code: str, tally: Tally, timeout: float) -> dict[str, Any]:
    """Send the cell; read IOPub until its `status: idle` (the time), then a little more
    for late lines. Stream texts are only kept while timing, and checked afterwards."""
    texts: dict[str, list[str]] = {"stdout": [], "stderr": []}
    counts = {"stream": 0, "display": 0, "error": 0, "other": 0}
    errors: list[str] = []
    began = time.perf_counter()
    msg_id = kc.execute(code)
    deadline = began + timeout
    seconds: float | None = None
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            message = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            break
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            counts["stream"] += 1
            texts.setdefault(content["name"], []).append(content["text"])
        elif kind in ("display_data", "update_display_data"):
            counts["display"] += 1
        elif kind == "error":
            counts["error"] += 1
            errors.append(f"{content.get('ename')}: {content.get('evalue')}")
        elif kind == "status" and content["execution_state"] == "idle":
            seconds = time.perf_counter() - began
            break
        elif kind not in ("status", "execute_input"):
            counts["other"] += 1
    late_texts: dict[str, list[str]] = {}
    if seconds is not None:  # anything after idle is late
        end = time.perf_counter() + DRAIN
        while (left := end - time.perf_counter()) > 0:
            try:
                message = kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "stream":
                late_texts.setdefault(message["content"]["name"], []).append(
                    message["content"]["text"]
                )
    reply_status = None
    with contextlib.suppress(queue.Empty):
        while reply_status is None:
            reply = kc.get_shell_msg(timeout=5 if seconds is not None else 0.1)
            if reply["parent_header"].get("msg_id") == msg_id:
                reply_status = reply["content"].get("status")
                if reply_status == "error":
                    errors.append(
                        f"reply {reply['content'].get('ename')}: {reply['content'].get('evalue')}"
                    )
    on_time = Tally(tally.names, tally.lines)
    for name in texts:
        tally.add_text(texts[name] + late_texts.get(name, []))
        on_time.add_text(texts[name])
    return {
        "seconds": seconds,
        "timed_out": seconds is None,
        "received": tally.received,
        "received_before_idle": on_time.received,
        "late": tally.received - on_time.received,
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "out_of_order": tally.out_of_order,
        "other_lines": tally.other,
        "other_examples": tally.other_examples,
        "stream_messages": counts["stream"],
        "display_messages": counts["display"],
        "errors": errors,
        "reply": reply_status,
    }


# ---- (b) ipykernel relaying the lines --------------------------------------------------------


def ipykernel_cell(n: int, lines: int) -> str:
    """Start the N processes, read their pipes with a selector, print each line prefixed."""
    return textwrap.dedent(
        f"""\
        def _relay():
            import os, selectors, subprocess, sys
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            program = {replica_program(lines)!r}
            names = {replica_names(n)!r}
            sel = selectors.DefaultSelector()
            procs = []
            for name in names:
                argv = [sys.executable, "-c", program]
                p = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
                procs.append(p)
                sel.register(p.stdout, selectors.EVENT_READ, [f"[{{name}}] ", b""])
            left = len(procs)
            while left:
                for key, _ in sel.select():
                    data = os.read(key.fd, 65536)
                    prefix, carry = key.data
                    if not data:
                        sel.unregister(key.fileobj)
                        left -= 1
                        if carry:
                            print(prefix + carry.decode(errors="replace"))
                        continue
                    *whole, key.data[1] = (carry + data).split(b"\\n")
                    for line in whole:
                        print(prefix + line.decode(errors="replace"))
            for p in procs:
                p.wait()
                p.stdout.close()
        _relay()
        """
    )


def run_ipykernel(specs: KernelSpecManager, tmp: Path, n: int, lines: int) -> dict[str, Any]:
    if importlib.util.find_spec("ipykernel") is None:
        raise RuntimeError("ipykernel is not installed (pip install -e '.[bench]')")
    log = tmp / "ipykernel.log"
    with kernel(specs, "bench-ipykernel", dict(os.environ), log) as (km, kc):
        tally = Tally(replica_names(n), lines)
        pid = kernel_pid(km)
        cpu = cpu_seconds(pid)
        result = execute_and_count(kc, ipykernel_cell(n, lines), tally, RUN_TIMEOUT)
        result["kernel_cpu_s"] = cpu_delta(cpu, cpu_seconds(pid))
        result["kernel_peak_rss_mb"] = mb(proc_status_kb(pid or -1, "VmHWM"))
        if result["timed_out"]:
            with contextlib.suppress(Exception):
                km.interrupt_kernel()
    return result


# ---- (c) ciao, budget off --------------------------------------------------------------------


def ciao_cell(n: int, lines: int) -> str:
    return f"%framework=pytorch\n%master=1\n%worker={n - 1}\n" + replica_program(lines)


def run_ciao(specs: KernelSpecManager, tmp: Path, n: int, lines: int, rep: int) -> dict[str, Any]:
    home = tmp / f"ciao-{n}-{rep}"
    run_root = home / "runs"
    run_root.mkdir(parents=True)
    config = home / "config.yaml"
    config.write_text(
        f"local: {{run_dir: {json.dumps(str(run_root))}}}\n"
        "output: {max_bytes_per_second: 0, max_messages_per_second: 0, max_lines: 0}\n"
    )
    env = dict(os.environ, CIAO_CONFIG=str(config))
    log = tmp / "ciao.log"
    with (
        kernel(specs, "bench-ciao", env, log) as (km, kc),
        SupervisorSampler(run_root) as sampler,
    ):
        tally = Tally(replica_names(n), lines)
        pid = kernel_pid(km)
        cpu = cpu_seconds(pid)
        result = execute_and_count(kc, ciao_cell(n, lines), tally, RUN_TIMEOUT)
        result["kernel_cpu_s"] = cpu_delta(cpu, cpu_seconds(pid))
        result["kernel_peak_rss_mb"] = mb(proc_status_kb(pid or -1, "VmHWM"))
        if result["timed_out"]:
            sampler.stop_job()
    result["supervisor_peak_rss_mb"] = mb(sampler.peak_kb)
    result["supervisor_cpu_s"] = None if sampler.cpu_s is None else round(sampler.cpu_s, 2)
    records = list(run_root.glob("*/events.jsonl"))
    if len(records) == 1:
        size = records[0].stat().st_size
        result["job"] = records[0].parent.name
        result["record_bytes"] = size
        result["record_per_output_byte"] = round(size / output_bytes(n, lines), 3)
    else:
        result["record_bytes"] = None
        result["record_per_output_byte"] = None
        result["errors"].append(f"{len(records)} events.jsonl files in the run directory")
    return result


# ---- the run -------------------------------------------------------------------------------


def stderr_tail(log: Path) -> str:
    """The end of what a kernel wrote, less ipykernel's warning about TCP at every start."""
    if not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "without encryption" not in line)[-2000:]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_mb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mb = int(line.split()[1]) // 1024
    versions = {}
    for package in ("ipykernel", "jupyter_client", "pyzmq", "ciao"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": memory_mb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["seconds"] for r in runs if r.get("seconds") is not None]
    summary: dict[str, Any] = {
        "best": min(times) if times else None,
        "median": statistics.median(times) if times else None,
        "lost_max": max(r["lost"] for r in runs),
        "late_max": max(r.get("late", 0) for r in runs),
        "failed": sum(1 for r in runs if r.get("seconds") is None),
    }
    for key in ("kernel_peak_rss_mb", "supervisor_peak_rss_mb", "record_per_output_byte"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            summary[key] = max(values)
    for key in ("kernel_cpu_s", "supervisor_cpu_s"):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            summary[key + "_median"] = statistics.median(values)
    return summary


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    """`value` as `spec` says, or a dash as wide."""
    if value is None:
        width = re.match(r"\d*", spec)
        return "-".rjust(int(width.group() or 0) if width else 0)
    return f"{value:{spec}}{unit}"


def report(results: dict[str, Any]) -> list[str]:
    p = results["parameters"]
    out = [
        f"fan-in: N replicas x {p['lines']:,} lines of {p['line_bytes']} bytes, "
        f"best and median of {p['repeats']}; lines/s and MB/s at the median; peak RSS the "
        "highest of the runs; CPU the median seconds of the kernel's (and supervisor's) "
        "CPU during the cell",
        f"{'N':>3}  {'mode':<11} {'best s':>7} {'median s':>9} {'lines/s':>10} {'MB/s':>6} "
        f"{'lost':>5} {'kernel MB':>10} {'kernel CPU':>11} {'superv. MB':>11} "
        f"{'superv. CPU':>12} {'record/out':>11}",
    ]
    for n_key, modes in results["fanin"].items():
        n = int(n_key)
        total_lines = n * (p["lines"] + 1)
        total_mb = output_bytes(n, p["lines"]) / 1e6
        for mode in MODES:
            s = modes[mode]["summary"]
            median = s["median"]
            out.append(
                f"{n:>3}  {mode:<11} {fmt(s['best'], '7.2f')} {fmt(median, '9.2f')} "
                f"{fmt(median and total_lines / median, '10,.0f')} "
                f"{fmt(median and total_mb / median, '6.1f')} {s['lost_max']:>5} "
                f"{fmt(s.get('kernel_peak_rss_mb'), '10.1f')} "
                f"{fmt(s.get('kernel_cpu_s_median'), '11.2f')} "
                f"{fmt(s.get('supervisor_peak_rss_mb'), '11.1f')} "
                f"{fmt(s.get('supervisor_cpu_s_median'), '12.2f')} "
                f"{fmt(s.get('record_per_output_byte'), '11.2f')}"
            )
    out.append("")
    for n_key, verdict in results["targets"].items():
        ratio = verdict["ciao_over_ipykernel_median"]
        out.append(
            f"N={n_key}: ciao / ipykernel (median) = {fmt(ratio, '.2f')} "
            f"(target <= {TARGET_RATIO}) {'ok' if verdict['ratio_ok'] else 'NOT MET'}; "
            f"lost {verdict['lost']} {'ok' if verdict['lost_ok'] else 'NOT MET'}; "
            f"kernel peak RSS {fmt(verdict['kernel_peak_rss_mb'], '.1f', ' MB')} "
            f"(target <= {TARGET_KERNEL_RSS_MB:.0f}) {'ok' if verdict['rss_ok'] else 'NOT MET'}; "
            f"record {fmt(verdict['record_per_output_byte'], '.2f', 'x')} output "
            f"(target <= {TARGET_RECORD_RATIO}) {'ok' if verdict['record_ok'] else 'NOT MET'}"
        )
    for n_key, modes in results["fanin"].items():
        for mode in MODES:
            for i, run in enumerate(modes[mode]["runs"]):
                odd = {
                    k: run[k]
                    for k in ("errors", "other_examples", "late", "duplicates", "out_of_order")
                    if run.get(k)
                }
                if run.get("timed_out") or run.get("lost") or odd:
                    out.append(f"N={n_key} {mode} run {i + 1}: lost {run.get('lost')} {odd}")
    return out


def targets(fanin: dict[str, Any]) -> dict[str, Any]:
    verdicts = {}
    for n_key, modes in fanin.items():
        ciao, ipy = modes["ciao"]["summary"], modes["ipykernel"]["summary"]
        ratio = ciao["median"] / ipy["median"] if ciao["median"] and ipy["median"] else None
        rss = ciao.get("kernel_peak_rss_mb")
        record = ciao.get("record_per_output_byte")
        verdicts[n_key] = {
            "ciao_over_ipykernel_median": ratio,
            "ciao_over_ipykernel_best": (
                ciao["best"] / ipy["best"] if ciao["best"] and ipy["best"] else None
            ),
            "ratio_ok": ratio is not None and ratio <= TARGET_RATIO,
            "lost": ciao["lost_max"],
            "lost_ok": ciao["lost_max"] == 0 and ciao["failed"] == 0,
            "kernel_peak_rss_mb": rss,
            "rss_ok": rss is not None and rss <= TARGET_KERNEL_RSS_MB,
            "record_per_output_byte": record,
            "record_ok": record is not None and record <= TARGET_RECORD_RATIO,
        }
    return verdicts


def guarded(label: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One run; a bench that fails is a figure (with its error), not a crashed bench."""
    load = os.getloadavg()[0]
    try:
        return {**measure(), "load_1min_before": load}
    except Exception as exc:  # noqa: BLE001 - every failure is reported, the run goes on
        print(f"  {label}: failed: {type(exc).__name__}: {exc}", flush=True)
        error = f"{type(exc).__name__}: {exc}"
        return {"seconds": None, "lost": -1, "errors": [error], "load_1min_before": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default=",".join(map(str, REPLICAS)))
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.replicas.split(",")]

    began = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    fanin: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ciao-fanin-") as tmp_name:
        tmp = Path(tmp_name)
        specs = write_kernelspecs(tmp / "kernels")
        for n in sizes:
            runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for rep in range(args.repeats):  # interleaved, so drift in load hits all three
                measures: dict[str, Callable[[], dict[str, Any]]] = {
                    "pipe floor": lambda n=n: run_floor(n, args.lines),
                    "ipykernel": lambda n=n: run_ipykernel(specs, tmp, n, args.lines),
                    "ciao": lambda n=n, rep=rep: run_ciao(specs, tmp, n, args.lines, rep),
                }
                for mode, measure in measures.items():
                    result = guarded(f"N={n} {mode}", measure)
                    runs[mode].append(result)
                    print(
                        f"  N={n:<2} {mode:<10} run {rep + 1}: "
                        f"{fmt(result.get('seconds'), '.2f', ' s')}, lost {result['lost']}",
                        flush=True,
                    )
                # the record was measured; it is not kept
                shutil.rmtree(tmp / f"ciao-{n}-{rep}", ignore_errors=True)
            fanin[str(n)] = {
                mode: {"runs": mode_runs, "summary": summarize(mode_runs)}
                for mode, mode_runs in runs.items()
            }
        kernel_logs = {name: stderr_tail(tmp / f"{name}.log") for name in ("ipykernel", "ciao")}
    ended = datetime.datetime.now(datetime.timezone.utc)
    results = {
        "benchmark": "fanin",
        "date": began.isoformat(timespec="seconds"),
        "duration_s": round((ended - began).total_seconds(), 1),
        "machine": machine(),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "parameters": {
            "replicas": sizes,
            "lines": args.lines,
            "line_bytes": LINE_BYTES,
            "repeats": args.repeats,
            "output_bytes": {str(n): output_bytes(n, args.lines) for n in sizes},
            "ciao_output_config": {
                "max_bytes_per_second": 0,
                "max_messages_per_second": 0,
                "max_lines": 0,
            },
        },
        "fanin": fanin,
        "targets": {},
        "kernel_stderr_tail": kernel_logs,
    }
    results["targets"] = targets(fanin)
    print()
    print("\n".join(report(results)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
