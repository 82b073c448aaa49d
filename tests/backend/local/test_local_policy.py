"""The operator's success and clean-up rules the local backend follows (pure functions)."""

from __future__ import annotations

import pytest

from ciao.backend.local.policy import (
    deciding_replica,
    exit_message,
    exit_status,
    outcome_of_exit,
    stop_reason_after_outcome,
)
from ciao.interpreter.types import Parameter, RoleSpec


def param(framework: str, clean_policy=None, **counts: int) -> Parameter:
    roles = {role: RoleSpec(role, n) for role, n in counts.items()}
    return Parameter(framework, roles, generate_name="job", clean_policy=clean_policy)


@pytest.mark.parametrize(
    ("parameter", "decider"),
    [
        (param("pytorch", master=1, worker=2), "master-0"),
        (param("tensorflow", chief=1, ps=1, worker=2), "chief-0"),
        (param("tensorflow", master=1, worker=2), "master-0"),
        (param("tensorflow", ps=2, worker=3), "worker-0"),
        (param("tensorflow", ps=1, evaluator=1), None),
    ],
)
def test_who_decides_the_jobs_success(parameter: Parameter, decider: str | None):
    assert deciding_replica(parameter) == decider


def test_exit_codes_and_signals_read_as_kubernetes_reports_them():
    assert exit_status(0) == (0, "Completed")
    assert exit_status(3) == (3, "ExitCode 3")
    assert exit_status(-9) == (137, "Signal SIGKILL")
    assert exit_status(-15) == (143, "Signal SIGTERM")
    assert exit_message("worker-1", 1) == "worker-1 exited with code 1"
    assert exit_message("ps-0", -9) == "ps-0 was killed by signal SIGKILL"


def test_any_failure_fails_the_job_and_names_the_replica():
    done = outcome_of_exit(param("pytorch", master=1, worker=2), "worker-1", 2, {"worker-1": 2})

    assert done is not None and not done.succeeded
    assert (done.failed_replica, done.exit_code) == ("worker-1", 2)
    assert done.message == "worker-1 exited with code 2"


def test_only_the_deciding_replica_succeeds_the_job():
    parameter = param("tensorflow", ps=1, worker=2)

    assert outcome_of_exit(parameter, "worker-1", 0, {"worker-1": 0}) is None
    done = outcome_of_exit(parameter, "worker-0", 0, {"worker-0": 0, "worker-1": 0})
    assert done is not None and done.succeeded and done.message == "worker-0 succeeded"


def test_without_a_deciding_replica_all_but_parameter_servers_must_succeed():
    parameter = param("tensorflow", ps=1, evaluator=2)

    assert outcome_of_exit(parameter, "evaluator-0", 0, {"evaluator-0": 0}) is None
    done = outcome_of_exit(parameter, "evaluator-1", 0, {"evaluator-0": 0, "evaluator-1": 0})
    assert done is not None and done.succeeded


@pytest.mark.parametrize(
    ("policy", "stops_workers"), [("All", True), ("Running", True), ("None", False)]
)
def test_after_the_outcome_ps_always_stop_others_per_clean_policy(policy, stops_workers):
    parameter = param("tensorflow", policy, chief=1, ps=1, worker=1)

    assert stop_reason_after_outcome(parameter, "ps-0")
    assert bool(stop_reason_after_outcome(parameter, "worker-0")) is stops_workers


def test_default_clean_policy_stops_nothing_but_ps_without_ps_it_is_none():
    assert stop_reason_after_outcome(param("pytorch", master=1, worker=1), "worker-0") is None
    assert stop_reason_after_outcome(param("tensorflow", ps=1, worker=2), "worker-1")


def test_a_failed_job_stops_the_rest_whatever_the_clean_policy():
    parameter = param("pytorch", master=1, worker=1)
    assert stop_reason_after_outcome(parameter, "worker-0", succeeded=False)
