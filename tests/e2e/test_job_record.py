"""A job's record is never changed by reading it, and every view of a job says the same.

`%attach`, `%status`, `%logs`, `%metrics` and `%jobs` of a finished local job, from the
notebook that ran it and from another, leave its run record byte for byte as it was; they
all give the verdict it ended with (Succeeded, Failed, Cancelled); a kernel restart while a
cell follows a job cancels it (as it stops any running cell), and every view then says
Cancelled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from kernel_client import TEST_HOME, execute, of_type, running_kernel, stream_text

pytestmark = pytest.mark.timeout(180)

RUNS = TEST_HOME / ".ciao" / "runs"

CELLS = {
    "Succeeded": "%framework=pytorch\n%master=1\n%worker=1\nprint('line', 1)\nprint('line', 2)",
    "Failed": (
        "%framework=pytorch\n%master=1\n%worker=1\nimport os, sys\nprint('before', flush=True)\n"
        "sys.exit(3 if os.environ['CIAO_REPLICA'] == 'master-0' else 0)"
    ),
}


def job_name(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)


def notebook_env(notebook: str) -> dict[str, str]:
    """A kernel's environment as Jupyter Server gives it for the notebook `notebook`."""
    return dict(os.environ, JPY_SESSION_NAME=f"/home/me/work/{notebook}")


def record_files(name: str) -> dict[str, bytes]:
    """The job's record: everything in its run directory but the notebooks' shown marks."""
    run = RUNS / name
    return {
        p.name: p.read_bytes()
        for p in run.iterdir()
        if p.is_file() and p.name != "shown.json" and not p.name.startswith(".")
    }


def views(kc, name: str) -> dict[str, object]:
    """What %jobs, %status and %attach say of the job, and %attach's reply."""
    _, messages = execute(kc, "%jobs --all --limit 100")
    table = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    jobs_state = next(line.split()[1] for line in table.splitlines() if line.startswith(name))
    _, messages = execute(kc, f"%status {name}")
    status = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    reply, messages = execute(kc, f"%attach {name}")
    attach_view = of_type(messages, "display_data")
    updates = of_type(messages, "update_display_data")
    last_view = (updates or attach_view)[-1]["content"]["data"]["text/plain"]
    return {
        "jobs": jobs_state,
        "status": status.splitlines()[0],
        "attach": last_view.splitlines()[0],
        "attach_view": last_view,
        "reply": reply["content"],
        "stream": stream_text(messages) + stream_text(messages, "stderr"),
    }


@pytest.mark.parametrize("verdict", ["Succeeded", "Failed"])
def test_reading_a_finished_job_from_another_notebook_changes_nothing(verdict):
    with running_kernel(env=notebook_env("train.ipynb")) as (_, kc):
        reply, messages = execute(kc, CELLS[verdict])
        name = job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
        assert reply["content"]["status"] == ("ok" if verdict == "Succeeded" else "error")
    before = record_files(name)
    with running_kernel(env=notebook_env("other.ipynb")) as (_, kc):
        first = views(kc, name)
        again = views(kc, name)
        execute(kc, f"%logs {name}")
        execute(kc, f"%metrics {name}")
    assert "metrics.json" in before
    assert record_files(name) == before  # events, spec, verdict, metrics: byte for byte
    for seen in (first, again):
        assert seen["jobs"] == verdict
        assert verdict in seen["status"] and verdict in seen["attach"]
        assert "Pending" not in seen["attach_view"]
        assert (seen["reply"]["status"] == "ok") == (verdict == "Succeeded")
    if verdict == "Failed":
        assert "master-0" in first["reply"]["evalue"] and "3" in first["reply"]["evalue"]
    # another notebook never showed the job: %attach shows its whole log, each time
    assert "line 1" in first["stream"] or "before" in first["stream"]


def test_attach_in_the_notebook_that_ran_the_job_goes_on_where_it_left_off():
    env = notebook_env("train.ipynb")
    with running_kernel(env=env) as (_, kc):
        _, messages = execute(kc, CELLS["Succeeded"])
        name = job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
    before = record_files(name)
    with running_kernel(env=env) as (_, kc):  # the same notebook, a new kernel
        seen = views(kc, name)
        _, messages = execute(kc, f"%logs {name}")
        logs = stream_text(messages)
    assert seen["reply"]["status"] == "ok" and "Succeeded" in seen["attach"]
    assert "every line was already shown here" in seen["stream"]
    assert "line 1" not in seen["stream"]
    assert "[master-0] line 1" in logs and "[worker-0] line 2" in logs  # %logs: the whole log
    assert record_files(name) == before


COUNTING = (
    "%framework=pytorch\n%master=1\nimport time\n"
    "for i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"
)


def followed(kc, cell: str) -> str:
    """Run `cell` and return once its live view is up (the cell follows the job): the job's
    name."""
    msg_id = kc.execute(cell)
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "display_data":
            return job_name(msg["content"]["data"]["text/plain"])


def test_a_restart_cancels_the_followed_job_and_every_view_says_so():
    with running_kernel(env=notebook_env("restart.ipynb")) as (km, kc):
        name = followed(kc, COUNTING)
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=30)
        seen = views(kc, name)
    assert seen["jobs"] == "Cancelled", seen
    assert "Cancelled" in seen["status"] and "Cancelled" in seen["attach"], seen
    assert seen["reply"]["status"] == "error" and "cancelled" in seen["reply"]["evalue"]
    assert not any(
        Path(f"/proc/{pid}").exists() for pid in _recorded_pids(name)
    )  # nothing left running


def _recorded_pids(name: str) -> list[int]:
    import json

    pids = []
    for file in ("supervisor", "replicas.json"):
        try:
            data = json.loads((RUNS / name / file).read_text())
        except (OSError, ValueError):
            continue
        entries = data.values() if isinstance(data, dict) else [data]
        pids += [entry[0] for entry in entries]
    return pids


def test_jobs_lists_this_notebooks_recent_jobs_by_default():
    with running_kernel(env=notebook_env("mine.ipynb")) as (_, kc):
        names = []
        for _ in range(3):
            _, messages = execute(kc, "%framework=pytorch\n%master=1\nprint(1)")
            names.append(
                job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
            )
        _, messages = execute(kc, "%jobs --limit 2")
        limited = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    with running_kernel(env=notebook_env("theirs.ipynb")) as (_, kc):
        _, messages = execute(kc, "%framework=pytorch\n%master=1\nprint(1)")
        theirs = job_name(of_type(messages, "display_data")[0]["content"]["data"]["text/plain"])
        _, messages = execute(kc, "%jobs")
        own = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
        _, messages = execute(kc, "%jobs --all")
        everyone = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    assert names[2] in limited and names[1] in limited and names[0] not in limited
    assert "2 of 3 jobs from this notebook; %jobs --limit N shows more" in limited
    assert "NOTEBOOK" in limited.splitlines()[0] and "mine.ipynb (this)" in limited
    assert theirs in own and not any(n in own for n in names)
    assert "%jobs --all" in own
    assert all(n in everyone for n in [theirs, *names])
    row = next(line for line in everyone.splitlines() if line.startswith(names[0]))
    assert row.endswith("mine.ipynb")


def test_a_restart_leaves_a_job_that_said_detach_or_was_only_attached_running():
    with running_kernel(env=notebook_env("restart-detach.ipynb")) as (km, kc):
        _, messages = execute(kc, "%detach\n" + COUNTING)
        attached = job_name(stream_text(messages))
        for cell in ("%onInterrupt=detach\n" + COUNTING, f"%attach {attached}"):
            name = followed(kc, cell)
            km.restart_kernel(now=False)
            kc.wait_for_ready(timeout=30)
            _, messages = execute(kc, "%jobs")
            table = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
            row = next(line for line in table.splitlines() if line.startswith(name))
            assert row.split()[1] == "Running", (cell, row)
            execute(kc, f"%delete {name}")
