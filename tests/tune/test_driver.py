"""Studies run for real on the local backend, without a kernel: every trial an ordinary
local job launched through the Manager, followed by the study's driver (a process of its
own), its objective read from the primary replica's lines, told to Optuna; failures,
pruning, cancelling, and a driver that died and goes on when attached."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from cells import pruned_study

from ciao.backend.identity import ProcessIdentity
from ciao.backend.record import RunDir
from ciao.backend.types import Event, Idle, JobDone, LogLines, TrialUpdate
from ciao.config import Config
from ciao.manager import Manager, interpreter_for
from ciao.registry import Registry
from ciao.tune import studies
from ciao.tune.record import StudyRecord
from ciao.tune.run import StudyRun

pytestmark = pytest.mark.timeout(120)

OWNER = {"kernel-id": "test-driver"}
QUADRATIC = """%tune x=uniform(-10,10)
%objective=minimize:loss
%trials=16;%parallel=4;%algorithm=tpe;%seed=1
import ciao.hp
x = ciao.hp.float("x")
print(f"loss={(x - 2) ** 2}")
"""


@pytest.fixture
def manager(tmp_path: Path) -> Manager:
    config = Config(run_dir=tmp_path / "runs")
    return Manager(lambda: config, Registry(), interpreter_for)


def start(manager: Manager, cell: str, folder: Path) -> StudyRun:
    prepared = manager.prepare(cell)
    assert prepared.parameter is not None
    parameter = dataclasses.replace(prepared.parameter, directory=str(folder))
    run, _ = studies.start_study(manager, dataclasses.replace(prepared, parameter=parameter), OWNER)
    return run


def events(run: StudyRun) -> Iterator[Event]:
    for event in run.events():
        if not isinstance(event, Idle):
            yield event


def follow(run: StudyRun) -> tuple[list[Event], JobDone]:
    seen = list(events(run))
    done = seen[-1]
    assert isinstance(done, JobDone)
    return seen, done


def rows(run: StudyRun) -> dict[int, TrialUpdate]:
    """Each trial's last update, from the record."""
    last: dict[int, TrialUpdate] = {}
    for event, _ in run.record.run.read_events():
        if isinstance(event, TrialUpdate):
            last[event.number] = event
    return last


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_seeded_study_runs_each_trial_as_a_job_and_finds_the_minimum(manager, tmp_path):
    run = start(manager, QUADRATIC, tmp_path)
    seen, done = follow(run)

    assert done.succeeded and done.reason == "Completed", done
    trials = rows(run)
    assert sorted(trials) == list(range(16))
    assert {t.state for t in trials.values()} == {"Succeeded"}
    best = min(trials.values(), key=lambda t: t.value or 0.0)
    assert abs(float(best.params["x"]) - 2) < 1
    assert f"best #{best.number}" in done.message
    # never more than %parallel trials at once
    active: set[int] = set()
    for event in seen:
        if isinstance(event, TrialUpdate):
            (active.add if event.state in ("Pending", "Running") else active.discard)(event.number)
            assert len(active) <= 4
    # every trial is an ordinary local job, named after the study, owned by it
    for number, trial in trials.items():
        record = RunDir(manager._load_config().run_dir, trial.job)
        assert trial.job == f"{run.job.name}-{number}"
        assert record.spec()["backend"] == "local"
        assert record.spec()["plan"]["parameter"]["owner"] == {
            **OWNER,
            "study": run.job.name,
            "trial": str(number),
        }
        assert record.final() is not None and record.final().succeeded  # type: ignore[union-attr]
    # the trials' lines are in the study's record, by trial and replica
    lines = [e for e in seen if isinstance(e, LogLines)]
    assert {e.replica for e in lines} == {f"#{n} master-0" for n in range(16)}
    # and Optuna's journal has them all, told
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run.record.journal))
    )
    study = optuna.load_study(study_name=run.job.name, storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 16
    assert study.best_value == best.value


def test_the_same_seeded_study_asks_the_same_parameters_one_trial_at_a_time(manager, tmp_path):
    cell = QUADRATIC.replace("%trials=16;%parallel=4", "%trials=6;%parallel=1")
    first, second = start(manager, cell, tmp_path), start(manager, cell, tmp_path)
    follow(first), follow(second)
    params = [[t.params for _, t in sorted(rows(run).items())] for run in (first, second)]
    assert params[0] == params[1] and len(params[0]) == 6


def test_a_trial_without_its_metric_or_with_a_failing_job_fails_and_says_why(manager, tmp_path):
    cell = """%tune n=choice(1,2,3)
%objective=maximize:accuracy
%algorithm=grid;%seed=5
import sys
import ciao.hp
n = ciao.hp.int("n")
if n == 1:
    print("accuracy: 0.9")  # not Katib's format
elif n == 2:
    sys.exit("no data")
else:
    print("accuracy=0.75")
"""
    run = start(manager, cell, tmp_path)
    _, done = follow(run)

    assert done.succeeded
    by_n = {t.params["n"]: t for t in rows(run).values()}
    assert by_n[1].state == "Failed"
    assert by_n[1].message.startswith("MetricsUnavailable: master-0 never printed accuracy")
    assert by_n[2].state == "Failed" and "master-0" in by_n[2].message
    assert (by_n[3].state, by_n[3].value) == ("Succeeded", 0.75)


def test_a_study_without_a_succeeded_trial_fails(manager, tmp_path):
    cell = "%tune n=int(1,2)\n%objective=minimize:loss\n%algorithm=random\nprint('nothing')\n"
    _, done = follow(start(manager, cell.replace("random", "random\n%trials=2"), tmp_path))
    assert not done.succeeded and done.reason == "Failed"
    assert done.message.startswith("no trial succeeded: 2 of 2 trials: 2 failed")
    assert "MetricsUnavailable" in done.message


def test_a_trial_worse_than_the_median_is_pruned_and_its_processes_are_gone(manager, tmp_path):
    cell = pruned_study(str(tmp_path / "pid"))
    run = start(manager, cell, tmp_path)
    _, done = follow(run)

    assert done.succeeded
    trials = rows(run)
    assert [trials[n].state for n in range(4)] == ["Succeeded"] * 3 + ["Pruned"]
    assert trials[3].params == {"x": 9}
    assert "stopped early, after 4 values of loss" in trials[3].message
    pid = int((tmp_path / "pid").read_text())
    assert gone(pid)
    pruned = RunDir(manager._load_config().run_dir, trials[3].job).final()
    assert pruned is not None and pruned.reason == "Cancelled"


def test_cancelling_a_study_cancels_its_running_trials_and_leaves_no_process(manager, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cell = f"""%tune x=uniform(0,1)
%objective=minimize:loss
%trials=6;%parallel=2
import os, time
open(os.path.join({str(pids)!r}, str(os.getpid())), "w").close()
print("loss=1", flush=True)
while True:
    time.sleep(0.05)
"""
    run = start(manager, cell, tmp_path)
    running: set[int] = set()
    stream = events(run)
    for event in stream:
        if isinstance(event, LogLines):
            running.add(int(event.replica.split()[0][1:]))
        if len(running) == 2:
            break
    driver = run.record.run.supervisor()
    run.cancel()
    rest = list(stream)
    done = rest[-1]

    assert isinstance(done, JobDone) and done.reason == "Cancelled"
    trials = rows(run)
    assert sorted(trials) == [0, 1]  # no trial started after the cancel
    assert {t.state for t in trials.values()} == {"Cancelled"}
    assert all(gone(int(p.name)) for p in pids.iterdir()) and len(list(pids.iterdir())) == 2
    assert driver is not None and not driver.is_running()
    for trial in trials.values():
        record = RunDir(manager._load_config().run_dir, trial.job)
        assert not any(r.is_running() for r in record.replicas().values())


def test_a_study_whose_driver_died_goes_on_when_attached(manager, tmp_path):
    gate = tmp_path / "gate"
    cell = f"""%tune x=uniform(0,1)
%objective=minimize:loss
%trials=4;%parallel=2;%seed=3
import os, time
import ciao.hp
print("loss=" + str(ciao.hp.float("x")), flush=True)
while not os.path.exists({str(gate)!r}):
    time.sleep(0.02)
print("loss=" + str(ciao.hp.float("x") / 2), flush=True)
"""
    run = start(manager, cell, tmp_path)
    stream = events(run)
    started: set[str] = set()
    for event in stream:
        if isinstance(event, LogLines):
            started.add(event.replica)
        if len(started) == 2:
            break
    assert run.process is not None
    run.process.send_signal(signal.SIGKILL)  # the driver dies; its trials' jobs run on
    lost = list(stream)[-1]
    assert isinstance(lost, JobDone) and lost.reason == "Lost"
    assert "%attach" in lost.message

    config = manager._load_config()
    again = studies.attach_study(manager, config, run.job.name, viewer="another-notebook")
    assert again.process is not None and again.process.pid != run.process.pid
    gate.touch()
    _, done = follow(again)

    assert done.succeeded, done
    trials = rows(again)
    assert sorted(trials) == [0, 1, 2, 3]
    assert {t.state for t in trials.values()} == {"Succeeded"}
    for trial in trials.values():  # the resumed ones kept their first value: min is x / 2
        assert trial.value == pytest.approx(float(trial.params["x"]) / 2)
    record = StudyRecord.of(config.run_dir, run.job.name)
    assert record.state().done == done
    assert ProcessIdentity.from_list(None) is None
