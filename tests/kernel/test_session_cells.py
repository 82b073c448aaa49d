"""Cells without job magics run in the notebook's Python session (issue 21, item 1), through
the installed kernel with jupyter_client, as a notebook runs them."""

from __future__ import annotations

import base64
import os
import re
import signal

import pytest
from kernel_client import (
    drain_iopub,
    ended,
    execute,
    iopub_until_idle,
    of_type,
    running_kernel,
    stream_text,
    streamed_until,
)

from ciao.interpreter.docs import MAGICS, SHADOWED_SESSION_MAGICS, SHARED_SESSION_MAGICS


@pytest.fixture
def kc(kernel):  # the module's kernel (tests/conftest.py)
    _, client = kernel
    drain_iopub(client, timeout=0.05)
    return client


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def session_pid(kc) -> int:
    reply, messages = execute(kc, "import os\nprint(os.getpid())")
    assert reply["content"]["status"] == "ok", reply["content"]
    return int(stream_text(messages))


def test_the_five_cells_of_the_issue_remember_each_other(kc):
    cells = [
        ("x = 41\nprint('x is', x)", "x is 41\n"),
        ("print(x + 1)", "42\n"),
        ("import math\ndef f(a): return math.sqrt(a)", ""),
        ("print(f(16))", "4.0\n"),
    ]
    for code, printed in cells:
        reply, messages = execute(kc, code)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_text(messages) == printed
        assert not of_type(messages, "execute_result") and not of_type(messages, "display_data")
    reply, messages = execute(kc, "1+1")
    (result,) = of_type(messages, "execute_result")
    assert result["content"]["data"]["text/plain"] == "2"
    assert result["content"]["execution_count"] == reply["content"]["execution_count"]


def test_a_dataframe_is_an_html_table_and_a_plot_a_png(kc):
    reply, messages = execute(kc, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    (result,) = of_type(messages, "execute_result")
    assert "<table" in result["content"]["data"]["text/html"]
    assert "text/plain" in result["content"]["data"]  # every representation goes
    reply, messages = execute(
        kc, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    (figure,) = of_type(messages, "display_data")
    assert base64.b64decode(figure["content"]["data"]["image/png"]).startswith(b"\x89PNG")


def test_display_its_updates_and_clear_output_are_relayed(kc):
    reply, messages = execute(
        kc,
        "from IPython.display import display, clear_output\n"
        "h = display('first', display_id=True)\nh.update('second')\n"
        "print('gone')\nclear_output()\nprint('kept')",
    )
    kinds = [m["msg_type"] for m in messages if m["msg_type"] not in ("status", "execute_input")]
    assert kinds == ["display_data", "update_display_data", "stream", "clear_output", "stream"]
    first, update = messages[2]["content"], messages[3]["content"]
    assert first["transient"]["display_id"] == update["transient"]["display_id"]
    assert update["data"]["text/plain"] == "'second'"


def test_an_exception_is_an_error_naming_the_cell_and_line(kc):
    reply, messages = execute(kc, "def g():\n    raise ValueError('bad value')\n\ng()")
    content = reply["content"]
    assert content["status"] == "error"
    assert (content["ename"], content["evalue"]) == ("ValueError", "bad value")
    (error,) = of_type(messages, "error")  # once: the session's own, not repeated
    text = plain("\n".join(error["content"]["traceback"]))
    assert f"In[{content['execution_count']}], line 4" in text and "line 2" in text


@pytest.mark.parametrize("how", ["message", "signal"])
def test_an_interrupt_raises_keyboard_interrupt_and_keeps_the_names(kernel, how):
    km, kc = kernel
    execute(kc, "x = 41")
    msg_id = kc.execute("print('spinning', flush=True)\nwhile True: pass")
    assert "spinning" in streamed_until(kc, msg_id, "spinning")
    if how == "message":
        km.interrupt_kernel()
    else:
        km.signal_kernel(signal.SIGINT)
    reply = kc.get_shell_msg(timeout=30)["content"]
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id)
    again, messages = execute(kc, "print(x)")
    assert stream_text(messages) == "41\n"


def test_tab_completes_the_sessions_names_and_attributes(kc):
    execute(kc, "x = 41")
    kc.complete("x.", cursor_pos=2)
    content = kc.get_shell_msg(timeout=10)["content"]
    assert "bit_length" in content["matches"]
    assert (content["cursor_start"], content["cursor_end"]) == (2, 2)
    kc.complete("%wor", cursor_pos=4)  # the magics still complete
    assert "%worker=" in kc.get_shell_msg(timeout=10)["content"]["matches"]
    kc.complete("%framework=py", cursor_pos=len("%framework=py"))  # Ciao's line: Ciao's alone
    assert kc.get_shell_msg(timeout=10)["content"]["matches"] == ["pytorch"]


def test_shift_tab_shows_the_sessions_docs_and_the_magics(kc):
    execute(kc, "import math")
    kc.inspect("math.sqrt", cursor_pos=len("math.sqrt"))
    content = kc.get_shell_msg(timeout=10)["content"]
    assert content["found"] is True and "square root" in plain(content["data"]["text/plain"])
    kc.inspect("%worker=2", cursor_pos=3)
    assert "replica" in kc.get_shell_msg(timeout=10)["content"]["data"]["text/plain"].lower()


def test_input_asks_the_frontend_on_stdin(kc):
    msg_id = kc.execute("name = input('who? ')\nprint('hello', name)", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=30)
    assert request["msg_type"] == "input_request"
    assert request["content"] == {"prompt": "who? ", "password": False}
    kc.input("ciao")
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    assert stream_text(iopub_until_idle(kc, msg_id)) == "hello ciao\n"


def test_input_without_stdin_is_an_error_not_a_hang(kc):
    reply, _ = execute(kc, "input('who? ')", allow_stdin=False)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"


def test_the_sessions_magics_and_shell_escapes_run(kc):
    reply, messages = execute(kc, "%timeit -n1 -r1 pass")
    assert reply["content"]["status"] == "ok" and "per loop" in stream_text(messages)
    reply, messages = execute(kc, "!echo from a shell")
    assert "from a shell" in stream_text(messages)


def test_ciaos_magics_take_precedence_over_the_sessions_of_the_same_name(kc):
    """The names %help lists as Ciao's are exactly those the session also has (and %env,
    which each has in its own form: `%env=NAME=value` is Ciao's)."""
    reply, messages = execute(
        kc,
        "m = get_ipython().magics_manager.lsmagic()\n"
        "print(' '.join(sorted({n.lower() for kind in m.values() for n in kind})))",
    )
    theirs = set(stream_text(messages).split())
    shared = set(SHADOWED_SESSION_MAGICS) | set(SHARED_SESSION_MAGICS)
    assert theirs & {name.lower() for name in MAGICS} == shared
    reply, messages = execute(
        kc, "%env CIAO_TEST_SHARED=session\nimport os\nprint(os.environ['CIAO_TEST_SHARED'])"
    )
    assert reply["content"]["status"] == "ok" and "session" in stream_text(messages)
    reply, _ = execute(kc, "%help")
    page = reply["content"]["payload"][0]["data"]["text/plain"]
    assert "%job" in page and "Ciao's magics come first: %config and %pip" in page
    reply, messages = execute(kc, "%config")
    assert (
        "enabled: true" in of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    )


def test_user_expressions_are_evaluated_in_the_session(kc):
    reply, _ = execute(kc, "z = 7", user_expressions={"double": "z * 2"})
    assert reply["content"]["user_expressions"]["double"]["data"]["text/plain"] == "14"


def test_a_comm_opened_by_the_frontend_reaches_the_sessions_target(kc):
    execute(
        kc,
        "import comm\n"
        "def _echo(c, open_msg):\n"
        "    c.on_msg(lambda msg: c.send({'echo': msg['content']['data']}))\n"
        "    c.send({'opened': True})\n"
        "comm.get_comm_manager().register_target('echo', _echo)",
    )
    opened = kc.session.msg("comm_open", {"comm_id": "c9", "target_name": "echo", "data": {}})
    kc.shell_channel.send(opened)
    (hello,) = of_type(iopub_until_idle(kc, opened["header"]["msg_id"]), "comm_msg")
    assert hello["content"] == {"comm_id": "c9", "data": {"opened": True}}
    ping = kc.session.msg("comm_msg", {"comm_id": "c9", "data": {"ping": 1}})
    kc.shell_channel.send(ping)
    (echo,) = of_type(iopub_until_idle(kc, ping["header"]["msg_id"]), "comm_msg")
    assert echo["content"]["data"] == {"echo": {"ping": 1}}
    kc.comm_info()
    assert kc.get_shell_msg(timeout=10)["content"]["comms"]["c9"] == {"target_name": "echo"}


def test_a_job_cell_is_still_a_job_beside_the_session_and_job_makes_one(kc):
    execute(kc, "x = 41")
    for cell in ("%framework=pytorch\n%master=1\nprint('a replica')", "%job\nprint('a replica')"):
        reply, messages = execute(kc, cell)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "[master-0] a replica\n" in stream_text(messages)
        assert of_type(messages, "display_data")  # the live job view
    reply, messages = execute(kc, "print(x)")
    assert stream_text(messages) == "41\n"


def test_a_crash_is_an_error_and_the_next_cell_gets_a_fresh_session_announced():
    with running_kernel() as (_, kc):
        execute(kc, "y = 1")
        reply, _ = execute(kc, "import os\nos._exit(3)")
        content = reply["content"]
        assert content["status"] == "error" and content["ename"] == "SessionEnded"
        assert "exited with code 3" in content["evalue"] and "lost" in content["evalue"]
        reply, messages = execute(kc, "print('y' in dir())")
        assert "fresh Python session" in stream_text(messages, "stderr")
        assert "exited with code 3" in stream_text(messages, "stderr")
        assert stream_text(messages) == "False\n"
        reply, _ = execute(kc, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert "killed by signal 9 (SIGKILL" in reply["content"]["evalue"]
        pid = session_pid(kc)
        os.kill(pid, signal.SIGKILL)  # between cells
        assert ended(pid, 30)
        reply, messages = execute(kc, "print('again')")
        assert "killed by signal 9" in stream_text(messages, "stderr")
        assert stream_text(messages) == "again\n"


@pytest.mark.parametrize("how", ["shutdown", "restart", "killed"])
def test_the_session_never_outlives_its_kernel(how):
    with running_kernel() as (km, kc):
        pid = session_pid(kc)
        if how == "shutdown":
            km.shutdown_kernel(now=False)
        elif how == "restart":
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=60)
            assert execute(kc, "print('fresh')")[0]["content"]["execution_count"] == 1
        else:  # SIGKILL: the kernel cannot stop it; the session sees its parent go
            os.kill(km.provisioner.process.pid, signal.SIGKILL)
        assert ended(pid, 30)


def test_a_session_cell_runs_in_the_notebooks_folder_and_imports_from_it(tmp_path):
    (tmp_path / "utils.py").write_text("def answer():\n    return 42\n")
    with running_kernel(cwd=str(tmp_path)) as (_, kc):
        reply, messages = execute(kc, "import os, utils\nprint(os.getcwd(), utils.answer())")
        assert stream_text(messages) == f"{tmp_path} 42\n"


def test_output_over_the_budget_is_held_back_and_said(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("output: {max_bytes_per_second: 1000}\n")
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, kc):
        reply, messages = execute(
            kc,
            "import time\nfor i in range(6):\n    print(str(i) * 2000, flush=True)\n"
            "    time.sleep(0.25)",
        )
        assert reply["content"]["status"] == "ok"
        shown = stream_text(messages)
        assert shown.startswith("0" * 2000) and len(shown) < 6 * 2001
        assert "bytes of output not shown: over the output budget" in stream_text(
            messages, "stderr"
        )


def test_with_the_session_off_every_cell_is_a_job_as_before(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("session: {enabled: false}\n")
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, kc):
        reply, messages = execute(kc, "x = 41\nprint('x is', x)")
        assert reply["content"]["status"] == "ok"
        assert stream_text(messages) == "[master-0] x is 41\n"
        reply, _ = execute(kc, "print(x + 1)")
        assert reply["content"]["status"] == "error"  # a job of its own: no x
        reply, _ = execute(kc, "!ls")
        assert reply["content"]["ename"] == "MagicError"
        reply, messages = execute(kc, "%config")
        config_text = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
        assert "enabled: false" in config_text


def test_is_complete_reads_a_session_cell_before_the_session_starts():
    with running_kernel() as (_, kc):
        kc.is_complete("%timeit f(1)")
        assert kc.get_shell_msg(timeout=10)["content"]["status"] == "complete"
        kc.is_complete("for i in range(3):")
        content = kc.get_shell_msg(timeout=10)["content"]
        assert content["status"] == "incomplete" and content["indent"] == "    "
