"""The Manager below the kernel: a %detach cell submits its job and reads none of it."""

from __future__ import annotations

import pytest

from ciao.backend.run_dir import RunDir
from ciao.config import parse_config
from ciao.interpreter.magics import MagicInterpreter
from ciao.manager import Manager, Prepared, backend_of

pytestmark = pytest.mark.timeout(60)


def test_a_detach_cell_submits_the_job_and_marks_nothing_as_shown(tmp_path):
    config = parse_config({"local": {"run_dir": str(tmp_path)}}, None)
    cell = "%detach\n%framework=pytorch\n%master=1\nprint('for later')"
    active = Manager(load_config=lambda: config).submit(
        Prepared(config, job=MagicInterpreter().preprocess(cell))
    )
    assert active.detached and list(active.events()) == []
    backend = backend_of(config, active.job.name)
    attached = backend.attach(active.job.name)
    lines = [e for e in backend.get_logs(attached) if getattr(e, "text", None) == "for later"]
    assert len(lines) == 1  # %attach shows the job's whole output: the cell consumed none
    assert RunDir(tmp_path, active.job.name).shown() > 0
