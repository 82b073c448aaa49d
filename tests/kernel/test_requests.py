"""Every request a Jupyter client sends, answered by the installed kernel (jupyter_client)."""

from __future__ import annotations

import os

import pytest
from kernel_client import (
    drain_iopub,
    execute,
    iopub_until_idle,
    of_type,
    running_kernel,
    stream_text,
)


@pytest.fixture
def kc(kernel):
    _, client = kernel
    drain_iopub(client, timeout=0.05)
    return client


def test_kernel_info_describes_ciao_and_python(kc):
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=10)
    content = reply["content"]
    assert reply["header"]["version"] == "5.4"
    assert content["status"] == "ok"
    assert content["implementation"] == "ciao"
    assert content["protocol_version"] == "5.4"
    assert content["language_info"]["name"] == "python"
    assert content["language_info"]["file_extension"] == ".py"
    assert "%help" in content["banner"]
    assert content["help_links"]
    states = [m["content"]["execution_state"] for m in iopub_until_idle(kc, msg_id)]
    assert states == ["busy", "idle"]


def test_execute_streams_replica_output_with_its_name(kc):
    reply, messages = execute(kc, '%job\nprint("hello from a replica")')
    assert reply["content"]["status"] == "ok"
    assert "[master-0] hello from a replica\n" in stream_text(messages)


def test_status_busy_first_then_execute_input_then_idle_last(kc):
    reply, messages = execute(kc, 'print("x")')
    kinds = [m["msg_type"] for m in messages]
    assert messages[0]["content"] == {"execution_state": "busy"}
    assert kinds[1] == "execute_input"
    assert messages[1]["content"]["execution_count"] == reply["content"]["execution_count"]
    assert messages[-1]["content"] == {"execution_state": "idle"}
    assert kinds.count("status") == 2


def test_execution_count_grows_only_when_storing_history(kc):
    first, _ = execute(kc, "pass")
    count = first["content"]["execution_count"]
    unstored, messages = execute(kc, "pass", store_history=False)
    assert unstored["content"]["execution_count"] == count
    assert of_type(messages, "execute_input")[0]["content"]["execution_count"] == count
    after, _ = execute(kc, "pass")
    assert after["content"]["execution_count"] == count + 1


def test_silent_execution_publishes_nothing_but_status(kc):
    before, _ = execute(kc, "pass")
    reply, messages = execute(kc, 'print("quiet")', silent=True)
    assert reply["content"]["status"] == "ok"
    assert [m["msg_type"] for m in messages] == ["status", "status"]
    assert reply["content"]["execution_count"] == before["content"]["execution_count"]


def test_an_empty_cell_is_ok_and_runs_nothing(kc):
    reply, messages = execute(kc, "   \n")
    assert reply["content"]["status"] == "ok"
    assert not of_type(messages, "stream")


def test_a_bad_magic_is_one_error_naming_the_line_and_the_kernel_goes_on(kc):
    reply, messages = execute(kc, "%framework=pytorch\n%master=1\n%wrker=2\nprint(1)")
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "MagicError"
    assert "line 3" in content["evalue"] and "%wrker" in content["evalue"]
    errors = of_type(messages, "error")
    assert len(errors) == 1 and errors[0]["content"]["evalue"] == content["evalue"]
    assert not of_type(messages, "stream")
    assert execute(kc, "pass")[0]["content"]["status"] == "ok"


def test_a_failing_replica_is_an_error_with_its_traceback(kc):
    reply, messages = execute(kc, "%job\nimport sys\nprint('before')\nraise SystemExit(3)")
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "JobFailed"
    assert "master-0" in content["evalue"] and "3" in content["evalue"]
    assert "[master-0] before" in stream_text(messages)


def test_stop_on_error_aborts_the_queued_cells(kc):
    failing = kc.execute("raise SystemExit(1)")
    queued = kc.execute('print("must not run")')
    replies = {}
    while len(replies) < 2:
        msg = kc.get_shell_msg(timeout=60)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    assert replies[failing]["status"] == "error"
    assert replies[queued]["status"] == "abort"
    assert "not run" not in stream_text(iopub_until_idle(kc, queued))


def test_without_stop_on_error_the_queued_cells_run(kc):
    failing = kc.execute("raise SystemExit(1)", stop_on_error=False)
    queued = kc.execute('print("runs anyway")')
    replies = {}
    while len(replies) < 2:
        msg = kc.get_shell_msg(timeout=60)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    assert replies[failing]["status"] == "error"
    assert replies[queued]["status"] == "ok"
    assert "runs anyway" in stream_text(iopub_until_idle(kc, queued))


def test_replicas_have_no_stdin_even_when_the_client_allows_it(kc):
    reply, messages = execute(kc, "%job\ninput('name? ')", allow_stdin=True)
    assert reply["content"]["status"] == "error"
    assert "EOFError" in stream_text(messages, "stderr")


def test_is_complete_judges_the_python_and_the_magics(kc):
    def status(code):
        kc.is_complete(code)
        return kc.get_shell_msg(timeout=10)["content"]

    assert status("%framework=tensorflow\n%worker=2\nprint(1)")["status"] == "complete"
    assert status("%worker=2\nprint(1)")["status"] == "invalid"  # pytorch needs a master
    incomplete = status("%master=1\nfor i in range(3):")
    assert incomplete["status"] == "incomplete" and incomplete["indent"] == "    "
    assert status("%framework=jax\nprint(1)")["status"] == "invalid"
    assert status("print(1))")["status"] == "invalid"


def test_complete_offers_magic_names_and_their_values(kc):
    kc.complete("%framework=pytorch\n%wor", cursor_pos=len("%framework=pytorch\n%wor"))
    content = kc.get_shell_msg(timeout=10)["content"]
    assert content["status"] == "ok"
    assert "%worker=" in content["matches"]
    assert content["cursor_start"] == len("%framework=pytorch\n")
    assert content["cursor_end"] == len("%framework=pytorch\n%wor")

    kc.complete("%framework=py", cursor_pos=len("%framework=py"))
    assert kc.get_shell_msg(timeout=10)["content"]["matches"] == ["pytorch"]
    kc.complete("%cleanPolicy=", cursor_pos=len("%cleanPolicy="))
    assert set(kc.get_shell_msg(timeout=10)["content"]["matches"]) >= {"all", "running", "none"}


def test_inspect_shows_the_doc_of_the_magic_under_the_cursor(kc):
    kc.inspect("%worker=2;%cpu=1", cursor_pos=3)
    content = kc.get_shell_msg(timeout=10)["content"]
    assert content["status"] == "ok" and content["found"] is True
    assert "worker" in content["data"]["text/plain"].lower()
    kc.inspect("%worker=2\nno_such_name_anywhere", cursor_pos=len("%worker=2\nno_such"))
    assert kc.get_shell_msg(timeout=10)["content"]["found"] is False


def test_profile_completes_the_configs_profiles_and_config_shows_them(tmp_path):
    """The editor reads cells as they will run: with the config's profiles."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "pod: {env: {HF_HOME: /data/hf}}\n"
        "profiles:\n"
        "  a100: {tolerations: ['nvidia.com/gpu:NoSchedule']}\n"
        "  cpu-only: {nodeSelector: {pool: cpu}}\n"
    )
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, client):
        client.complete("%profile=", cursor_pos=len("%profile="))
        assert client.get_shell_msg(timeout=10)["content"]["matches"] == ["a100", "cpu-only"]
        client.is_complete("%profile=a100\nprint(1)")
        assert client.get_shell_msg(timeout=10)["content"]["status"] == "complete"
        reply, messages = execute(client, "%config")
        shown = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
        assert "- HF_HOME=/data/hf" in shown and "- nvidia.com/gpu:NoSchedule" in shown


def test_help_pages_the_magic_reference(kc):
    reply, _ = execute(kc, "%help")
    payload = reply["content"]["payload"]
    assert payload[0]["source"] == "page"
    text = payload[0]["data"]["text/plain"]
    for magic in ("%framework", "%worker", "%cleanPolicy", "%gpu", "%volume", "%toleration"):
        assert magic in text


def test_config_shows_the_effective_configuration_as_a_result(kc):
    reply, messages = execute(kc, "%config")
    assert reply["content"]["status"] == "ok"
    (result,) = of_type(messages, "execute_result")
    data = result["content"]["data"]
    assert "backend: local" in data["text/plain"]
    assert data["application/vnd.ciao.config+json"]["backend"] == "local"
    # the YAML is what a notebook shows (JupyterLab showed application/json as a tree)
    assert data["text/markdown"] == f"```yaml\n{data['text/plain']}\n```"


def test_history_tail_range_and_search_over_this_session(kc):
    execute(kc, "print('history marker one')")
    execute(kc, "print('history marker two')")

    kc.history(hist_access_type="tail", n=2)
    tail = kc.get_shell_msg(timeout=10)["content"]["history"]
    assert [entry[2] for entry in tail] == [
        "print('history marker one')",
        "print('history marker two')",
    ]
    first_line = tail[0][1]
    kc.history(hist_access_type="range", session=0, start=first_line, stop=first_line + 1)
    assert [e[2] for e in kc.get_shell_msg(timeout=10)["content"]["history"]] == [
        "print('history marker one')"
    ]
    kc.history(hist_access_type="search", pattern="*marker two*")
    found = kc.get_shell_msg(timeout=10)["content"]["history"]
    assert [e[2] for e in found] == ["print('history marker two')"]
    kc.history(hist_access_type="tail", n=1, output=True)
    (entry,) = kc.get_shell_msg(timeout=10)["content"]["history"]
    assert entry[2][0] == "print('history marker two')"


def test_a_history_search_with_a_count_below_one_has_no_limit(kc):
    execute(kc, "print('limitless one')")
    execute(kc, "print('limitless two')")
    kc.history(hist_access_type="search", pattern="*limitless*", n=-1)
    found = kc.get_shell_msg(timeout=10)["content"]["history"]
    assert [e[2] for e in found] == ["print('limitless one')", "print('limitless two')"]


def test_comm_info_is_empty_and_a_comm_open_is_closed_at_once(kc):
    kc.comm_info()
    assert kc.get_shell_msg(timeout=10)["content"] == {"status": "ok", "comms": {}}
    msg = kc.session.msg("comm_open", {"comm_id": "c1", "target_name": "nope", "data": {}})
    kc.shell_channel.send(msg)
    closes = of_type(iopub_until_idle(kc, msg["header"]["msg_id"]), "comm_close")
    assert closes and closes[0]["content"]["comm_id"] == "c1"


def test_an_unknown_request_gets_an_error_reply_and_the_kernel_goes_on(kc):
    msg = kc.session.msg("frobnicate_request", {})
    kc.shell_channel.send(msg)
    reply = kc.get_shell_msg(timeout=10)
    assert reply["msg_type"] == "frobnicate_reply"
    assert reply["content"]["status"] == "error"
    assert execute(kc, "pass")[0]["content"]["status"] == "ok"


def test_full_width_digits_and_endless_numbers_are_refused_before_any_job(kc):
    for cell, magic in (
        ("%framework=pytorch\n%master=1;%cpu=１\nprint(1)", "%cpu"),
        ("%framework=pytorch\n%master=1\n%worker=" + "9" * 5000 + "\nprint(1)", "%worker"),
    ):
        reply, messages = execute(kc, cell)
        content = reply["content"]
        assert content["status"] == "error" and content["ename"] == "MagicError", content
        assert magic in content["evalue"] and len(content["evalue"]) < 1024
        assert not of_type(messages, "display_data")  # nothing ran


def test_a_notebook_is_told_from_another_of_the_same_name():
    from ciao.kernel.core import notebook_of

    here = notebook_of("/home/me/a/Untitled.ipynb")
    there = notebook_of("/home/me/b/Untitled.ipynb")
    assert here["notebook"] == there["notebook"] == "Untitled.ipynb"
    assert here["notebook-id"] != there["notebook-id"]
    assert notebook_of("/home/me/a/Untitled.ipynb") == here
    assert notebook_of("/x/My Notebook (2).ipynb")["notebook"] == "My-Notebook--2-.ipynb"
    assert notebook_of("") == {}
