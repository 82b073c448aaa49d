"""The replica engine of local jobs, with real child processes running tiny Python programs.

Each replica is a process in its own process group, started in the job's directory with the
environment the training operator would inject; its lines stream back through one bounded
queue, its end follows its last line, and the job ends by the operator's rules.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from shipping import ship

from ciao.backend.local import engine as engine_module
from ciao.backend.local.code_file import LocalCodeFile
from ciao.backend.local.engine import ReplicaEngine
from ciao.backend.local.env import PORT_RANGE, planned_ports
from ciao.backend.local.plan import LocalPlan
from ciao.backend.types import Event, Job, JobDone, LogLine, ReplicaState, one_per_line
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter, RoleSpec

pytestmark = pytest.mark.timeout(60)

# Every program starts so: its replicas branch on the replica Ciao names in CIAO_REPLICA.
PRELUDE = """\
import os, sys, time, json, signal
ME = os.environ["CIAO_REPLICA"]
def forever():
    while True:
        time.sleep(0.05)
"""


class Cell(NamedTuple):
    """A cell after phases 1 and 2: its Parameter, and the code file LocalCodeFile wrote."""

    parameter: Parameter
    code_file: str


def make_job(
    tmp_path: Path,
    framework: str,
    roles: dict[str, int],
    code: str,
    clean_policy: str | None = None,
    name: str = "job-1",
) -> Cell:
    """A cell's job as the interpreter and LocalCodeFile hand it to the engine; the
    notebook's folder is `tmp_path/notebook`."""
    notebook = tmp_path / "notebook"
    notebook.mkdir(exist_ok=True)
    parameter = Parameter(
        framework,
        {role: RoleSpec(role, n) for role, n in roles.items()},
        generate_name=name,
        clean_policy=clean_policy,
        code=PRELUDE + textwrap.dedent(code),
        directory=str(notebook),
    )
    return Cell(parameter, ship(LocalCodeFile(tmp_path), parameter).image)


def start(engine: ReplicaEngine, cell: Cell) -> Job:
    """Plan the cell's job and start exactly that plan."""
    return engine.exec_code(engine.plan(cell.parameter, cell.code_file))


def get_logs(engine: ReplicaEngine, job: Job) -> Iterator[Event]:
    """The job's events one per line, from the batches the supervisor records; closing
    this closes them (the follower detaches)."""
    batches = engine.get_log_batches(job)
    try:
        for batch in batches:
            yield from one_per_line(batch)
    finally:
        batches.close()


def run(engine: ReplicaEngine, cell: Cell) -> tuple[Job, list[Event]]:
    job = start(engine, cell)
    return job, list(get_logs(engine, job))


def lines(events: list[Event], replica: str, stream: str | None = None) -> list[str]:
    return [
        e.text
        for e in events
        if isinstance(e, LogLine) and e.replica == replica and stream in (None, e.stream)
    ]


def ends(events: list[Event]) -> dict[str, ReplicaState]:
    return {e.replica: e for e in events if isinstance(e, ReplicaState) and e.phase != "Running"}


def pids(events: list[Event]) -> dict[str, int]:
    return {
        e.replica: int(e.where.split()[1])
        for e in events
        if isinstance(e, ReplicaState) and e.phase == "Running"
    }


def done(events: list[Event]) -> JobDone:
    assert isinstance(events[-1], JobDone)
    assert sum(isinstance(e, JobDone) for e in events) == 1
    return events[-1]


def gone(pid: int) -> bool:
    """The process no longer exists (or is a zombie nobody reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def ciao_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ciao-local-")]


@pytest.fixture
def engine() -> ReplicaEngine:
    return ReplicaEngine(stop_grace=1.0)


ENV_KEYS = [
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT",
    "PET_NNODES", "PET_NODE_RANK", "PET_NPROC_PER_NODE", "PYTHONUNBUFFERED", "TF_CONFIG",
    "CIAO_REPLICA", "CIAO_JOB_NAME", "HOME_OF_TEST",
]  # fmt: skip

PRINT_ENV = f"print(json.dumps({{k: os.environ.get(k) for k in {ENV_KEYS!r}}}))\n"


def envs_seen(events: list[Event]) -> dict[str, dict[str, str | None]]:
    return {
        e.replica: json.loads(e.text)
        for e in events
        if isinstance(e, LogLine) and e.text.startswith("{")
    }


# -- the operator's environment, seen from inside each replica ------------------------------


def test_pytorch_replicas_see_the_operators_variables_with_localhost(engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_OF_TEST", "inherited")
    cell = make_job(tmp_path, "pytorch", {"master": 1, "worker": 2}, PRINT_ENV)

    job, events = run(engine, cell)

    assert (job.name, job.replicas, job.backend) == ("job-1", {"master": 1, "worker": 2}, "local")
    seen = envs_seen(events)
    assert set(seen) == {"master-0", "worker-0", "worker-1"}
    port = str(planned_ports(cell.parameter)["master-0"])
    for replica, rank in [("master-0", "0"), ("worker-0", "1"), ("worker-1", "2")]:
        assert seen[replica] == {
            "MASTER_ADDR": "localhost",
            "MASTER_PORT": port,
            "WORLD_SIZE": "3",
            "RANK": rank,
            "PET_MASTER_ADDR": "localhost",
            "PET_MASTER_PORT": port,
            "PET_NNODES": "3",
            "PET_NODE_RANK": rank,
            "PET_NPROC_PER_NODE": "auto",
            "PYTHONUNBUFFERED": "1",
            "TF_CONFIG": None,
            "CIAO_REPLICA": replica,
            "CIAO_JOB_NAME": "job-1",
            "HOME_OF_TEST": "inherited",
        }
    assert done(events) == JobDone(True, "Succeeded", "master-0 succeeded", exit_code=0)


def test_tf_replicas_each_get_their_task_in_one_cluster_of_distinct_ports(engine, tmp_path):
    # The chief ends last: the PS would be stopped once it ends, perhaps before printing.
    wait_for_all = """
    open(ME + ".printed", "w").close()
    while ME == "chief-0" and len([f for f in os.listdir() if f.endswith(".printed")]) < 4:
        time.sleep(0.01)
    """
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"chief": 1, "ps": 1, "worker": 2},
        PRINT_ENV + textwrap.dedent(wait_for_all),
    )

    _, events = run(engine, cell)

    seen = envs_seen(events)
    configs = {replica: json.loads(env["TF_CONFIG"]) for replica, env in seen.items()}
    assert set(configs) == {"chief-0", "ps-0", "worker-0", "worker-1"}
    cluster = configs["chief-0"]["cluster"]
    assert list(cluster) == ["chief", "ps", "worker"]
    addresses = [a for role in cluster.values() for a in role]
    ports = planned_ports(cell.parameter)
    assert addresses == [f"localhost:{ports[name]}" for name in cell.parameter.replica_names()]
    assert len(set(addresses)) == 4
    for replica, config in configs.items():
        role, index = replica.split("-")
        assert config == {
            "cluster": cluster,
            "task": {"type": role, "index": int(index)},
            "environment": "cloud",
        }
        assert seen[replica]["PYTHONUNBUFFERED"] == "1"
        assert seen[replica]["MASTER_ADDR"] is None
    assert done(events).succeeded


def test_a_single_replica_tf_job_gets_no_tf_config(engine, tmp_path):
    cell = make_job(tmp_path, "tensorflow", {"worker": 1}, PRINT_ENV)

    _, events = run(engine, cell)

    env = envs_seen(events)["worker-0"]
    assert env["TF_CONFIG"] is None
    assert env["PYTHONUNBUFFERED"] == "1"
    assert done(events).message == "worker-0 succeeded"


def test_replicas_run_in_the_notebooks_folder_with_no_stdin(engine, tmp_path):
    """As `python train.py` there: they read the notebook's files, and what they write
    lands beside it; the code stays in the run directory."""
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 1},
        """
        print(os.getcwd())
        print(repr(sys.stdin.read()))
        open(ME + ".out", "w").write("written")
        """,
    )

    _, events = run(engine, cell)

    notebook = tmp_path / "notebook"
    for replica in ("master-0", "worker-0"):
        assert lines(events, replica) == [str(notebook), "''"]
        assert (notebook / f"{replica}.out").read_text() == "written"
    assert Path(cell.code_file).parent != notebook


def test_each_replica_is_its_own_process_group(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 2},
        "print(os.getpgrp() == os.getpid(), os.getsid(0) == os.getpid(), os.getpid())\n",
    )

    _, events = run(engine, cell)

    for replica, pid in pids(events).items():
        assert lines(events, replica) == [f"True True {pid}"]


# -- the plan ----------------------------------------------------------------------------------


def test_a_plan_is_every_replicas_command_line_directory_and_variables(engine, tmp_path):
    cell = make_job(tmp_path, "pytorch", {"master": 1, "worker": 1}, "pass\n")

    plan = engine.plan(cell.parameter, cell.code_file)

    assert (plan.name, plan.code_file, plan.parameter) == ("job-1", cell.code_file, cell.parameter)
    assert [launch.replica for launch in plan.launches] == ["master-0", "worker-0"]
    worker = plan.launches[1]
    assert worker.argv == (sys.executable, "-u", cell.code_file)
    assert worker.cwd == str(tmp_path / "notebook")
    master_port = planned_ports(cell.parameter)["master-0"]
    assert PORT_RANGE[0] <= master_port < PORT_RANGE[1]
    assert worker.env == {
        "MASTER_ADDR": "localhost",
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": "2",
        "RANK": "1",
        "PET_MASTER_ADDR": "localhost",
        "PET_MASTER_PORT": str(master_port),
        "PET_NNODES": "2",
        "PET_NODE_RANK": "1",
        "PET_NPROC_PER_NODE": "auto",
        "PYTHONUNBUFFERED": "1",
        "CIAO_REPLICA": "worker-0",
        "CIAO_JOB_NAME": "job-1",
    }
    assert plan.documents() == [[launch.as_dict() for launch in plan.launches]]


def test_planning_the_same_job_twice_gives_the_same_plan(engine, tmp_path):
    cell = make_job(tmp_path, "tensorflow", {"chief": 1, "ps": 1, "worker": 2}, "pass\n")

    first = engine.plan(cell.parameter, cell.code_file)
    again = engine.plan(cell.parameter, cell.code_file)

    assert first == again
    assert [launch.env for launch in first.launches] == [launch.env for launch in again.launches]


def test_the_record_keeps_the_plan_as_it_was_made(engine, tmp_path):
    cell = make_job(tmp_path, "tensorflow", {"ps": 1, "worker": 2}, "pass\n", "Running")
    plan = engine.plan(cell.parameter, cell.code_file)

    recorded = json.loads(json.dumps(plan.as_dict()))

    # everything but the code, which the record keeps as the file the replicas run
    as_made = dataclasses.replace(plan, parameter=dataclasses.replace(plan.parameter, code=""))
    assert LocalPlan.from_dict(recorded) == as_made


def test_a_planned_port_in_use_is_an_error_naming_the_port_and_replica(tmp_path):
    engine = ReplicaEngine()
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"chief": 1, "worker": 2},
        "open(ME + '.started', 'w').close()\n",
        name=f"job-port-taken-{os.getpid()}",  # its own ports, whoever else runs the tests
    )
    plan = engine.plan(cell.parameter, cell.code_file)
    port = planned_ports(cell.parameter)["worker-1"]

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(BackendError) as raised:
            engine.exec_code(plan)

    assert f"{port} (worker-1)" in str(raised.value)
    assert cell.parameter.generate_name in str(raised.value)
    assert not list(Path(cell.code_file).parent.glob("*.started")), "no replica started"


# -- lines -----------------------------------------------------------------------------------


def test_every_line_arrives_once_in_order_before_its_replicas_end_despite_a_tiny_queue(
    tmp_path,
):
    engine = ReplicaEngine(queue_size=16)
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 2},
        """
        for i in range(2000):
            print(ME, i)
            if i % 100 == 0:
                print(ME, "err", i, file=sys.stderr)
        """,
    )

    _, events = run(engine, cell)

    for replica in ("master-0", "worker-0", "worker-1"):
        assert lines(events, replica, "stdout") == [f"{replica} {i}" for i in range(2000)]
        assert lines(events, replica, "stderr") == [
            f"{replica} err {i}" for i in range(0, 2000, 100)
        ]
        positions = [i for i, e in enumerate(events) if getattr(e, "replica", "") == replica]
        last = positions[-1]
        assert events[last] == ends(events)[replica]
        assert ends(events)[replica].phase == "Succeeded"
    assert done(events).succeeded
    assert wait_until(lambda: not ciao_threads())


def test_stdout_and_stderr_are_told_apart_and_lines_lose_only_their_ending(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 1},
        """
        out = sys.stdout.buffer
        out.write(b"to stdout\\n")
        sys.stdout.flush()
        print("to stderr", file=sys.stderr)
        sys.stderr.flush()
        out.write(b"windows\\r\\n  spaced  \\t\\n\\nbad \\xff byte\\n")
        out.write("é".encode() * 40000 + b"\\n")
        out.write(b"no newline at the end")
        """,
    )

    _, events = run(engine, cell)

    assert lines(events, "worker-0", "stderr") == ["to stderr"]
    out = lines(events, "worker-0", "stdout")
    assert out[:5] == ["to stdout", "windows", "  spaced  \t", "", "bad \ufffd byte"]
    assert out[-1] == "no newline at the end"
    long_parts = out[5:-1]
    assert len(long_parts) >= 2, "an 80 KB line arrives in bounded pieces"
    assert "".join(long_parts) == "é" * 40000, "a character split between pieces survives"


# -- how a job ends --------------------------------------------------------------------------


def test_a_failing_replica_fails_the_job_naming_it_and_its_exit_code(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 2},
        """
        if ME == "worker-1":
            print("boom", file=sys.stderr)
            sys.exit(3)
        forever()
        """,
        clean_policy="Running",
    )

    _, events = run(engine, cell)

    assert done(events) == JobDone(
        False,
        "Failed",
        "worker-1 exited with code 3",
        failed_replica="worker-1",
        exit_code=3,
        tail=("boom",),
    )
    states = ends(events)
    assert (states["worker-1"].phase, states["worker-1"].reason) == ("Failed", "ExitCode 3")
    assert states["worker-1"].exit_code == 3
    assert lines(events, "worker-1", "stderr") == ["boom"]
    assert {states["master-0"].phase, states["worker-0"].phase} == {"Stopped"}


def test_a_replica_killed_by_a_signal_fails_the_job(engine, tmp_path):
    cell = make_job(tmp_path, "tensorflow", {"worker": 1}, "os.kill(os.getpid(), signal.SIGKILL)\n")

    _, events = run(engine, cell)

    assert ends(events)["worker-0"].reason == "Signal SIGKILL"
    assert done(events) == JobDone(
        False,
        "Failed",
        "worker-0 was killed by signal SIGKILL",
        failed_replica="worker-0",
        exit_code=137,
    )


def test_parameter_servers_are_stopped_once_the_job_succeeded_whatever_the_policy(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"chief": 1, "ps": 1, "worker": 1},
        """
        if ME == "ps-0":
            print("up", flush=True)
            open("ps-up", "w").close()
        while not os.path.exists("ps-up"):  # the chief ends only once the PS serves
            time.sleep(0.01)
        if ME == "ps-0":
            forever()
        """,
        clean_policy="None",
    )

    _, events = run(engine, cell)

    states = ends(events)
    assert states["ps-0"].phase == "Stopped"
    assert states["chief-0"].phase == states["worker-0"].phase == "Succeeded"
    assert lines(events, "ps-0") == ["up"]
    assert done(events) == JobDone(True, "Succeeded", "chief-0 succeeded", exit_code=0)
    assert gone(pids(events)["ps-0"])


def test_without_a_chief_worker_0_decides_and_running_policy_stops_the_rest(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 2},
        "if ME == 'worker-1':\n    forever()\n",
        clean_policy="Running",
    )

    _, events = run(engine, cell)

    assert ends(events)["worker-1"].phase == "Stopped"
    assert done(events).message == "worker-0 succeeded"


def test_clean_policy_none_waits_for_a_slow_worker_and_streams_its_lines(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 1},
        """
        if ME == "worker-0":
            time.sleep(1.0)
            print("late but complete")
        """,
        clean_policy="None",
    )

    _, events = run(engine, cell)

    assert lines(events, "worker-0") == ["late but complete"]
    assert ends(events)["worker-0"].phase == "Succeeded"
    assert done(events).message == "master-0 succeeded"


def test_clean_policy_running_stops_a_worker_still_running_at_the_end(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 1},
        "if ME == 'worker-0':\n    forever()\n",
        clean_policy="Running",
    )

    _, events = run(engine, cell)

    worker = ends(events)["worker-0"]
    assert (worker.phase, worker.reason, worker.exit_code) == ("Stopped", "Signal SIGTERM", 143)
    assert done(events).succeeded


def test_a_replicas_leftover_processes_die_with_it(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 1},
        """
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(child.pid)
        """,
    )

    _, events = run(engine, cell)

    assert done(events).succeeded
    assert wait_until(lambda: gone(int(lines(events, "worker-0")[0])))


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_from_another_thread_stops_everything_and_ends_the_logs(engine, tmp_path):
    cell = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 2},
        "print('ready', flush=True)\nforever()\n",
    )
    job = start(engine, cell)
    events: list[Event] = []
    cancelling: list[threading.Thread] = []

    for event in get_logs(engine, job):  # the test's timeout catches a hang
        events.append(event)
        if len([e for e in events if isinstance(e, LogLine)]) == 3 and not cancelling:
            cancelling.append(threading.Thread(target=engine.cancel, args=(job,)))
            cancelling[0].start()
    cancelling[0].join(10)
    assert not cancelling[0].is_alive()
    assert done(events) == JobDone(False, "Cancelled", "cancelled by the user")
    assert {state.phase for state in ends(events).values()} == {"Stopped"}
    for pid in pids(events).values():
        assert gone(pid) and group_gone(pid)
    engine.cancel(job)  # idempotent


def test_cancel_without_following_then_the_logs_end_cancelled(engine, tmp_path):
    cell = make_job(tmp_path, "tensorflow", {"worker": 2}, "forever()\n")
    job = start(engine, cell)
    processes = [rep.process for rep in job.handle.replicas.values()]

    engine.cancel(job)

    assert all(p.poll() is not None for p in processes)
    assert all(group_gone(p.pid) for p in processes)
    events = list(get_logs(engine, job))
    assert done(events).reason == "Cancelled"
    engine.cancel(job)


def test_a_replica_ignoring_sigterm_is_sigkilled_after_the_grace(tmp_path):
    engine = ReplicaEngine(stop_grace=0.5)
    cell = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 1},
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        forever()
        """,
    )
    job = start(engine, cell)
    logs = get_logs(engine, job)
    events = [next(logs), next(logs)]
    assert events[-1] == LogLine("worker-0", "stubborn")

    engine.cancel(job)
    events += list(logs)

    worker = ends(events)["worker-0"]
    assert (worker.phase, worker.reason, worker.exit_code) == ("Stopped", "Signal SIGKILL", 137)
    assert done(events).reason == "Cancelled"


# -- following and starting ------------------------------------------------------------------


def test_closing_the_logs_early_lets_the_job_finish_and_leaks_no_thread(tmp_path):
    engine = ReplicaEngine(queue_size=4)
    cell = make_job(
        tmp_path, "tensorflow", {"worker": 2}, "for i in range(50000):\n    print(ME, i)\n"
    )
    job = start(engine, cell)
    logs = get_logs(engine, job)
    for _ in range(10):
        next(logs)

    logs.close()

    processes = [rep.process for rep in job.handle.replicas.values()]
    assert wait_until(lambda: all(p.poll() == 0 for p in processes))
    assert wait_until(lambda: not ciao_threads())
    with pytest.raises(BackendError):
        next(get_logs(engine, job))


def test_a_replica_that_cannot_start_is_named_and_the_others_are_killed(
    engine, tmp_path, monkeypatch
):
    started = []
    real_popen = engine_module.subprocess.Popen

    def popen(argv, **kwargs):
        if started:
            raise OSError("no more processes")
        started.append(real_popen(argv, **kwargs))
        return started[-1]

    monkeypatch.setattr(engine_module.subprocess, "Popen", popen)
    cell = make_job(tmp_path, "pytorch", {"master": 1, "worker": 1}, "forever()\n")

    with pytest.raises(BackendError, match="worker-0"):
        start(engine, cell)

    assert started[0].poll() is not None
    assert group_gone(started[0].pid)


def test_a_missing_interpreter_is_a_backend_error(tmp_path):
    cell = make_job(tmp_path, "pytorch", {"master": 1}, "pass\n")

    with pytest.raises(BackendError, match="master-0"):
        start(ReplicaEngine(python=str(tmp_path / "no-python")), cell)


def test_a_missing_code_file_is_a_backend_error(engine, tmp_path):
    cell = make_job(tmp_path, "pytorch", {"master": 1}, "pass\n")
    plan = engine.plan(cell.parameter, str(tmp_path / "gone.py"))

    with pytest.raises(BackendError, match="gone.py"):
        engine.exec_code(plan)


def test_the_queue_is_always_bounded():
    with pytest.raises(ValueError):
        ReplicaEngine(queue_size=0)
