"""The local backend as the kernel sees it: a supervisor process per job, run directories.

What `dry_run` plans is what the job's record keeps and what its supervisor runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
from shipping import ship

from ciao.backend.local.backend import LocalBackend
from ciao.backend.local.code_file import LocalCodeFile
from ciao.backend.local.env import planned_ports
from ciao.backend.local.plan import LocalPlan
from ciao.backend.record import RunDir
from ciao.backend.types import Backend, Event, Idle, Job, JobDone, LogLine, one_per_line
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter

pytestmark = pytest.mark.timeout(60)


def plan_cell(backend: LocalBackend, cell: str) -> LocalPlan:
    """Phases 1 and 2 of a cell as the Manager runs them, then the backend's plan."""
    parameter = MagicInterpreter().preprocess(cell)
    shipment = ship(LocalCodeFile(backend.run_root), parameter)
    return backend.dry_run(parameter, shipment)


def submit(backend: LocalBackend, cell: str) -> Job:
    return backend.exec_code(plan_cell(backend, cell))


def follow(backend: LocalBackend, job: Job) -> list[Event]:
    """The job's events to its end, without the Idle ticks."""
    return [e for e in one_per_line(backend.get_logs(job)) if not isinstance(e, Idle)]


def is_zombie_or_gone(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    return "zombie" if "\nState:\tZ" in status else "running"


def test_a_finished_jobs_supervisor_is_reaped_not_left_a_zombie(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, "%framework=pytorch\n%master=1\nprint('hi')")
    events = follow(backend, job)
    assert isinstance(events[-1], JobDone) and events[-1].succeeded
    deadline = time.monotonic() + 20
    while is_zombie_or_gone(job.handle.supervisor.pid) != "gone" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert is_zombie_or_gone(job.handle.supervisor.pid) == "gone"


def test_a_detached_jobs_supervisor_is_reaped_when_it_ends(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, "%framework=pytorch\n%master=1\nprint('hi')")
    backend.detach(job)  # never followed: nobody reads its JobDone
    deadline = time.monotonic() + 20
    while is_zombie_or_gone(job.handle.supervisor.pid) != "gone" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert is_zombie_or_gone(job.handle.supervisor.pid) == "gone"
    assert job.handle.run.final().succeeded


def test_jobs_of_other_backends_in_the_run_directory_are_not_listed_as_local(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    RunDir(tmp_path / "runs", "ciao-kfjob").write_spec(
        {"name": "ciao-kfjob", "backend": "kubeflow", "created": time.time(), "owner": {}}
    )
    job = submit(backend, "%framework=pytorch\n%master=1\nprint('hi')")
    follow(backend, job)
    assert [info.name for info in backend.jobs()] == [job.name]


def test_it_is_a_backend(tmp_path):
    backend: Backend = LocalBackend(tmp_path / "runs")

    assert backend.name == "local"


# -- the plan, the record and what runs ------------------------------------------------------

#: The variables a replica shows: every one Ciao may inject.
SHOWN = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "TF_CONFIG", "PYTHONUNBUFFERED")
SHOWN_PREFIXES = ("PET_", "CIAO_")

#: What each replica prints: how it was started, where, and the variables it was given.
SHOW_LAUNCH = f"""\
import json, os, sys
env = {{k: v for k, v in os.environ.items() if k in {SHOWN!r} or k.startswith({SHOWN_PREFIXES!r})}}
print(json.dumps({{"argv": sys.orig_argv, "cwd": os.getcwd(), "env": env}}))
"""


def shown_env_of_the_kernel() -> dict[str, str]:
    """What of the test's own environment SHOW_LAUNCH prints (replicas inherit it)."""
    return {k: v for k, v in os.environ.items() if k in SHOWN or k.startswith(SHOWN_PREFIXES)}


def test_two_dry_runs_of_the_same_cell_are_the_same_plan(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    parameter = MagicInterpreter().preprocess("%framework=pytorch\n%master=1\n%worker=2\npass")
    code_file = LocalCodeFile(backend.run_root)

    # as the Manager plans it for %dryrun (nothing written), then to run the cell
    shown = backend.dry_run(parameter, code_file.plan(parameter))
    submitted = backend.dry_run(parameter, ship(code_file, parameter))

    assert shown == submitted
    assert [launch.env for launch in shown.launches] == [
        launch.env for launch in submitted.launches
    ]
    assert shown.launches[0].env["MASTER_PORT"] == str(planned_ports(parameter)["master-0"])


@pytest.mark.parametrize(
    ("cell", "replicas"),
    [
        ("%framework=pytorch\n%master=1\n%worker=2\n", ["master-0", "worker-0", "worker-1"]),
        ("%framework=tensorflow\n%chief=1\n%worker=2\n", ["chief-0", "worker-0", "worker-1"]),
    ],
)
def test_a_submitted_plan_runs_exactly_its_command_lines_and_environments(tmp_path, cell, replicas):
    backend = LocalBackend(tmp_path / "runs")
    plan = plan_cell(backend, cell + SHOW_LAUNCH)

    job = backend.exec_code(plan)
    events = follow(backend, job)

    recorded = LocalPlan.from_dict(RunDir(backend.run_root, plan.name).spec()["plan"])
    assert (recorded.code_file, recorded.launches) == (plan.code_file, plan.launches)
    seen = {e.replica: json.loads(e.text) for e in events if isinstance(e, LogLine)}
    assert [launch.replica for launch in plan.launches] == replicas
    assert sorted(seen) == sorted(replicas)
    inherited = shown_env_of_the_kernel()
    for launch in plan.launches:
        assert seen[launch.replica] == {
            "argv": list(launch.argv),
            "cwd": launch.cwd,
            "env": {**inherited, **launch.env},
        }
    assert events[-1].state == "Succeeded"


def test_the_supervisor_runs_the_recorded_plan_not_one_of_its_own(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    planned = plan_cell(backend, "%framework=pytorch\n%master=1\n%worker=1\n" + SHOW_LAUNCH)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    edited = dataclasses.replace(
        planned,
        launches=tuple(
            dataclasses.replace(
                launch,
                argv=(*launch.argv, "--only-in-the-plan", launch.replica),
                cwd=str(elsewhere),
                env={**launch.env, "CIAO_EDITED": launch.replica},
            )
            for launch in planned.launches
        ),
    )

    events = follow(backend, backend.exec_code(edited))

    seen = {e.replica: json.loads(e.text) for e in events if isinstance(e, LogLine)}
    inherited = shown_env_of_the_kernel()
    assert sorted(seen) == ["master-0", "worker-0"]
    for launch in edited.launches:
        assert seen[launch.replica] == {
            "argv": list(launch.argv),
            "cwd": str(elsewhere),
            "env": {**inherited, **launch.env},
        }


def test_the_plan_injects_the_operators_variables(tmp_path):
    backend = LocalBackend(tmp_path / "runs")

    torch = plan_cell(backend, "%framework=pytorch\n%master=1\n%worker=2\npass")
    tf = plan_cell(backend, "%framework=tensorflow\n%chief=1\n%worker=2\npass")

    port = str(planned_ports(torch.parameter)["master-0"])
    for rank, launch in enumerate(torch.launches):
        assert launch.argv == (sys.executable, "-u", torch.code_file)
        assert launch.cwd == os.getcwd()  # no notebook named: the kernel's own folder
        assert launch.env == {
            "MASTER_ADDR": "localhost",
            "MASTER_PORT": port,
            "WORLD_SIZE": "3",
            "RANK": str(rank),
            "PET_MASTER_ADDR": "localhost",
            "PET_MASTER_PORT": port,
            "PET_NNODES": "3",
            "PET_NODE_RANK": str(rank),
            "PET_NPROC_PER_NODE": "auto",
            "PYTHONUNBUFFERED": "1",
            "CIAO_REPLICA": launch.replica,
            "CIAO_JOB_NAME": torch.name,
        }
    ports = planned_ports(tf.parameter)
    cluster = {
        "chief": [f"localhost:{ports['chief-0']}"],
        "worker": [f"localhost:{ports['worker-0']}", f"localhost:{ports['worker-1']}"],
    }
    for launch in tf.launches:
        role, index = launch.replica.split("-")
        assert json.loads(launch.env["TF_CONFIG"]) == {
            "cluster": cluster,
            "task": {"type": role, "index": int(index)},
            "environment": "cloud",
        }
        assert launch.env["CIAO_JOB_NAME"] == tf.name


def test_a_busy_planned_port_fails_the_job_naming_the_port_and_replica(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    plan = plan_cell(backend, "%framework=tensorflow\n%chief=1\n%worker=1\nprint('ran')")
    port = planned_ports(plan.parameter)["worker-0"]

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        job = backend.exec_code(plan)
        events = follow(backend, job)

    done = events[-1]
    assert isinstance(done, JobDone) and done.state == "Failed"
    assert done.reason == "StartFailed"
    assert f"{port} (worker-0)" in done.message and plan.name in done.message
    assert not any(isinstance(e, LogLine) for e in events), "no replica ran"
    assert backend.jobs()[0].state == "Failed"


def test_submitting_a_plan_whose_code_file_is_gone_is_an_error(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    parameter = MagicInterpreter().preprocess("%framework=pytorch\n%master=1\npass")
    not_written = LocalCodeFile(backend.run_root).plan(parameter)
    plan = backend.dry_run(parameter, not_written)

    with pytest.raises(BackendError, match="code.py"):
        backend.exec_code(plan)

    assert backend.jobs() == []


# -- the verdict -------------------------------------------------------------------------------

FAILING = (
    "%framework=pytorch\n%master=1\n%worker=1\nimport os, sys\n"
    "if os.environ['CIAO_REPLICA'] == 'worker-0':\n"
    "    for i in range(50):\n"
    "        print(f'step {i}', flush=True)\n"
    "    print('ValueError: shard 7 is corrupt')\n"
    "    sys.exit(3)\n"
    "print('the master is fine')\n"
    "import time; time.sleep(60)\n"
)


def test_a_failed_jobs_verdict_carries_the_failed_replicas_last_lines(tmp_path):
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, FAILING)

    done = follow(backend, job)[-1]

    assert isinstance(done, JobDone) and not done.succeeded
    assert (done.failed_replica, done.exit_code) == ("worker-0", 3)
    assert done.tail == (*(f"step {i}" for i in range(31, 50)), "ValueError: shard 7 is corrupt")


def test_attaching_to_a_failed_job_gives_the_same_last_lines_from_its_record(tmp_path):
    """The lines came before the attach: the recorded verdict carries them."""
    backend = LocalBackend(tmp_path / "runs")
    job = submit(backend, FAILING)
    followed = follow(backend, job)[-1]

    attached = backend.attach(job.name, viewer="notebook.ipynb")
    done = follow(backend, attached)[-1]

    assert isinstance(done, JobDone) and done == followed
    assert done.tail[-1] == "ValueError: shard 7 is corrupt"
