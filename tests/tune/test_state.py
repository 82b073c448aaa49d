"""A study as its record's events say it: a row per trial, the best, the summary."""

from __future__ import annotations

from ciao.backend.types import JobDone, LogLine, TrialUpdate
from ciao.tune.state import StudyState, number_text, params_text

STUDY = {"objective": "minimize:loss", "trials": 4, "algorithm": "tpe"}


def test_rows_follow_their_trials_updates():
    state = StudyState.of("ciao-abcde", STUDY)
    assert (state.direction, state.metric, state.trials) == ("minimize", "loss", 4)
    assert state.apply(TrialUpdate(0, "Pending", {"x": 1.5}, "ciao-abcde-0"))
    assert state.apply(TrialUpdate(0, "Running", {"x": 1.5}, "ciao-abcde-0", replicas="1 Running"))
    assert state.apply(TrialUpdate(0, "Running", {"x": 1.5}, "ciao-abcde-0", 0.3))
    assert not state.apply(LogLine("#0 master-0", "loss=0.3"))
    row = state.rows[0]
    assert (row.state, row.value, row.replicas, row.job) == (
        "Running",
        0.3,
        "1 Running",
        "ciao-abcde-0",
    )
    assert state.state == "Running"


def test_the_best_is_the_succeeded_trial_with_the_best_value():
    state = StudyState.of("s", STUDY)
    state.apply(TrialUpdate(0, "Succeeded", {"x": 1.0}, value=0.5))
    state.apply(TrialUpdate(1, "Pruned", {"x": 9.0}, value=0.1))  # stopped early: not a result
    state.apply(TrialUpdate(2, "Succeeded", {"x": 2.1}, value=0.01))
    state.apply(TrialUpdate(3, "Failed", {"x": 3.0}, message="MetricsUnavailable: ..."))
    best = state.best()
    assert best is not None and best.number == 2
    maximizing = StudyState.of("s", {**STUDY, "objective": "maximize:accuracy"})
    maximizing.apply(TrialUpdate(0, "Succeeded", {"x": 1.0}, value=0.5))
    maximizing.apply(TrialUpdate(1, "Succeeded", {"x": 2.0}, value=0.9))
    assert maximizing.best().number == 1  # type: ignore[union-attr]


def test_the_summary_counts_the_trials_and_names_the_best():
    state = StudyState.of("s", STUDY)
    assert state.summary() == "0 of 4 trials"
    state.apply(TrialUpdate(0, "Succeeded", {"x": 2.03125}, value=0.0009765625))
    state.apply(TrialUpdate(1, "Pruned", {"x": 9.0}, value=49.0))
    state.apply(TrialUpdate(2, "Running", {"x": 5.0}))
    assert (
        state.summary()
        == "3 of 4 trials: 1 running, 1 succeeded, 1 pruned; best #0 x=2.031: loss=0.0009766"
    )
    state.apply(JobDone(True, "Completed", "done"))
    assert state.state == "Succeeded"


def test_numbers_read_as_people_read_them():
    assert (
        params_text({"lr": 0.0123456, "batch": 64, "opt": "adam"}) == "lr=0.01235 batch=64 opt=adam"
    )
    assert number_text(1.935e-05) == "1.935e-05" and number_text(None) == "-"
