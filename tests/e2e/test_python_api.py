"""Ciao from a stock Python kernel (ipykernel, the `python3` kernelspec) and from a
terminal: `ciao.run` streams the replicas' lines and the kernel's live view, an interrupt
cancels the job and leaves no process; `ciao submit` exits with the failed replica's code,
`ciao logs --follow` streams a running job, `ciao attach` follows one a ciao kernel
started."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakecluster import FakeCluster
from jupyter_client.manager import start_new_kernel
from kernel_client import (
    TIMEOUT,
    ended,
    iopub_until_idle,
    kernel_with_runs,
    kubeflow_env,
    needs_torchrun,
    of_type,
    run,
    stream_text,
    streamed_until,
)

CIAO = [sys.executable, "-m", "ciao"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A config keeping the jobs' records in the test's own folder."""
    config = tmp_path / "config.yaml"
    config.write_text(f"local: {{run_dir: {tmp_path / 'runs'}}}\n")
    return dict(os.environ, CIAO_CONFIG=str(config))


@contextmanager
def python_kernel(env: dict[str, str], cwd: Path):
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=TIMEOUT, env=env, cwd=cwd)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


HELPER = "import json\n\ndef helper(x):\n    return json.dumps({'twice': 2 * x})\n"
TRAIN = """
import ciao

def train(n):
    print('result', helper(n))

job = ciao.run(train, kwargs={'n': 21}, master=1, worker=1, backend='local')
print('status', job.status())
"""


def test_a_function_using_a_helper_from_another_cell_runs_with_the_live_view(env, tmp_path):
    with python_kernel(env, tmp_path) as (_, kc):
        assert run(kc, HELPER)[0]["status"] == "ok"
        content, messages = run(kc, TRAIN)
    assert content["status"] == "ok", content
    out = stream_text(messages)
    assert '[master-0] result {"twice": 42}' in out
    assert '[worker-0] result {"twice": 42}' in out
    assert out.rstrip().endswith("status Succeeded")
    shown = of_type(messages, "display_data")
    updates = of_type(messages, "update_display_data")
    assert len(shown) == 1 and updates
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert {u["content"]["transient"]["display_id"] for u in updates} == {display_id}
    assert "Succeeded" in updates[-1]["content"]["data"]["text/plain"]


LONG = """
import os, time
import ciao

def train():
    with open(f"pid-{os.environ['CIAO_REPLICA']}", "w") as handle:
        handle.write(str(os.getpid()))
    while True:
        print('tick', flush=True)
        time.sleep(0.2)

ciao.run(train, master=1, worker=1, backend='local')
"""


def test_an_interrupt_cancels_the_job_and_leaves_no_process(env, tmp_path):
    with python_kernel(env, tmp_path) as (km, kc):
        msg_id = kc.execute(LONG)
        seen = streamed_until(kc, msg_id, "[worker-0] tick")
        assert "[worker-0] tick" in seen
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)["content"]
        iopub_until_idle(kc, msg_id)
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        pids = [int(p.read_text()) for p in tmp_path.glob("pid-*")]
        assert len(pids) == 2 and all(ended(pid, 10) for pid in pids)
        _, messages = run(kc, "print([job.state for job in ciao.jobs()])")
    assert stream_text(messages).strip() == "['Cancelled']"


def test_submit_of_a_failing_script_exits_with_the_replicas_code_and_names_it(env, tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(3)\n")
    done = subprocess.run(
        [*CIAO, "submit", str(script), "--master", "1", "--cpu", "1", "--backend", "local"]
        + ["--", "-x"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3
    assert "[master-0] args ['-x']" in done.stdout
    assert "replica master-0 exited with code 3" in done.stderr
    assert "note: %cpu=1 (master) apply on Kubernetes, not to local processes" in done.stderr
    listed = subprocess.run(
        [*CIAO, "jobs", "--json"], env=env, capture_output=True, text=True, check=True
    )
    [job] = json.loads(listed.stdout)
    assert (job["state"], job["replicas"]) == ("Failed", {"master": 1})


def test_submit_json_keeps_stdout_one_document_the_verdict(env, tmp_path):
    script = tmp_path / "ok.py"
    script.write_text("print('hello')\n")
    done = subprocess.run(
        [*CIAO, "submit", str(script), "--master", "1", "--backend", "local", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "[master-0] hello" in done.stderr
    verdict = json.loads(done.stdout)
    assert (verdict["state"], verdict["exit_code"]) == ("Succeeded", 0)


def test_logs_follow_streams_a_running_job(env, tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(
        "import os, time\nprint('first', flush=True)\n"
        "while not os.path.exists('go'):\n    time.sleep(0.1)\nprint('last')\n"
    )
    submitted = subprocess.run(
        [*CIAO, "submit", str(script), "--master", "1", "--backend", "local", "--detach"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    name = submitted.stdout.strip()
    follow = subprocess.Popen(
        [*CIAO, "logs", name, "--follow"], env=env, stdout=subprocess.PIPE, text=True
    )
    assert follow.stdout is not None
    assert follow.stdout.readline() == "[master-0] first\n"
    (tmp_path / "go").touch()
    assert follow.stdout.readline() == "[master-0] last\n"
    assert follow.wait(timeout=60) == 0


def test_attach_follows_a_job_a_ciao_kernel_started(tmp_path):
    script = "%master=1\n%detach\nimport time\nprint('from the kernel')\ntime.sleep(1)\n"
    with kernel_with_runs(tmp_path) as (_, kc, config):
        content, messages = run(kc, script)
        name = re.search(r"Submitted job (\S+)", stream_text(messages))
        assert name, stream_text(messages)
        env = dict(os.environ, CIAO_CONFIG=str(config))
        done = subprocess.run(
            [*CIAO, "attach", name.group(1)], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert "[master-0] from the kernel" in done.stdout


@pytest.mark.parametrize("version", ["v1", pytest.param("v2", marks=needs_torchrun)])
def test_the_same_call_runs_on_the_test_cluster(version, tmp_path):
    with FakeCluster(namespaces=("team",), kubeflow=(version,)) as cluster:
        env = kubeflow_env(cluster, tmp_path, extra=f"local: {{run_dir: {tmp_path / 'runs'}}}\n")
        with python_kernel(env, tmp_path) as (_, kc):
            assert run(kc, HELPER)[0]["status"] == "ok"
            content, messages = run(kc, TRAIN.replace("backend='local'", "backend='kubeflow'"))
    assert content["status"] == "ok", content
    out = stream_text(messages)
    first = "master-0" if version == "v1" else "node-0"  # a TrainJob's replicas are nodes
    assert f'[{first}] result {{"twice": 42}}' in out
    assert out.rstrip().endswith("status Succeeded")
    assert of_type(messages, "update_display_data")
