"""The overhead of Ciao's own tuning engine per trial, beside the trial's own run (issue
23: <= 50 ms a trial locally).

A seeded study of `loss=(x-2)**2` over `x=uniform(-10,10)` (16 trials, tpe) runs on the
local backend through the real driver (ciao/tune/driver.py, here in-process so its
timings can be read), one trial at a time and four at once. Per trial: the engine's own
work (asking Optuna, telling it, reading the objective from the trial's lines, recording
the study's events), the launch (plan, ship, submit: what the same cell as a job costs
too) and the trial's own run (submitted to its verdict: two Python start-ups, a
supervisor's and a replica's). Beside them, the same cell as a plain job through the
Manager, submitted to its verdict. Printed and written to bench/results/tune.json; never
asserted.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from ciao.backend.types import JobDone
from ciao.config import Config
from ciao.manager import Manager, interpreter_for
from ciao.registry import Registry
from ciao.tune.driver import StudyDriver
from ciao.tune.record import StudyRecord
from ciao.tune.supervisor import quiet_optuna

TRIALS = 16
PLAIN_RUNS = 8
CELL = """%tune x=uniform(-10,10)
%objective=minimize:loss
%trials={trials};%parallel={parallel};%algorithm=tpe;%seed=1
import ciao.hp
x = ciao.hp.float("x")
print(f"loss={{(x - 2) ** 2}}")
"""
PLAIN = """%job
import ciao.hp
x = ciao.hp.float("x", 0.5)
print(f"loss={(x - 2) ** 2}")
"""


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def study(manager: Manager, config: Config, parallel: int) -> dict[str, float]:
    prepared = manager.prepare(CELL.format(trials=TRIALS, parallel=parallel))
    assert prepared.parameter is not None
    parameter = dataclasses.replace(
        prepared.parameter, owner={"kernel-id": "bench"}, directory=tempfile.gettempdir()
    )
    record = StudyRecord.create(config, parameter, "ciao", "local")
    driver = StudyDriver(record, manager, parameter, config)
    began = time.perf_counter()
    verdict = driver.run()
    wall = time.perf_counter() - began
    assert verdict.succeeded, verdict
    timings = list(driver.timings.values())
    assert len(timings) == TRIALS
    return {
        "engine per trial (ask, tell, objective, record) (ms)": ms([t.engine for t in timings]),
        "launch per trial (plan, ship, submit) (ms)": ms([t.launch for t in timings]),
        "trial's own run, submitted to verdict (ms)": ms([t.run for t in timings]),
        f"study of {TRIALS} trials, wall (s)": wall,
        "study wall per trial (ms)": wall / TRIALS * 1000,
    }


def plain(manager: Manager) -> dict[str, float]:
    """The same cell as a job through the kernel's path: submit, follow to the verdict."""
    launch, runs = [], []
    for _ in range(PLAIN_RUNS):
        prepared = manager.prepare(PLAIN)
        began = time.perf_counter()
        active = manager.submit(prepared, {"kernel-id": "bench"})
        submitted = time.perf_counter()
        done = [e for e in active.events() if isinstance(e, JobDone)]
        ended = time.perf_counter()
        manager.finished(active)
        assert done and done[0].succeeded, done
        launch.append(submitted - began)
        runs.append(ended - submitted)
    return {
        "launch (plan, ship, submit) (ms)": ms(launch),
        "own run, submitted to verdict (ms)": ms(runs),
    }


def main() -> None:
    quiet_optuna()
    root = Path(tempfile.mkdtemp(prefix="ciao-bench-tune-"))
    config = Config(run_dir=root / "runs")
    manager = Manager(lambda: config, Registry(), interpreter_for)
    plain(manager)  # warm: the first job pays for imports
    results = {
        "one trial at a time": study(manager, config, 1),
        "four trials at once": study(manager, config, 4),
        "the cell as a plain job": plain(manager),
    }
    for title, numbers in results.items():
        print(title)
        for label, value in numbers.items():
            print(f"  {label:58} {value:9.2f}")
    out = Path(__file__).with_name("results") / "tune.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"trials": TRIALS, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
