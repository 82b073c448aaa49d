"""The local backend, with real child processes running tiny Python programs.

Each replica is a process in its own process group, started in the job's directory with the
environment the training operator would inject; its lines stream back through one bounded
queue, its end follows its last line, and the job ends by the operator's rules.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ciao.backend import local_replicas as local_module
from ciao.backend.local_replicas import LocalReplicas
from ciao.backend.types import Backend, Event, Job, JobDone, LogLine, ReplicaState
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter, RoleSpec
from ciao.s2i.local import LocalCodeFile

pytestmark = pytest.mark.timeout(60)

# Every program starts so: its replicas branch on the replica Ciao names in CIAO_REPLICA.
PRELUDE = """\
import os, sys, time, json, signal
ME = os.environ["CIAO_REPLICA"]
def forever():
    while True:
        time.sleep(0.05)
"""


def make_job(
    tmp_path: Path,
    framework: str,
    roles: dict[str, int],
    code: str,
    clean_policy: str | None = None,
    name: str = "job-1",
) -> Parameter:
    """A Parameter as the interpreter and LocalCodeFile would hand it to the backend."""
    parameter = Parameter(
        framework,
        {role: RoleSpec(role, n) for role, n in roles.items()},
        generate_name=name,
        clean_policy=clean_policy,
    )
    source = PRELUDE + textwrap.dedent(code)
    parameter.image = LocalCodeFile(tmp_path).source_to_image(source, parameter)
    return parameter


def run(backend: LocalReplicas, parameter: Parameter) -> tuple[Job, list[Event]]:
    job = backend.exec_code(parameter)
    return job, list(backend.get_logs(job))


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
def backend() -> LocalReplicas:
    return LocalReplicas(stop_grace=1.0)


ENV_KEYS = [
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT",
    "PET_NNODES", "PET_NODE_RANK", "PET_NPROC_PER_NODE", "PYTHONUNBUFFERED", "TF_CONFIG",
    "CIAO_REPLICA", "CIAO_JOB_NAME", "JPY_SESSION_NAME", "HOME_OF_TEST",
]  # fmt: skip

PRINT_ENV = f"print(json.dumps({{k: os.environ.get(k) for k in {ENV_KEYS!r}}}))\n"


def envs_seen(events: list[Event]) -> dict[str, dict[str, str | None]]:
    return {
        e.replica: json.loads(e.text)
        for e in events
        if isinstance(e, LogLine) and e.text.startswith("{")
    }


# -- the operator's environment, seen from inside each replica ------------------------------


def test_pytorch_replicas_see_the_operators_variables_with_localhost(
    backend, tmp_path, monkeypatch
):
    monkeypatch.setenv("JPY_SESSION_NAME", "the kernel's, not the job's")
    monkeypatch.setenv("HOME_OF_TEST", "inherited")
    parameter = make_job(tmp_path, "pytorch", {"master": 1, "worker": 2}, PRINT_ENV)

    job, events = run(backend, parameter)

    assert (job.name, job.replicas, job.backend) == ("job-1", {"master": 1, "worker": 2}, "local")
    seen = envs_seen(events)
    assert set(seen) == {"master-0", "worker-0", "worker-1"}
    port = seen["master-0"]["MASTER_PORT"]
    assert port is not None and int(port) > 0
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
            "JPY_SESSION_NAME": None,
            "HOME_OF_TEST": "inherited",
        }
    assert done(events) == JobDone(True, "Succeeded", "master-0 succeeded", exit_code=0)


def test_tf_replicas_each_get_their_task_in_one_cluster_of_distinct_ports(backend, tmp_path):
    # The chief ends last: the PS would be stopped once it ends, perhaps before printing.
    wait_for_all = """
    open(ME + ".printed", "w").close()
    while ME == "chief-0" and len([f for f in os.listdir() if f.endswith(".printed")]) < 4:
        time.sleep(0.01)
    """
    parameter = make_job(
        tmp_path,
        "tensorflow",
        {"chief": 1, "ps": 1, "worker": 2},
        PRINT_ENV + textwrap.dedent(wait_for_all),
    )

    _, events = run(backend, parameter)

    seen = envs_seen(events)
    configs = {replica: json.loads(env["TF_CONFIG"]) for replica, env in seen.items()}
    assert set(configs) == {"chief-0", "ps-0", "worker-0", "worker-1"}
    cluster = configs["chief-0"]["cluster"]
    assert list(cluster) == ["chief", "ps", "worker"]
    addresses = [a for role in cluster.values() for a in role]
    assert len(addresses) == 4 and len(set(addresses)) == 4
    assert all(a.startswith("localhost:") and int(a.split(":")[1]) > 0 for a in addresses)
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


def test_a_single_replica_tf_job_gets_no_tf_config(backend, tmp_path):
    parameter = make_job(tmp_path, "tensorflow", {"worker": 1}, PRINT_ENV)

    _, events = run(backend, parameter)

    env = envs_seen(events)["worker-0"]
    assert env["TF_CONFIG"] is None
    assert env["PYTHONUNBUFFERED"] == "1"
    assert done(events).message == "worker-0 succeeded"


def test_replicas_run_in_the_code_files_directory_with_no_stdin(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 1},
        """
        print(os.getcwd())
        print(repr(sys.stdin.read()))
        open(ME + ".out", "w").write("written")
        """,
    )

    _, events = run(backend, parameter)

    job_dir = Path(parameter.image).parent
    for replica in ("master-0", "worker-0"):
        assert lines(events, replica) == [str(job_dir), "''"]
        assert (job_dir / f"{replica}.out").read_text() == "written"


def test_each_replica_is_its_own_process_group(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 2},
        "print(os.getpgrp() == os.getpid(), os.getsid(0) == os.getpid(), os.getpid())\n",
    )

    _, events = run(backend, parameter)

    for replica, pid in pids(events).items():
        assert lines(events, replica) == [f"True True {pid}"]


def test_dry_run_shows_what_runs(backend, tmp_path):
    parameter = make_job(tmp_path, "pytorch", {"master": 1, "worker": 1}, "pass\n")

    launches = backend.dry_run(parameter)

    assert [launch.replica for launch in launches] == ["master-0", "worker-0"]
    assert launches[1].argv == (sys.executable, "-u", parameter.image)
    assert launches[1].cwd == str(Path(parameter.image).parent)
    assert launches[1].env["RANK"] == "1"
    assert launches[1].env["CIAO_REPLICA"] == "worker-0"


# -- lines -----------------------------------------------------------------------------------


def test_every_line_arrives_once_in_order_before_its_replicas_end_despite_a_tiny_queue(
    tmp_path,
):
    backend = LocalReplicas(queue_size=16)
    parameter = make_job(
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

    _, events = run(backend, parameter)

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


def test_stdout_and_stderr_are_told_apart_and_lines_lose_only_their_ending(backend, tmp_path):
    parameter = make_job(
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

    _, events = run(backend, parameter)

    assert lines(events, "worker-0", "stderr") == ["to stderr"]
    out = lines(events, "worker-0", "stdout")
    assert out[:5] == ["to stdout", "windows", "  spaced  \t", "", "bad \ufffd byte"]
    assert out[-1] == "no newline at the end"
    long_parts = out[5:-1]
    assert len(long_parts) >= 2, "an 80 KB line arrives in bounded pieces"
    assert "".join(long_parts) == "é" * 40000, "a character split between pieces survives"


# -- how a job ends --------------------------------------------------------------------------


def test_a_failing_replica_fails_the_job_naming_it_and_its_exit_code(backend, tmp_path):
    parameter = make_job(
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

    _, events = run(backend, parameter)

    assert done(events) == JobDone(
        False, "Failed", "worker-1 exited with code 3", failed_replica="worker-1", exit_code=3
    )
    states = ends(events)
    assert (states["worker-1"].phase, states["worker-1"].reason) == ("Failed", "ExitCode 3")
    assert states["worker-1"].exit_code == 3
    assert lines(events, "worker-1", "stderr") == ["boom"]
    assert {states["master-0"].phase, states["worker-0"].phase} == {"Stopped"}


def test_a_replica_killed_by_a_signal_fails_the_job(backend, tmp_path):
    parameter = make_job(
        tmp_path, "tensorflow", {"worker": 1}, "os.kill(os.getpid(), signal.SIGKILL)\n"
    )

    _, events = run(backend, parameter)

    assert ends(events)["worker-0"].reason == "Signal SIGKILL"
    assert done(events) == JobDone(
        False,
        "Failed",
        "worker-0 was killed by signal SIGKILL",
        failed_replica="worker-0",
        exit_code=137,
    )


def test_parameter_servers_are_stopped_once_the_job_succeeded_whatever_the_policy(
    backend, tmp_path
):
    parameter = make_job(
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

    _, events = run(backend, parameter)

    states = ends(events)
    assert states["ps-0"].phase == "Stopped"
    assert states["chief-0"].phase == states["worker-0"].phase == "Succeeded"
    assert lines(events, "ps-0") == ["up"]
    assert done(events) == JobDone(True, "Succeeded", "chief-0 succeeded", exit_code=0)
    assert gone(pids(events)["ps-0"])


def test_without_a_chief_worker_0_decides_and_running_policy_stops_the_rest(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 2},
        "if ME == 'worker-1':\n    forever()\n",
        clean_policy="Running",
    )

    _, events = run(backend, parameter)

    assert ends(events)["worker-1"].phase == "Stopped"
    assert done(events).message == "worker-0 succeeded"


def test_clean_policy_none_waits_for_a_slow_worker_and_streams_its_lines(backend, tmp_path):
    parameter = make_job(
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

    _, events = run(backend, parameter)

    assert lines(events, "worker-0") == ["late but complete"]
    assert ends(events)["worker-0"].phase == "Succeeded"
    assert done(events).message == "master-0 succeeded"


def test_clean_policy_running_stops_a_worker_still_running_at_the_end(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 1},
        "if ME == 'worker-0':\n    forever()\n",
        clean_policy="Running",
    )

    _, events = run(backend, parameter)

    worker = ends(events)["worker-0"]
    assert (worker.phase, worker.reason, worker.exit_code) == ("Stopped", "Signal SIGTERM", 143)
    assert done(events).succeeded


def test_a_replicas_leftover_processes_die_with_it(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 1},
        """
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(child.pid)
        """,
    )

    _, events = run(backend, parameter)

    assert done(events).succeeded
    assert wait_until(lambda: gone(int(lines(events, "worker-0")[0])))


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_from_another_thread_stops_everything_and_ends_the_logs(backend, tmp_path):
    parameter = make_job(
        tmp_path,
        "pytorch",
        {"master": 1, "worker": 2},
        "print('ready', flush=True)\nforever()\n",
    )
    job = backend.exec_code(parameter)
    events: list[Event] = []
    cancelling: list[threading.Thread] = []

    for event in backend.get_logs(job):  # the test's timeout catches a hang
        events.append(event)
        if len([e for e in events if isinstance(e, LogLine)]) == 3 and not cancelling:
            cancelling.append(threading.Thread(target=backend.cancel, args=(job,)))
            cancelling[0].start()
    cancelling[0].join(10)
    assert not cancelling[0].is_alive()
    assert done(events) == JobDone(False, "Cancelled", "cancelled by the user")
    assert {state.phase for state in ends(events).values()} == {"Stopped"}
    for pid in pids(events).values():
        assert gone(pid) and group_gone(pid)
    backend.cancel(job)  # idempotent


def test_cancel_without_following_then_the_logs_end_cancelled(backend, tmp_path):
    parameter = make_job(tmp_path, "tensorflow", {"worker": 2}, "forever()\n")
    job = backend.exec_code(parameter)
    processes = [rep.process for rep in job.handle.replicas.values()]

    backend.cancel(job)

    assert all(p.poll() is not None for p in processes)
    assert all(group_gone(p.pid) for p in processes)
    events = list(backend.get_logs(job))
    assert done(events).reason == "Cancelled"
    backend.cancel(job)


def test_a_replica_ignoring_sigterm_is_sigkilled_after_the_grace(tmp_path):
    backend = LocalReplicas(stop_grace=0.5)
    parameter = make_job(
        tmp_path,
        "tensorflow",
        {"worker": 1},
        """
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("stubborn", flush=True)
        forever()
        """,
    )
    job = backend.exec_code(parameter)
    logs = backend.get_logs(job)
    events = [next(logs), next(logs)]
    assert events[-1] == LogLine("worker-0", "stubborn")

    backend.cancel(job)
    events += list(logs)

    worker = ends(events)["worker-0"]
    assert (worker.phase, worker.reason, worker.exit_code) == ("Stopped", "Signal SIGKILL", 137)
    assert done(events).reason == "Cancelled"


# -- following and starting ------------------------------------------------------------------


def test_closing_the_logs_early_lets_the_job_finish_and_leaks_no_thread(tmp_path):
    backend = LocalReplicas(queue_size=4)
    parameter = make_job(
        tmp_path, "tensorflow", {"worker": 2}, "for i in range(50000):\n    print(ME, i)\n"
    )
    job = backend.exec_code(parameter)
    logs = backend.get_logs(job)
    for _ in range(10):
        next(logs)

    logs.close()

    processes = [rep.process for rep in job.handle.replicas.values()]
    assert wait_until(lambda: all(p.poll() == 0 for p in processes))
    assert wait_until(lambda: not ciao_threads())
    with pytest.raises(BackendError):
        next(backend.get_logs(job))


def test_a_replica_that_cannot_start_is_named_and_the_others_are_killed(
    backend, tmp_path, monkeypatch
):
    started = []
    real_popen = local_module.subprocess.Popen

    def popen(argv, **kwargs):
        if started:
            raise OSError("no more processes")
        started.append(real_popen(argv, **kwargs))
        return started[-1]

    monkeypatch.setattr(local_module.subprocess, "Popen", popen)
    parameter = make_job(tmp_path, "pytorch", {"master": 1, "worker": 1}, "forever()\n")

    with pytest.raises(BackendError, match="worker-0"):
        backend.exec_code(parameter)

    assert started[0].poll() is not None
    assert group_gone(started[0].pid)


def test_a_missing_interpreter_is_a_backend_error(tmp_path):
    parameter = make_job(tmp_path, "pytorch", {"master": 1}, "pass\n")

    with pytest.raises(BackendError, match="master-0"):
        LocalReplicas(python=str(tmp_path / "no-python")).exec_code(parameter)


def test_a_missing_code_file_is_a_backend_error(backend, tmp_path):
    parameter = make_job(tmp_path, "pytorch", {"master": 1}, "pass\n")
    parameter.image = str(tmp_path / "gone.py")

    with pytest.raises(BackendError, match="gone.py"):
        backend.exec_code(parameter)


def test_it_is_a_backend():
    backend: Backend = LocalReplicas()

    assert backend.name == "local"
    with pytest.raises(ValueError):
        LocalReplicas(queue_size=0)
