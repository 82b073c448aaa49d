"""Pod settings in a local cell, through the kernel: `%env` values reach the replicas (a
role's own on its line), a host folder is found where CIAO_VOLUME_<PATH> says, and every
setting only a cluster applies is named once in the cell as not applying."""

from __future__ import annotations

import pytest
from kernel_client import by_replica, run, stream_text

pytestmark = pytest.mark.timeout(120)

PRINT_ENV = """
import os
print(os.environ["MODE"], os.environ.get("ROLE_NOTE"), os.environ.get("TOKEN"))
"""


def test_env_reaches_every_replica_and_cluster_only_settings_are_named_once(kernel) -> None:
    _, kc = kernel
    cell = (
        "%master=1\n"
        "%worker=1;%env=ROLE_NOTE=w;%toleration=nvidia.com/gpu:NoSchedule\n"
        "%env=MODE=fast\n"
        "%env=TOKEN=secret:hf/token\n"
        "%volume=pvc:datasets:/data:ro\n" + PRINT_ENV
    )
    reply, messages = run(kc, cell)
    assert reply["status"] == "ok", reply
    text = stream_text(messages)
    lines = by_replica(text)
    assert lines["master-0"] == ["fast None None"]
    assert lines["worker-0"] == ["fast w None"]
    notes = [line for line in text.splitlines() if "not to local processes" in line]
    assert notes == [
        "[ciao] note: %volume=pvc:datasets:/data:ro, %env=TOKEN=secret:hf/token, "
        "%toleration=nvidia.com/gpu:NoSchedule (worker) apply on Kubernetes, not to local "
        "processes"
    ]


def test_a_host_folder_is_where_its_variable_says(kernel, tmp_path) -> None:
    _, kc = kernel
    (tmp_path / "train.csv").write_text("a,b\n")
    cell = (
        f"%volume=hostPath:{tmp_path}:/data:ro\n"
        "import os\n"
        "print(sorted(os.listdir(os.environ['CIAO_VOLUME_DATA'])))\n"
    )
    reply, messages = run(kc, "%master=1\n" + cell)
    assert reply["status"] == "ok", reply
    assert by_replica(stream_text(messages))["master-0"] == ["['train.csv']"]
    assert "not to local processes" not in stream_text(messages)


def test_a_bad_setting_is_an_error_naming_its_line_and_nothing_runs(kernel) -> None:
    _, kc = kernel
    reply, messages = run(kc, "%master=1\n%toleration=nvidia.com/gpu:NoScheduled\nprint('ran')")
    content = reply
    assert content["status"] == "error"
    assert "line 2: %toleration: unknown taint effect 'NoScheduled'" in content["evalue"]
    assert "ran" not in stream_text(messages)
