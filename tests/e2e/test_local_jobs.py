"""Distributed cells on the local backend, end to end through the installed kernel.

Each replica prints its environment; the test checks it replica by replica against the
training operator's contract (docs/kubeflow-contract.md) with localhost and
free ports in place of service names.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path

import pytest
from kernel_client import TEST_HOME, execute, of_type, running_kernel, stream_text

PRINT_ENV = """
import json, os
keys = ["TF_CONFIG", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_MASTER_ADDR",
        "PET_MASTER_PORT", "PET_NNODES", "PET_NODE_RANK", "PET_NPROC_PER_NODE",
        "PYTHONUNBUFFERED", "CIAO_REPLICA", "JPY_PARENT_PID"]
print("ENV " + json.dumps({k: os.environ.get(k) for k in keys}))
print("CWD " + os.getcwd())
"""


@pytest.fixture(scope="module")
def kc(kernel):
    return kernel[1]


@pytest.fixture(scope="module")
def unlimited_kc(tmp_path_factory):
    """A kernel with the output budget and cap off, as papermill and nbclient users set."""
    config = tmp_path_factory.mktemp("unlimited") / "config.yaml"
    config.write_text(
        "output: {max_bytes_per_second: 0, max_messages_per_second: 0, max_lines: 0}\n"
    )
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, client):
        yield client


def lines_by_replica(text: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = defaultdict(list)
    for line in text.splitlines():
        match = re.match(r"\[([a-z]+-\d+)\] (.*)$", line)
        assert match, f"a line without its replica: {line!r}"
        lines[match.group(1)].append(match.group(2))
    return dict(lines)


def environments(text: str) -> dict[str, dict]:
    return {
        replica: json.loads(next(line[4:] for line in lines if line.startswith("ENV ")))
        for replica, lines in lines_by_replica(text).items()
    }


def test_pytorch_master_and_workers_get_the_operators_environment(kc):
    reply, messages = execute(kc, "%framework=pytorch\n%master=1\n%worker=2" + PRINT_ENV)
    assert reply["content"]["status"] == "ok", reply["content"]
    envs = environments(stream_text(messages))
    assert set(envs) == {"master-0", "worker-0", "worker-1"}
    port = envs["master-0"]["MASTER_PORT"]
    assert port.isdigit()
    for replica, rank in (("master-0", 0), ("worker-0", 1), ("worker-1", 2)):
        env = envs[replica]
        assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "localhost"
        assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == port
        assert env["WORLD_SIZE"] == env["PET_NNODES"] == "3"
        assert env["RANK"] == env["PET_NODE_RANK"] == str(rank)
        assert env["PET_NPROC_PER_NODE"] == "auto"
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["TF_CONFIG"] is None
        assert env["CIAO_REPLICA"] == replica
        assert env["JPY_PARENT_PID"] is None, "the kernel's Jupyter variables are its own"


def test_tensorflow_chief_ps_workers_and_evaluator_get_their_tf_config(kc):
    # The chief decides the job and the PS is stopped then: it waits until all printed.
    wait_for_all = (
        "open(os.environ['CIAO_REPLICA'] + '.printed', 'w').close()\n"
        "import glob, time\n"
        "while os.environ['CIAO_REPLICA'] == 'chief-0' and len(glob.glob('*.printed')) < 5:\n"
        "    time.sleep(0.05)\n"
    )
    cell = "%framework=tensorflow\n%chief=1\n%ps=1\n%worker=2\n%evaluator=1" + PRINT_ENV
    cell += wait_for_all
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "ok", reply["content"]
    envs = environments(stream_text(messages))
    assert set(envs) == {"chief-0", "ps-0", "worker-0", "worker-1", "evaluator-0"}
    configs = {replica: json.loads(env["TF_CONFIG"]) for replica, env in envs.items()}
    cluster = configs["chief-0"]["cluster"]
    assert set(cluster) == {"chief", "ps", "worker", "evaluator"}
    assert [len(cluster[k]) for k in ("chief", "ps", "worker", "evaluator")] == [1, 1, 2, 1]
    addresses = [a for hosts in cluster.values() for a in hosts]
    assert all(re.fullmatch(r"localhost:\d+", a) for a in addresses)
    assert len(set(addresses)) == len(addresses)
    for replica, config in configs.items():
        role, index = replica.split("-")
        assert config["cluster"] == cluster
        assert config["task"] == {"type": role, "index": int(index)}
        assert config["environment"] == "cloud"
        assert envs[replica]["MASTER_ADDR"] is None and envs[replica]["RANK"] is None


def test_a_single_replica_tensorflow_job_has_no_tf_config(kc):
    reply, messages = execute(kc, "%framework=tensorflow\n%worker=1" + PRINT_ENV)
    assert reply["content"]["status"] == "ok"
    assert environments(stream_text(messages))["worker-0"]["TF_CONFIG"] is None


def test_replicas_share_the_notebooks_folder_and_the_record_stays_apart(kc):
    """They run where the notebook is, as `python train.py` would there; the job's code
    and record stay in its run directory, private to the user."""
    cell = "%framework=pytorch\n%master=1\n%worker=1" + PRINT_ENV
    _, messages = execute(kc, cell + "print('JOB ' + os.environ['CIAO_JOB_NAME'])\n")
    lines = lines_by_replica(stream_text(messages))
    cwds = {
        next(x[4:] for x in replica_lines if x.startswith("CWD "))
        for replica_lines in lines.values()
    }
    (cwd,) = cwds
    assert Path(cwd).name.startswith("notebook-")  # the kernel's own folder (kernel_client)
    assert not (Path(cwd) / "code.py").exists()
    (job,) = {x[4:] for replica_lines in lines.values() for x in replica_lines if x[:4] == "JOB "}
    record = TEST_HOME / ".ciao" / "runs" / job
    work = record / "work"
    assert (work / "code.py").is_file() and (record / "spec.json").is_file()
    for path in (record, work):
        assert path.stat().st_mode & 0o777 == 0o700
    files = [p for p in record.iterdir() if p.is_file()] + [work / "code.py"]
    assert {"spec.json", "events.jsonl", "supervisor.log", "supervisor"} <= {p.name for p in files}
    for path in files:  # every file of the run record, supervisor.log included
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert record.parent.parent.stat().st_mode & 0o777 == 0o700  # ~/.ciao


def test_every_line_of_every_replica_arrives_once_and_in_order(unlimited_kc):
    kc = unlimited_kc
    count = 3000
    cell = (
        "%framework=pytorch\n%master=1\n%worker=2\n"
        "import os, sys\n"
        "rank = os.environ['RANK']\n"
        f"for i in range({count}):\n"
        "    print(f'{rank} line {i}')\n"
        "    if i % 500 == 0:\n"
        "        print(f'{rank} err {i}', file=sys.stderr)\n"
    )
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "ok"
    out = lines_by_replica(stream_text(messages, "stdout"))
    err = lines_by_replica(stream_text(messages, "stderr"))
    for replica, rank in (("master-0", 0), ("worker-0", 1), ("worker-1", 2)):
        assert out[replica] == [f"{rank} line {i}" for i in range(count)]
        assert err[replica] == [f"{rank} err {i}" for i in range(0, count, 500)]
    streams = of_type(messages, "stream")
    assert len(streams) < count / 10, "lines must be coalesced into few stream messages"


def test_a_replica_that_exits_1_fails_the_cell_naming_it(kc):
    cell = (
        "%framework=pytorch\n%master=1\n%worker=2\n"
        "import os, sys, time\n"
        "if os.environ['CIAO_REPLICA'] == 'worker-1':\n"
        "    print('giving up', file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "time.sleep(60)\n"
    )
    reply, messages = execute(kc, cell)
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "JobFailed"
    assert "worker-1 exited with code 1" in content["evalue"]
    assert "worker-1's last lines are above, marked [worker-1]" in "\n".join(content["traceback"])
    assert "giving up" not in content["traceback"]  # shown once, in the stream
    (error,) = of_type(messages, "error")
    assert error["content"]["evalue"] == content["evalue"]
    assert "[worker-1] giving up" in stream_text(messages, "stderr")


def test_a_python_traceback_points_at_the_cells_own_line_numbers(kc):
    cell = "%framework=pytorch\n%master=1\n\nx = 1\n\nraise RuntimeError('line six')\n"
    reply, messages = execute(kc, cell)
    assert reply["content"]["status"] == "error"
    assert re.search(r"line 6, in <module>", stream_text(messages, "stderr"))
