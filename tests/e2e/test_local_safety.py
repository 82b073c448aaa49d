"""What a local job (or a stale record) cannot do: signal processes that are not the job's,
or pass for the job's record."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from kernel_client import execute, kernel_with_runs, stream_text

from ciao.backend.identity import ProcessIdentity

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    with kernel_with_runs(runs) as (_, kc, _):
        yield kc, runs


def job_of(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)


def test_files_a_job_writes_where_it_runs_are_not_taken_for_its_record(kernel):
    kc, runs = kernel
    fake_verdict = {"type": "JobDone", "succeeded": True, "reason": "Succeeded", "message": ""}
    cell = (
        "%framework=pytorch\n%master=1\n"
        "import json, sys\n"
        "open('spec.json', 'w').write('not json')\n"
        f"open('events.jsonl', 'a').write(json.dumps({fake_verdict!r}) + '\\n')\n"
        "print('wrote my files')\n"
        "sys.exit(1)\n"
    )
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "error", "the replica exited 1: the job failed"
    assert "master-0" in reply["content"]["evalue"]
    name = job_of(stream_text(messages) + reply["content"]["evalue"])
    reply, messages = execute(kc, f"%attach {name}")
    assert reply["content"]["status"] == "error"  # the job's own verdict, not a KeyError
    assert "KeyError" not in reply["content"]["ename"]
    reply, messages = execute(kc, f"%status {name}")
    assert reply["content"]["status"] == "ok"


@pytest.mark.parametrize("form", ["a bare pid", "a pid with another start time"])
def test_a_stale_record_never_gets_an_unrelated_process_signalled(kernel, form):
    kc, runs = kernel
    reply, messages = execute(
        kc, "%detach\n%framework=pytorch\n%master=1\nimport time\ntime.sleep(1)"
    )
    name = job_of(stream_text(messages))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = runs / name
        real = ProcessIdentity.of(bystander.pid)
        stale = (
            bystander.pid  # how records named processes before
            if form == "a bare pid"
            else [bystander.pid, real.start_time + 1, real.boot_id]  # its pid, not its start
        )
        (record / "supervisor").write_text(json.dumps(stale))
        (record / "replicas.json").write_text(json.dumps({"master-0": stale}))
        reply, _ = execute(kc, f"%delete {name}")
        assert reply["content"]["status"] == "ok", reply["content"]
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert not record.exists()
    finally:
        bystander.kill()
        bystander.wait()
