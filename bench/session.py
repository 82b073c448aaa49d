"""The session beside ipykernel, in one run (measured, not asserted; issue 21's Speed).

Each of RUNS runs starts a fresh kernel of each kind (which first alternates) and times:

- launch -> first kernel_info_reply, each kernel launched alone (KernelManager.start_kernel,
  then a client's kernel_info, as bench/startup.py measures it);
- the first `x=1` cell -> its execute_reply: for Ciao that is the session's cold start
  (the child process started, ready, and the cell run in it);
- then CELLS more `x=1` cells in each, taken in turns between the two kernels, each
  execute_request -> execute_reply (warm round trips).

Both kernels run this interpreter from temporary kernelspecs (bench/fanin.py's). Ciao's
reply comes once the session's output is all relayed (its idle); ipykernel's reply comes
before its idle. `python bench/session.py [--runs 5] [--cells 30]`; the results, with the
machine and the date, go to bench/results/session.json; docs/performance.md reads them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanin import machine, write_kernelspecs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "session.json"
TARGETS = {
    "warm x=1 round trip, ciao / ipykernel": 1.5,
    "session cold start (first cell), s": 1.0,
    "launch -> first kernel_info_reply, ciao / ipykernel": 0.5,
}


class Kernel:
    """One kernel started through KernelManager, timed from launch to kernel_info_reply."""

    def __init__(self, specs: Any, name: str, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name=name, kernel_spec_manager=specs)
        began = time.perf_counter()
        self.km.start_kernel(env=env, stderr=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.kernel_info(reply=True, timeout=60)
        self.launch = time.perf_counter() - began

    def cell(self, code: str) -> float:
        """Seconds from execute_request to execute_reply."""
        began = time.perf_counter()
        reply = self.kc.execute(code, reply=True, timeout=60)
        seconds = time.perf_counter() - began
        assert reply["content"]["status"] == "ok", reply["content"]
        return seconds

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def launch_alone(specs: Any, name: str, env: dict[str, str]) -> float:
    """Seconds from launch to the first kernel_info_reply, nothing else starting."""
    kernel = Kernel(specs, name, env)
    kernel.stop()
    return kernel.launch


def one_run(specs: Any, cells: int, env: dict[str, str], ciao_first: bool) -> dict[str, Any]:
    """Each kernel launched alone (timed), then a fresh one of each side by side: their
    first cells, then their cells taken in turns (one ipykernel cell, one Ciao cell...),
    so a change in the machine's load falls on both alike."""
    order = ["bench-ciao", "bench-ipykernel"] if ciao_first else ["bench-ipykernel", "bench-ciao"]
    launches = {name: launch_alone(specs, name, env) for name in order}
    kernels = {name: Kernel(specs, name, env) for name in order}
    try:
        got: dict[str, Any] = {}
        for name, kernel in kernels.items():
            first = kernel.cell("x=1")
            got[name] = {"launch": launches[name], "first_cell": first, "warm": []}
        for _ in range(cells):
            for name, kernel in kernels.items():
                got[name]["warm"].append(kernel.cell("x=1"))
        return {"ipykernel": got["bench-ipykernel"], "ciao": got["bench-ciao"]}
    finally:
        for kernel in kernels.values():
            kernel.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cells", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ciao-bench-") as tmp:
        specs = write_kernelspecs(Path(tmp) / "kernels")
        home = Path(tmp) / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "CIAO_CONFIG"}
        env.update(HOME=str(home), JUPYTER_PLATFORM_DIRS="1")
        runs: dict[str, list[dict[str, Any]]] = {"ipykernel": [], "ciao": []}
        for index in range(args.runs):
            result = one_run(specs, args.cells, env, ciao_first=index % 2 == 1)
            for kind in runs:
                runs[kind].append(result[kind])
    summary = {
        kind: {
            "launch_ms": statistics.median(r["launch"] for r in got) * 1000,
            "first_cell_ms": statistics.median(r["first_cell"] for r in got) * 1000,
            "first_cell_max_ms": max(r["first_cell"] for r in got) * 1000,
            "warm_ms": statistics.median(t for r in got for t in r["warm"]) * 1000,
            "warm_p90_ms": sorted(t for r in got for t in r["warm"])[
                int(0.9 * sum(len(r["warm"]) for r in got))
            ]
            * 1000,
        }
        for kind, got in runs.items()
    }
    ciao, ipy = summary["ciao"], summary["ipykernel"]
    warm, cold, launch = TARGETS
    against = {
        warm: ciao["warm_ms"] / ipy["warm_ms"],
        cold: ciao["first_cell_ms"] / 1000,
        launch: ciao["launch_ms"] / ipy["launch_ms"],
    }
    for kind, figures in summary.items():
        for what, value in figures.items():
            print(f"{kind:9s} {what:20s} {value:8.2f} ms")
    for what, value in against.items():
        verdict = "met" if value <= TARGETS[what] else "MISSED"
        print(f"{what:55s} {value:6.2f}  (target <= {TARGETS[what]}: {verdict})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
                "machine": machine(),
                "load_average_at_start": load,
                "load_average_at_end": os.getloadavg()[0],
                "runs": args.runs,
                "cells": args.cells,
                "summary": summary,
                "launch_ms": {
                    kind: [round(r["launch"] * 1000, 1) for r in got] for kind, got in runs.items()
                },
                "first_cell_ms": {
                    kind: [round(r["first_cell"] * 1000, 1) for r in got]
                    for kind, got in runs.items()
                },
                "against_targets": against,
                "targets": TARGETS,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
