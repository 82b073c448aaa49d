"""The study's live view: a row per trial (parameters, state, objective, the best marked,
its replicas, why it failed), as text and HTML; `%best`'s bundle."""

from __future__ import annotations

from ciao.backend.types import Job, JobDone, TrialUpdate
from ciao.kernel.study_view import StudyView, best_bundle
from ciao.tune.state import StudyState

STUDY = {"objective": "minimize:loss", "trials": 3, "algorithm": "tpe", "parallel": 2}


def view(limit: int | None = 30) -> StudyView:
    job: Job[None] = Job("pytorch", "ciao-abcde", {"trials": 3}, "study", None)
    return StudyView(job, StudyState.of("ciao-abcde", STUDY), STUDY, submitted=0.0, limit=limit)


def test_the_table_has_a_row_per_trial_with_the_best_marked_and_a_failure_said():
    shown = view()
    shown.apply(TrialUpdate(0, "Succeeded", {"x": 2.5}, "ciao-abcde-0", 0.25, "", "1 Succeeded"))
    shown.apply(
        TrialUpdate(
            1,
            "Failed",
            {"x": -3.0},
            "ciao-abcde-1",
            None,
            "MetricsUnavailable: master-0 never printed loss",
            "1 Succeeded",
        )
    )
    shown.apply(TrialUpdate(2, "Running", {"x": 1.9}, "ciao-abcde-2", 0.01, "", "1 Running"))
    text = shown.text(now=5.0)
    lines = text.splitlines()
    assert lines[0] == (
        "ciao-abcde  study of 3 trials, tpe, minimize loss  Running  0:05  3 of 3 trials: "
        "1 running, 1 succeeded, 1 failed; best #0 x=2.5: loss=0.25"
    )
    assert lines[1].split() == [
        "TRIAL",
        "BEST",
        "STATE",
        "LOSS",
        "PARAMETERS",
        "REPLICAS",
        "MESSAGE",
    ]
    assert lines[2].split() == ["#0", "*", "Succeeded", "0.25", "x=2.5", "1", "Succeeded"]
    assert lines[3].split()[:4] == ["#1", "Failed", "-", "x=-3"]
    assert lines[3].endswith("MetricsUnavailable: master-0 never printed loss")
    assert lines[4].split()[:3] == ["#2", "Running", "0.01"]
    html = shown.html(now=5.0)
    assert html.count("<tr>") == 4 and html.count("★") == 1
    assert "MetricsUnavailable" in html and "color:#cf222e" in html


def test_the_verdict_ends_the_clock_and_is_in_the_headline():
    shown = view()
    shown.apply(TrialUpdate(0, "Succeeded", {"x": 2.5}, value=0.25), now=1.0)
    shown.apply(JobDone(True, "Completed", "done"), now=3.0)
    assert " Succeeded  0:03 " in shown.text(now=100.0).splitlines()[0]


def test_the_live_view_shows_the_running_the_best_and_the_latest_of_many_trials():
    shown = view(limit=5)
    for number in range(20):
        state = "Running" if number in (18, 19) else "Succeeded"
        shown.apply(TrialUpdate(number, state, {"x": number}, value=float(abs(number - 4))))
    text = shown.text(now=0.0)
    trials = [line.split()[0] for line in text.splitlines()[2:-1]]
    assert trials == ["#4", "#16", "#17", "#18", "#19"]
    assert text.splitlines()[-1] == "... 15 more trials: %study ciao-abcde shows them all"
    assert len(view(limit=None).shown_rows()[0]) == 0


def test_best_gives_the_parameters_a_line_each_and_as_data():
    shown = view()
    shown.apply(
        TrialUpdate(0, "Succeeded", {"lr": 0.012345678, "batch": 64, "opt": "adam"}, value=0.1)
    )
    best = shown.state.best()
    assert best is not None
    bundle = best_bundle("ciao-abcde", best)
    assert bundle["text/plain"] == "lr: 0.01235\nbatch: 64\nopt: adam"
    assert bundle["application/vnd.ciao.best+json"] == {
        "lr": 0.012345678,
        "batch": 64,
        "opt": "adam",
    }
