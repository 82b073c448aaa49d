"""What a new user sees of a job in the notebook, through the installed kernel (issue 18,
item 9): the live view's columns, progress bars of `%procs` processes, a failed replica's
last lines, `%status` of a finished job, `%help`, resource magics on the local backend."""

from __future__ import annotations

import json
import os
import re

import pytest
from kernel_client import execute, kernel_with_runs, of_type, stream_text

from ciao.kernel.render import LAST_LINE_WIDTH

pytestmark = pytest.mark.timeout(300)

#: A tqdm-like bar on stderr: `\r` rewrites, then a newline (the final text stays).
BAR = (
    "import os, sys, time\n"
    "def bar(label, steps=30, pause=0.05):\n"
    "    for i in range(steps + 1):\n"
    "        done = i * 10 // steps\n"
    "        sys.stderr.write(f'\\r{label}: {i * 100 // steps:3d}%|{\"█\" * done:<10}| '\n"
    "                         f'{i}/{steps} [00:01<00:02, 19.87it/s, loss=0.{i:03d}]')\n"
    "        sys.stderr.flush()\n"
    "        time.sleep(pause)\n"
    "    sys.stderr.write('\\n')\n"
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    with kernel_with_runs(tmp_path_factory.mktemp("runs")) as (_, kc, config):
        yield kc, config


def last_view(messages: list[dict]) -> dict[str, str]:
    """The live view as the cell left it."""
    views = of_type(messages, "display_data") + of_type(messages, "update_display_data")
    return views[-1]["content"]["data"]


def last_lines(text: str) -> dict[str, str]:
    """Each row's LAST LINE column of the view's text/plain."""
    lines = text.splitlines()
    column = lines[1].index("LAST LINE")
    return {line.split()[0]: line[column:] for line in lines[2:] if not line.startswith("!")}


def test_the_views_columns_never_wrap_and_a_progress_line_keeps_its_rate(kernel):
    kc, _ = kernel
    cell = (
        "%framework=pytorch\n%master=1\n"
        + BAR
        + "print('a rather long line of training output ' * 4, flush=True)\nbar('epoch 1')\n"
    )
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    view = last_view(messages)
    last = last_lines(view["text/plain"])["master-0"]
    assert len(last) <= LAST_LINE_WIDTH
    assert last.startswith("epoch 1: 100%")  # its drawn bar gave way to what follows it:
    assert last.endswith("30/30 [00:01<00:02, 19.87it/s, loss=0.030]")
    html = view["text/html"]
    assert html.count("white-space:nowrap") >= 12  # every header and cell but the last line
    assert "text-overflow:ellipsis" in html and "max-width:0" in html
    assert "19.87it/s, loss=0.030]" in html


def test_procs_show_one_steady_bar_per_node_and_every_final_line_keeps_its_marker(kernel):
    kc, _ = kernel
    cell = "%framework=pytorch\n%master=1\n%procs=2\n" + BAR + "bar('epoch 1', steps=40)\n"
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    live = []  # the process whose open progress line each view update shows
    for update in of_type(messages, "update_display_data"):
        html = update["content"]["data"]["text/html"]
        if "<progress" in html:
            live += re.findall(r"\[default(\d)\]:epoch", html)
    assert "0" in live and "1" not in live[live.index("0") :], live  # never back to rank 1
    stderr = stream_text(messages, "stderr")
    for rank in (0, 1):
        final = f"[master-0] [default{rank}]:epoch 1: 100%|██████████| 40/40 [00:01<00:02"
        assert stderr.count(final) == 1, stderr


FAILING = (
    "%framework=pytorch\n%master=1\n%worker=1\nimport os, sys, time\n"
    "if os.environ['RANK'] == '1':\n"
    "    for i in range({lines}):\n"
    "        print(f'shard {{i}} read', flush=True)\n"
    "    print('Traceback (most recent call last):\\nValueError: shard 7 is corrupt')\n"
    "    sys.exit(3)\n"
    "time.sleep(60)\n"
)


def test_a_failed_replicas_last_lines_shown_above_are_pointed_at_not_repeated(kernel):
    kc, _ = kernel
    reply, messages = execute(kc, FAILING.format(lines=3))
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "JobFailed"
    assert "worker-0 exited with code 3" in content["evalue"]
    name = content["evalue"].split()[1]
    traceback = "\n".join(content["traceback"])
    assert (
        f"worker-0's last lines are above, marked [worker-0]; `%logs {name} worker-0` shows "
        "its whole log" in traceback
    )
    everything = stream_text(messages) + traceback
    assert everything.count("shard 7 is corrupt") == 1, everything
    assert everything.count("shard 2 read") == 1


def test_a_failed_replicas_last_lines_not_all_shown_are_repeated_in_the_error(kernel):
    """Over the cell's cap (output.max_lines) only a few of the replica's last lines were
    shown: the error has them all."""
    kc, config = kernel
    saved = config.read_text()
    config.write_text(saved + "output: {max_lines: 10}\n")
    try:
        reply, messages = execute(kc, FAILING.format(lines=100))
    finally:
        config.write_text(saved)
    content = reply["content"]
    assert content["status"] == "error" and "worker-0 exited with code 3" in content["evalue"]
    traceback = content["traceback"]
    assert "last lines of worker-0:" in traceback
    repeated = traceback[traceback.index("last lines of worker-0:") + 1 :]
    assert {"shard 99 read", "shard 90 read", "ValueError: shard 7 is corrupt"} <= set(repeated)
    assert "shard 85 read" not in stream_text(messages)  # not shown above: only here


def test_status_of_a_finished_job_shows_each_replicas_last_line_and_how_long_it_ran(kernel):
    """The record's events carry no times: the ages come from when the supervisor wrote
    the replicas' identities (as it started them) and the verdict (set here to known ones)."""
    kc, config = kernel
    cell = (
        "%framework=pytorch\n%master=1\n%worker=1\nimport os\n"
        "print('first')\nprint('last of', os.environ['RANK'])\n"
    )
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    name = last_view(messages)["text/plain"].split()[0]
    run = config.parent / name
    spec = json.loads((run / "spec.json").read_text())
    created = spec["created"] = spec["created"] - 3600  # an hour ago
    (run / "spec.json").write_text(json.dumps(spec))
    os.utime(run / "replicas.json", (created + 2, created + 2))
    os.utime(run / "events.jsonl", (created + 75, created + 75))
    reply, messages = execute(kc, f"%status {name}")
    (result,) = of_type(messages, "execute_result")
    text = result["content"]["data"]["text/plain"]
    assert text.splitlines()[0].startswith(f"{name}  PyTorch job on local  Succeeded  1:15")
    assert last_lines(text) == {"master-0": "last of 0", "worker-0": "last of 1"}
    ages = {line.split()[0]: line.split()[-4] for line in text.splitlines()[2:]}
    assert ages == {"master-0": "1:13", "worker-0": "1:13"}


def test_help_pages_markdown_that_wraps_at_words_and_plain_text(kernel):
    kc, _ = kernel
    for cell, needle in (
        ("%help", "<code style='white-space:nowrap'>%worker=&lt;count&gt;</code> |"),
        ("%help procs", "```"),
    ):
        reply, _ = execute(kc, cell)
        (page,) = reply["content"]["payload"]
        assert page["source"] == "page" and set(page["data"]) == {"text/plain", "text/markdown"}
        assert needle in page["data"]["text/markdown"]
        assert page["data"]["text/plain"].startswith(("Ciao magics", "%procs=<count>"))


def test_resource_magics_on_the_local_backend_are_a_note_not_silently_ignored(kernel):
    kc, _ = kernel
    reply, messages = execute(kc, "%master=1;%cpu=1;%memory=2Gi\n%worker=1;%gpu=1\nprint('ran')")
    assert reply["content"]["status"] == "ok", reply["content"]
    out = stream_text(messages)
    note = (
        "[ciao] note: %cpu=1, %memory=2Gi (master); %gpu=1 (worker) apply on Kubernetes, "
        "not to local processes (they share this machine, unlimited)\n"
    )
    assert out.count(note) == 1 and out.index(note) < out.index("[master-0] ran"), out
    reply, messages = execute(kc, "%dryrun\n%master=1;%cpu=1\nprint('ran')")
    (plan,) = of_type(messages, "execute_result")
    first = plan["content"]["data"]["text/plain"].splitlines()[0]
    assert first.endswith("; %cpu=1 (master) are not applied locally"), first
    reply, messages = execute(kc, "%master=1\nprint('ran')")
    assert "[ciao] note" not in stream_text(messages)
