"""The session on its own (no kernel around it): a real ipykernel child, driven through
`Session` as the kernel drives it, and the hidden runs the kernel's job cells will use."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from kernel_client import ended

from ciao.session import Session
from ciao.session.errors import SessionEnded, SessionError, describe_exit


class Collected:
    """A Relay that keeps what the session published for a cell."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    def publish(self, msg_type, content, metadata, buffers) -> None:
        self.messages.append((msg_type, content))

    def text(self) -> str:
        return "".join(c["text"] for t, c in self.messages if t == "stream")

    def of(self, msg_type: str) -> list[dict]:
        return [c for t, c in self.messages if t == msg_type]


@pytest.fixture(scope="module")
def session():
    session = Session()
    assert session.running is False  # nothing starts until asked
    assert session.start() is None  # a first session: nothing to announce
    yield session
    session.close()


def run(session: Session, code: str, count: int) -> tuple[dict, Collected]:
    relay = Collected()
    return session.execute(code, relay, None, count=count), relay


def test_names_persist_and_the_last_value_is_a_result_with_the_kernels_count(session):
    reply, relay = run(session, "x = 41\nprint('x is', x)", 7)
    assert reply["status"] == "ok" and reply["execution_count"] == 7
    assert relay.text() == "x is 41\n"
    reply, relay = run(session, "x + 1", 8)
    (result,) = relay.of("execute_result")
    assert result["data"]["text/plain"] == "42" and result["execution_count"] == 8


def test_a_traceback_names_the_kernels_cell_and_line(session):
    reply, relay = run(session, "def g():\n    raise ValueError('bad')\n\ng()", 12)
    assert reply["status"] == "error" and reply["ename"] == "ValueError"
    (error,) = relay.of("error")
    text = strip_ansi("\n".join(error["traceback"]))
    assert "In[12], line 4" in text and "line 2" in text


def test_run_hidden_changes_the_namespace_and_nothing_else(session):
    run(session, "x = 41", 20)
    session.run_hidden("y = x + 1\nprint('must not show')", timeout=30)
    check = "print(y)\nmark = 'must not ' + 'show'\nlen([c for c in In if mark in c])"
    reply, relay = run(session, check, 21)
    assert relay.text() == "42\n"
    assert relay.of("execute_result")[0]["data"]["text/plain"] == "0"  # not in history
    assert reply["execution_count"] == 21
    reply, relay = run(session, "21 in Out", 22)  # the last cell's value, by its count
    assert relay.of("execute_result")[0]["data"]["text/plain"] == "True"


def test_run_hidden_raises_with_the_exceptions_text(session):
    with pytest.raises(SessionError, match="NameError: name 'nowhere' is not defined"):
        session.run_hidden("nowhere + 1", timeout=30)


def test_run_hidden_that_overruns_is_interrupted_and_the_names_stay(session):
    run(session, "kept = 'yes'", 30)
    with pytest.raises(SessionError, match="within 0.5 s"):
        session.run_hidden("import time\ntime.sleep(120)", timeout=0.5)
    _, relay = run(session, "print(kept)", 31)
    assert relay.text() == "yes\n"


def test_user_expressions_are_evaluated_in_the_session(session):
    run(session, "z = 7", 40)
    values = session.evaluate({"double": "z * 2", "bad": "nope"})
    assert values["double"]["data"]["text/plain"] == "14"
    assert values["bad"]["status"] == "error" and values["bad"]["ename"] == "NameError"


def test_the_session_runs_the_kernels_python_in_the_kernels_directory(session):
    _, relay = run(session, "import os, sys\nprint(sys.executable)\nprint(os.getcwd())", 50)
    assert relay.text().splitlines() == [sys.executable, os.getcwd()]


def test_a_crash_is_an_error_and_the_next_start_says_how_the_last_one_ended():
    session = Session()
    try:
        session.start()
        run(session, "x = 1", 1)
        with pytest.raises(SessionEnded, match="exited with code 3.*names it held are lost"):
            run(session, "import os\nos._exit(3)", 2)
        assert session.running is False
        assert session.start() == "exited with code 3"
        pid = session.pid
        os.kill(pid, signal.SIGKILL)  # between cells, as the out-of-memory killer would
        assert ended(pid, 30)
        assert "killed by signal 9 (SIGKILL" in session.start()
        _, relay = run(session, "print('x' in dir())", 3)
        assert relay.text() == "False\n"
    finally:
        session.close()


def test_close_leaves_no_process_and_run_hidden_never_starts_one():
    session = Session()
    with pytest.raises(SessionError, match="no Python session is running"):
        session.run_hidden("pass", timeout=5)
    assert session.running is False
    session.start()
    pid = session.pid
    session.close()
    assert ended(pid, 10) and session.running is False


def test_a_python_without_ipykernel_is_an_error_saying_what_to_do(tmp_path):
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "bare")
    session = Session(python=str(tmp_path / "bare" / "bin" / "python"))
    with pytest.raises(SessionError) as info:
        session.start()
    message = str(info.value)
    assert "could not start" in message and "No module named" in message
    assert "pip install ipykernel" in message and "session: {enabled: false}" in message
    assert session.running is False


def test_how_a_process_ended_is_said_in_words():
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9).startswith("was killed by signal 9 (SIGKILL: ")
    assert "out-of-memory" in describe_exit(-9)
    assert describe_exit(-11).startswith("was killed by signal 11 (SIGSEGV")


def strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
