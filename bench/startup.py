"""Kernel start-up and round-trip latency, measured (not asserted).

Anchor (docs/jupyter-protocol.md, 2 vCPU): ipykernel launch -> first
kernel_info_reply ~320 ms, execute -> reply ~3.4 ms; a 150-line pyzmq kernel ~172 ms /
~0.5 ms. When ipykernel is importable here it is measured beside Ciao on this machine.

Ciao's "execute" figures are the round trip of an empty cell (nothing runs) and of a
one-replica job (`%job`: at least one child process); bench/session.py measures cells in
the session beside ipykernel's.
"""

from __future__ import annotations

import importlib.util
import statistics
import time

from jupyter_client.manager import KernelManager

RUNS = 5


def measure(kernel_name: str, cells: dict[str, str]) -> dict[str, float]:
    starts, rounds = [], {label: [] for label in cells}
    for _ in range(RUNS):
        km = KernelManager(kernel_name=kernel_name)
        began = time.perf_counter()
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.kernel_info(reply=True, timeout=30)
        starts.append(time.perf_counter() - began)
        for label, code in cells.items():
            for _ in range(5):
                began = time.perf_counter()
                kc.execute(code, reply=True, timeout=60)
                rounds[label].append(time.perf_counter() - began)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    result = {"launch -> first kernel_info_reply": statistics.median(starts)}
    for label, values in rounds.items():
        result[f"execute -> reply, {label}"] = statistics.median(values)
    return result


def main() -> None:
    rows = measure("ciao", {"empty cell": "", "one-replica job": "%job\npass"})
    for what, seconds in rows.items():
        print(f"ciao      {what:45s} {seconds * 1000:8.1f} ms")
    if importlib.util.find_spec("ipykernel"):
        for what, seconds in measure("python3", {"empty cell": "", "trivial code": "pass"}).items():
            print(f"ipykernel {what:45s} {seconds * 1000:8.1f} ms")
    else:
        print("ipykernel not installed: anchor from the notes, ~320 ms launch, ~3.4 ms execute")


if __name__ == "__main__":
    main()
