"""`%procs=N` locally: N processes per replica, with the ranks torchrun would give them."""

from __future__ import annotations

import collections

from ciao.backend.local.backend import LocalBackend
from ciao.backend.local.procs import worker_environment
from ciao.backend.types import Idle, JobDone, LogLine, one_per_line
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.types import Shipment

PRINT_RANKS = (
    "import os\n"
    "keys = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'GROUP_RANK')\n"
    "for i in range(100):\n"
    "    print(*(os.environ[k] for k in keys), i)\n"
)


def run(tmp_path, cell: str, code: str) -> list:
    source = tmp_path / "code.py"
    source.write_text(code)
    backend = LocalBackend(tmp_path / "runs", stop_grace=1.0)
    parameter = MagicInterpreter().preprocess(cell)
    job = backend.exec_code(backend.dry_run(parameter, Shipment(image=str(source))))
    return [e for e in one_per_line(backend.get_logs(job)) if not isinstance(e, Idle)]


def test_every_process_gets_torchruns_ranks_and_whole_lines(tmp_path):
    events = run(tmp_path, "%nodes=2\n%procs=3\nx", PRINT_RANKS)
    lines = [e for e in events if isinstance(e, LogLine)]
    assert all(len(e.text.split()) == 6 for e in lines), "no line is cut by another process"
    seen = collections.defaultdict(set)
    for line in lines:
        rank, local, world, local_world, group, _ = line.text.split()
        assert (world, local_world) == ("6", "3")
        assert int(rank) == int(group) * 3 + int(local)
        seen[line.replica].add(int(rank))
    assert seen == {"master-0": {0, 1, 2}, "worker-0": {3, 4, 5}}
    assert len(lines) == 600
    assert isinstance(events[-1], JobDone) and events[-1].succeeded


def test_one_failing_process_stops_the_others_and_fails_its_replica_with_its_code(tmp_path):
    code = "import os, sys, time\nif os.environ['RANK'] == '1':\n    sys.exit(5)\ntime.sleep(60)\n"
    events = run(tmp_path, "%nodes=1\n%procs=2\nx", code)
    done = events[-1]
    assert isinstance(done, JobDone) and not done.succeeded
    assert (done.failed_replica, done.exit_code) == ("master-0", 5)


def test_the_worker_environment_is_torchruns():
    base = {"PET_NODE_RANK": "1", "PET_NNODES": "2", "MASTER_PORT": "29500"}
    env = worker_environment(base, 4, 2)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("6", "2", "8")
    assert env["MASTER_PORT"] == "29500" and env["PET_NPROC_PER_NODE"] == "4"
