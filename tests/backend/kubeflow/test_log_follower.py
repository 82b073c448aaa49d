"""Following one container's log: the cursor %attach resumes from counts delivered lines only."""

from __future__ import annotations

import threading

import pytest

from ciao.backend.kubeflow.client import ApiError
from ciao.backend.kubeflow.log_follower import ContainerFollower, ContainerView, parse_timestamp
from ciao.backend.types import Diagnosis

pytestmark = pytest.mark.timeout(30)

LOG = b"".join(f"2024-05-01T10:00:0{i}.000000000Z line {i}\n".encode() for i in range(5))


class OneLog:
    """A cluster whose container log is LOG, served whole."""

    class Response:
        def stream(self, chunk_size, decode_content=True):
            yield LOG

        def close(self):
            pass

    def stream(self, path, query, timeout=None):
        return self.Response()


def follow(put) -> ContainerFollower:
    follower = ContainerFollower(
        OneLog(),
        "/api/v1/namespaces/default/pods/job-master-0",
        "pytorch",
        "master-0",
        lambda: ContainerView(started=True, final=True),
        threading.Condition(),
        put,
    )
    follower.start().join(10)
    assert follower.done.is_set()
    return follower


def test_the_cursor_ends_at_the_last_line_the_queue_took():
    taken = []

    def put(line):
        if len(taken) == 2:
            return False  # following stopped: this line was not delivered
        taken.append(line.text)
        return True

    follower = follow(put)
    assert taken == ["line 0", "line 1"]
    assert follower.cursor == (parse_timestamp("2024-05-01T10:00:01Z"), 1)


def test_a_log_read_to_its_end_leaves_the_cursor_at_its_last_line():
    taken = []
    follower = follow(lambda line: taken.append(line.text) or True)
    assert taken == [f"line {i}" for i in range(5)]
    assert follower.cursor == (parse_timestamp("2024-05-01T10:00:04Z"), 1)


class Refusing:
    """A cluster that answers every log request with one API error."""

    def __init__(self, status: int, message: str) -> None:
        self.error = ApiError(message, status)

    def stream(self, path, query, timeout=None):
        raise self.error


def follow_with(cluster, views) -> list:
    seen = []
    views = iter(views)
    last = [None]

    def view():
        last[0] = next(views, last[0])
        return last[0]

    ContainerFollower(
        cluster,
        "/api/v1/namespaces/default/pods/job-worker-0",
        "pytorch",
        "worker-0",
        view,
        threading.Condition(),
        lambda item: seen.append(item) or True,
    ).start().join(10)
    return seen


def test_a_pod_deleted_before_its_log_was_read_is_reported_as_lost():
    seen = follow_with(
        Refusing(404, 'pods "job-worker-0" not found'),
        [ContainerView(started=True, running=True), ContainerView(exists=False)],
    )
    (diagnosis,) = seen
    assert isinstance(diagnosis, Diagnosis) and diagnosis.reason == "LogsLost"
    assert "%cleanPolicy=none" in diagnosis.hint


def test_a_forbidden_log_says_which_permission_is_missing_once():
    seen = follow_with(
        Refusing(403, 'pods "job-worker-0" is forbidden: cannot get resource "pods/log"'),
        [ContainerView(started=True, running=True)],
    )
    (diagnosis,) = seen
    assert diagnosis.reason == "LogForbidden" and "pods/log" in diagnosis.hint
