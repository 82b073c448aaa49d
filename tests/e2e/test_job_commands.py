"""Jobs you can see, stop, leave and come back to, on the local backend: %detach, %attach
(from a restarted kernel), %onInterrupt=detach, %jobs, %status, %logs, %delete, %dryrun."""

from __future__ import annotations

import re
import time

import pytest
from kernel_client import TEST_HOME, execute, iopub_until_idle, of_type, running_kernel, stream_text

pytestmark = pytest.mark.timeout(120)

COUNTING = """%framework=pytorch
%master=1
%worker=1
import os, time
for i in range({n}):
    print(f"{{os.environ['CIAO_REPLICA']}} {{i}}", flush=True)
    time.sleep({pause})
"""


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\[(master|worker)-0\] ", line)]


def job_name(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)


def test_dryrun_shows_each_replicas_command_and_environment_and_runs_nothing(kernel):
    runs = TEST_HOME / ".ciao" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    kc = kernel[1]
    reply, messages = execute(kc, "%dryrun\n%framework=pytorch\n%master=1\n%worker=2\nprint(1)")
    assert reply["content"]["status"] == "ok"
    (result,) = of_type(messages, "execute_result")
    text = result["content"]["data"]["text/plain"]
    assert text.startswith("# %dryrun on local: 3 local process(es) on this machine\n")
    assert "# nothing was built or submitted" in text
    assert result["content"]["data"]["text/markdown"] == f"```yaml\n{text}\n```"
    plan = result["content"]["data"]["application/vnd.ciao.plan+json"]["job"]
    assert [launch["replica"] for launch in plan] == ["master-0", "worker-0", "worker-1"]
    assert plan[2]["env"]["RANK"] == "2" and plan[0]["argv"][1:2] == ["-u"]
    assert not of_type(messages, "display_data")
    assert (set(runs.iterdir()) if runs.exists() else set()) == before


def test_detach_then_attach_from_a_restarted_kernel_shows_every_line_once():
    with running_kernel() as (km, kc):
        reply, messages = execute(kc, "%detach\n" + COUNTING.format(n=30, pause=0.1))
        assert reply["content"]["status"] == "ok"
        text = stream_text(messages)
        name = job_name(text)
        assert f"%attach {name}" in text
        first = lines_of(text)
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=30)
        jobs_reply, jobs = execute(kc, "%jobs")
        (table,) = of_type(jobs, "execute_result")
        row = next(r for r in table["content"]["data"]["text/plain"].splitlines() if name in r)
        assert "Running" in row  # listed by the restarted kernel, from the run directory
        reply, messages = execute(kc, f"%attach {name}")
        assert reply["content"]["status"] == "ok", reply["content"]
        rest = lines_of(stream_text(messages))
    shown = first + rest
    for replica in ("master-0", "worker-0"):
        assert [s for s in shown if s.startswith(f"[{replica}]")] == [
            f"[{replica}] {replica} {i}" for i in range(30)
        ]


def test_interrupt_with_on_interrupt_detach_leaves_the_job_running():
    with running_kernel() as (km, kc):
        msg_id = kc.execute("%onInterrupt=detach\n" + COUNTING.format(n=40, pause=0.05))
        seen = ""
        while "master-0 5" not in seen:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                seen += msg["content"]["text"]
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)["content"]
        seen += stream_text(iopub_until_idle(kc, msg_id))
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        name = job_name(reply["evalue"])
        assert f"%attach {name}" in reply["evalue"] and "still running" in reply["evalue"]
        reply, messages = execute(kc, f"%attach {name}")
        assert reply["content"]["status"] == "ok"
        shown = lines_of(seen) + lines_of(stream_text(messages))
        assert [s for s in shown if s.startswith("[master-0]")] == [
            f"[master-0] master-0 {i}" for i in range(40)
        ]


def test_status_logs_and_delete_of_a_finished_job(kernel):
    kc = kernel[1]
    reply, messages = execute(kc, COUNTING.format(n=5, pause=0))
    name = job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
    reply, messages = execute(kc, f"%status {name}")
    (status,) = of_type(messages, "execute_result")
    text = status["content"]["data"]["text/plain"]
    assert "Succeeded" in text.splitlines()[0] and "master-0" in text
    _, messages = execute(kc, f"%logs {name} worker-0 --tail 2")
    assert lines_of(stream_text(messages)) == ["[worker-0] worker-0 3", "[worker-0] worker-0 4"]
    reply, messages = execute(kc, f"%delete {name}")
    assert reply["content"]["status"] == "ok"
    reply, _ = execute(kc, f"%status {name}")
    assert reply["content"]["status"] == "error" and "no local job" in reply["content"]["evalue"]


def test_a_detached_job_outlives_the_kernel_and_a_followed_one_does_not():
    with running_kernel() as (km, kc):
        _, messages = execute(kc, "%detach\n" + COUNTING.format(n=600, pause=0.1))
        detached = job_name(stream_text(messages))
        msg_id = kc.execute(COUNTING.format(n=600, pause=0.1))
        while True:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "display_data":
                followed = job_name(msg["content"]["data"]["text/plain"])
                break
    time.sleep(0.5)
    with running_kernel() as (_, kc):
        _, messages = execute(kc, "%jobs --all")
        table = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
        states = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
        assert states[detached] == "Running"
        assert states[followed] == "Cancelled"
        execute(kc, f"%delete {detached}")


def test_job_commands_complete_the_names_of_known_jobs(kernel):
    kc = kernel[1]
    _, messages = execute(kc, COUNTING.format(n=1, pause=0))
    name = job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
    cell = f"%attach {name[:7]}"
    kc.complete(cell, cursor_pos=len(cell))
    reply = kc.get_shell_msg(timeout=10)["content"]
    assert name in reply["matches"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (len("%attach "), len(cell))
