"""Tuning from the notebook on the local backend, through the kernel: a `%tune` cell runs a
study whose trials are the cell's jobs, with a live trial table and the trials' lines;
`%best`, `%study`, `%jobs`, `%dryrun`; an interrupt cancels it with nothing left behind; a
kernel restart leaves it running and `%attach` finishes it; early stopping prunes a trial
and its processes go."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cells import pruned_study
from kernel_client import (
    TEST_HOME,
    ended,
    execute,
    iopub_until_idle,
    of_type,
    run,
    running_kernel,
    stream_text,
    streamed_until,
)

from ciao.backend.record import RunDir

pytestmark = pytest.mark.timeout(180)

RUNS = TEST_HOME / ".ciao" / "runs"
QUADRATIC = """%tune x=uniform(-10,10)
%objective=minimize:loss
%trials=16;%parallel=4;%algorithm=tpe;%seed=1
import ciao.hp
x = ciao.hp.float("x")
print(f"loss={(x - 2) ** 2}")
"""


def final_view(messages: list[dict]) -> str:
    """The study's table as the cell left it (its last display update)."""
    views = of_type(messages, "display_data") + of_type(messages, "update_display_data")
    return views[-1]["content"]["data"]["text/plain"]


def messages_until(kc, msg_id: str, needle: str, timeout: float = 60) -> list[dict]:
    """The cell's IOPub messages until `needle` was streamed."""
    deadline, seen, messages = time.monotonic() + timeout, "", []
    while needle not in seen:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            messages.append(msg)
            seen += msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""
    return messages


def table_rows(view: str) -> list[str]:
    return [line for line in view.splitlines() if re.match(r"#\d+ ", line)]


def study_name(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)  # type: ignore[union-attr]


def test_a_seeded_study_ends_ok_with_a_row_per_trial_and_its_best_near_the_minimum(kernel):
    kc = kernel[1]
    content, messages = run(kc, QUADRATIC)

    assert content["status"] == "ok", content
    view = final_view(messages)
    name = study_name(view)
    assert view.startswith(f"{name}  study of 16 trials, tpe, minimize loss  Succeeded")
    rows = table_rows(view)
    assert len(rows) == 16 and all(" Succeeded " in row for row in rows)
    (best_row,) = [row for row in rows if re.match(r"#\d+ +\* ", row)]
    assert view.splitlines()[1].split()[:5] == ["TRIAL", "BEST", "STATE", "LOSS", "PARAMETERS"]
    html = (of_type(messages, "update_display_data")[-1])["content"]["data"]["text/html"]
    assert "★" in html and html.count("<tr>") == 17
    text = stream_text(messages)
    assert len(re.findall(r"^\[#\d+ master-0\] loss=", text, re.M)) == 16
    assert "[ciao] best: #" in text and f"(%best {name};" in text

    content, messages = run(kc, f"%best {name}")
    assert content["status"] == "ok"
    (result,) = of_type(messages, "execute_result")
    best = result["content"]["data"]["application/vnd.ciao.best+json"]
    assert list(best) == ["x"] and abs(best["x"] - 2) < 1
    assert re.fullmatch(r"x: -?\d+(\.\d+)?(e-?\d+)?", result["content"]["data"]["text/plain"])
    assert f"x={result['content']['data']['text/plain'][3:]}" in best_row

    content, messages = run(kc, f"%study {name}")
    (result,) = of_type(messages, "execute_result")
    assert len(table_rows(result["content"]["data"]["text/plain"])) == 16

    content, messages = run(kc, "%jobs")
    (result,) = of_type(messages, "execute_result")
    listed = result["content"]["data"]["text/plain"]
    row = next(line for line in listed.splitlines() if line.startswith(name + " "))
    assert row.split()[1:4] == ["Succeeded", "Study", "trials=16"]
    assert f"{name}-0" not in listed  # its trials are the study's: %study lists them


def test_dryrun_shows_the_study_and_a_trials_plan_and_makes_nothing(kernel):
    before = set(RUNS.iterdir()) if RUNS.exists() else set()
    content, messages = run(kernel[1], "%dryrun\n" + QUADRATIC)

    assert content["status"] == "ok", content
    (result,) = of_type(messages, "execute_result")
    text = result["content"]["data"]["text/plain"]
    assert text.startswith("# %dryrun of a study on local, engine ciao (local trials")
    plan = result["content"]["data"]["application/vnd.ciao.plan+json"]
    assert plan["study"]["space"] == {"x": "uniform(-10,10)"}
    assert (plan["study"]["algorithm"], plan["study"]["trials"]) == ("tpe", 16)
    (launch,) = plan["job"]
    assert launch["env"]["CIAO_HP_X"] == "<uniform(-10,10)>"
    assert launch["env"]["KUBEFLOW_TRAINER_OPT_X"] == "<uniform(-10,10)>"
    assert launch["env"]["CIAO_JOB_NAME"].endswith("-0")
    assert (set(RUNS.iterdir()) if RUNS.exists() else set()) == before


def test_a_study_magic_without_tune_is_an_error_with_its_line(kernel):
    content, _ = run(kernel[1], "%trials=4\nprint(1)")
    assert content["status"] == "error"
    assert content["evalue"].startswith("line 1: %trials: belongs to a study")


def test_an_interrupt_cancels_every_trial_and_the_study_and_leaves_no_process(tmp_path):
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
    with running_kernel() as (km, kc):
        msg_id = kc.execute(cell)
        seen = streamed_until(kc, msg_id, "[#1 master-0] loss=1")
        assert "[#1 master-0] loss=1" in seen
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)["content"]
        messages = iopub_until_idle(kc, msg_id)

        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        assert "was cancelled" in reply["evalue"]
        view = final_view(messages)
        name = study_name(view)
        assert " Cancelled " in view.splitlines()[0]
        assert {row.split()[1] for row in table_rows(view)} == {"Cancelled"}
        driver = RunDir(RUNS, name).supervisor()
        assert driver is not None and ended(driver.pid, 10)
        assert all(ended(int(p.name), 10) for p in pids.iterdir())
        content, messages = run(kc, f"%study {name}")
        (result,) = of_type(messages, "execute_result")
        assert "  Cancelled  " in result["content"]["data"]["text/plain"].splitlines()[0]


def test_a_kernel_restart_leaves_the_study_running_and_attach_finishes_it(tmp_path):
    gate = tmp_path / "gate"
    cell = f"""%onInterrupt=detach
%tune x=uniform(0,1)
%objective=minimize:loss
%trials=4;%parallel=2;%seed=3
import os, time
import ciao.hp
print("loss=" + str(ciao.hp.float("x")), flush=True)
while not os.path.exists({str(gate)!r}):
    time.sleep(0.02)
"""
    with running_kernel() as (km, kc):
        msg_id = kc.execute(cell)
        try:
            name = study_name(final_view(messages_until(kc, msg_id, "[#1 master-0] loss=")))
        except BaseException:
            gate.touch()  # no trial is left waiting
            raise
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=30)
        driver = RunDir(RUNS, name).supervisor()
        assert driver is not None and driver.is_running()  # it outlived the kernel

        Path(gate).touch()
        reply, messages = execute(kc, f"%attach {name}")

        assert reply["content"]["status"] == "ok", reply["content"]
        view = final_view(messages)
        assert len(table_rows(view)) == 4
        assert all(" Succeeded " in row for row in table_rows(view))
        text = stream_text(messages)
        assert "going on after the last line shown here" in text
        assert "[#0 master-0]" not in text.split("going on")[1]  # shown before the restart
        assert len(re.findall(r"^\[#[23] master-0\] loss=", text, re.M)) == 2


def test_early_stopping_prunes_a_trial_worse_than_the_median_and_its_processes_go(kernel, tmp_path):
    cell = pruned_study(str(tmp_path / "pid"))
    content, messages = run(kernel[1], cell)

    assert content["status"] == "ok", content
    rows = table_rows(final_view(messages))
    assert [row.split()[0] for row in rows] == ["#0", "#1", "#2", "#3"]
    assert " Pruned " in rows[3] and "x=9" in rows[3] and "stopped early, after 4" in rows[3]
    assert ended(int((tmp_path / "pid").read_text()), 10)


def test_config_says_which_engine_tunes(kernel):
    content, messages = run(kernel[1], "%config")
    (result,) = of_type(messages, "execute_result")
    tune = result["content"]["data"]["application/vnd.ciao.config+json"]["tune"]
    assert tune == {
        "engine": "auto",
        "chosen": "ciao (local trials: Ciao's own engine, Optuna's ask/tell)",
    }


def test_logs_status_and_delete_of_a_study(kernel):
    kc = kernel[1]
    cell = "%tune n=choice(1,2,3)\n%objective=maximize:score\n%algorithm=grid\n"
    cell += "import ciao.hp\nprint('score=' + str(ciao.hp.int('n')))\n"
    content, messages = run(kc, cell)
    assert content["status"] == "ok", content
    name = study_name(final_view(messages))

    content, messages = run(kc, f"%logs {name} master-0 --tail 2")
    assert content["status"] == "ok"
    assert len(re.findall(r"^\[#\d master-0\] score=\d$", stream_text(messages), re.M)) == 2

    content, messages = run(kc, f"%status {name}")
    (result,) = of_type(messages, "execute_result")
    assert len(table_rows(result["content"]["data"]["text/plain"])) == 3

    content, messages = run(kc, f"%delete {name}")
    assert content["status"] == "ok"
    assert f"Deleted study {name}, its 3 trials' jobs and its record." in stream_text(messages)
    assert not any(path.name.startswith(name) for path in RUNS.iterdir())
    content, _ = run(kc, f"%best {name}")
    assert content["status"] == "error"


def test_trials_take_the_notebooks_definitions_and_the_cell_runs_alone_with_defaults(kernel):
    kc = kernel[1]
    content, _ = run(kc, "def loss_of(x):\n    return (x - 2) ** 2\n")
    assert content["status"] == "ok", content
    cell = "import ciao.hp\nprint(f'loss={loss_of(ciao.hp.float(\"x\", 2.5))}')\n"

    content, messages = run(
        kc, "%tune x=choice(1.0,3.5)\n%objective=minimize:loss\n%algorithm=grid\n" + cell
    )
    assert content["status"] == "ok", content
    text = stream_text(messages)
    assert "[ciao] carried: loss_of (In [" in text
    assert sorted(re.findall(r"^\[#\d master-0\] (loss=.*)$", text, re.M)) == [
        "loss=1.0",
        "loss=2.25",
    ]

    content, messages = run(kc, "%job\n" + cell)  # the same code as a plain job
    assert content["status"] == "ok", content
    assert "[master-0] loss=0.25" in stream_text(messages)
