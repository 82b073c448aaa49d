"""A notebook's definitions and files follow its job cells, on every backend (issue 21).

The kernel runs in a notebook's folder holding `utils.py`, `data/small.csv` and a
`.gitignore`d `data/skip.log`. An earlier cell defines functions; a later job cell uses them,
imports `utils` and reads `data/` (`%files`), with no marking: locally, on the test
cluster's training operator v1 (PyTorchJob, the code in a ConfigMap) and on its Kubeflow
Trainer v2 (TrainJob under torchrun). What cannot travel is refused before anything is
built or created.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from fakecluster import FakeCluster
from kernel_client import (
    HAS_TORCH,
    TEST_HOME,
    by_replica,
    everything_said,
    kernel_on,
    kubeflow_env,
    run,
    running_kernel,
    stream_text,
)
from standin_tools import StandinTools

pytestmark = pytest.mark.timeout(240)

DEFINE = (
    "%nodes=1\n"
    "import os\n"
    "def scaled(x):\n"
    "    if x < 0:\n"
    "        raise ValueError(f'negative: {x}')\n"
    "    return x * factor()\n"
    "\n"
    "def factor():\n"
    "    return 10\n"
    "print('defined')\n"
)
USE = (
    "%nodes=2\n"
    "%files=data/\n"
    "import utils\n"
    "print('rank', os.environ['RANK'], scaled(2), utils.double(21),"
    " open('data/small.csv').read().strip(), os.path.exists('data/skip.log'))\n"
)


def make_notebook(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utils.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "small.csv").write_text("a,b\n")
    (folder / "data" / "skip.log").write_text("not shipped\n")
    (folder / ".gitignore").write_text("*.log\n")
    return folder


BACKENDS = [
    "local",
    "v1",
    pytest.param("v2", marks=pytest.mark.skipif(not HAS_TORCH, reason="torchrun")),
]


@pytest.fixture(scope="module", params=BACKENDS)
def notebook(request, tmp_path_factory):
    """A kernel in a notebook's folder, on one backend; its client, folder and cluster."""
    home = tmp_path_factory.mktemp(f"carry-{request.param}")
    folder = make_notebook(home / "notebook")
    with kernel_on(request.param, home, cwd=folder) as (kc, cluster):
        yield kc, folder, cluster


def detached_after_define(kc) -> str:
    """Define `scaled` (and `factor`), then a detached job cell using it: the job's name."""
    run(kc, DEFINE)
    content, messages = run(kc, "%nodes=1\n%detach\nprint(scaled(1))\n")
    assert content["status"] == "ok", content
    return re.search(r"Submitted job (\S+)", stream_text(messages)).group(1)


def test_a_job_cell_uses_earlier_definitions_local_modules_and_files(notebook):
    kc, _, cluster = notebook
    content, _ = run(kc, DEFINE)
    assert content["status"] == "ok", content

    content, messages = run(kc, USE)

    assert content["status"] == "ok", content
    out = stream_text(messages)
    assert re.search(r"carried: os \(imports\), scaled, factor \(In \[\d+\]\)", out), out
    assert "utils.py (module)" in out and "data/small.csv" in out
    shipped_log = cluster is None  # locally the replicas run in the folder itself
    lines = by_replica(out)
    ranks = sorted(line for replica in lines.values() for line in replica if "rank" in line)
    assert ranks == [f"rank {rank} 20 42 a,b {shipped_log}" for rank in ("0", "1")], out


def test_a_traceback_through_carried_code_names_its_cell_and_line(notebook):
    kc, _, _ = notebook
    content, _ = run(kc, DEFINE)
    count = content["execution_count"]

    content, messages = run(kc, "%nodes=1\n\nprint(scaled(-1))\n")

    assert content["status"] == "error"
    text = everything_said(content, messages)
    assert f"In [{count}], line 5, in scaled" in text, text
    assert "ValueError: negative: -1" in text
    assert 'main.py", line' not in text  # no frame of Ciao's bootstrap


def test_a_name_defined_nowhere_is_refused_before_anything_is_created(notebook):
    kc, _, cluster = notebook
    before = created(cluster)

    content, _ = run(kc, "%nodes=1\nprint(defined_nowhere + 1)\n")

    assert content["status"] == "error"
    assert "defined_nowhere is not defined in any cell of this notebook" in content["evalue"]
    assert created(cluster) == before


def created(cluster) -> list[str]:
    """The jobs and ConfigMaps in the namespace (none without a cluster)."""
    if cluster is None:
        return []
    names = []
    for kind in ("pytorchjobs", "trainjobs", "configmaps"):
        try:
            names += [f"{kind}/{o['metadata']['name']}" for o in cluster.list(kind, "team")]
        except KeyError:  # that API is not installed on this cluster
            continue
    return sorted(n for n in names if not n.endswith("kube-root-ca.crt"))


# --- what does not fit a ConfigMap: refused before anything is built, or put in the image


@pytest.fixture(scope="module")
def cluster_with_tools(tmp_path_factory):
    home = tmp_path_factory.mktemp("carry-big")
    folder = make_notebook(home / "notebook")
    (folder / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    (folder / "medium.bin").write_bytes(os.urandom(300 * 1024))
    tools = StandinTools(home / "tools")
    with FakeCluster(namespaces=("team",)) as cluster:
        kubeflow_env(cluster, home)
        env = {
            **os.environ,
            "PATH": tools.path_with_tools(
                f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"
            ),
            "CIAO_CONFIG": str(home / "config.yaml"),
        }
        with running_kernel(env=env, cwd=str(folder)) as (_, kc):
            yield kc, cluster, tools, home / "config.yaml"


def test_files_too_large_for_a_configmap_are_refused_naming_the_largest(cluster_with_tools):
    kc, cluster, tools, _ = cluster_with_tools
    tools.control()

    content, _ = run(kc, "%nodes=1\n%files=big.bin,medium.bin,data/\nprint(1)\n")

    assert content["status"] == "error", content
    message = content["evalue"]
    assert "more than a ConfigMap holds" in message
    assert re.search(r"big\.bin \(5\.0 MiB\), medium\.bin \(300\.0 KiB\)", message), message
    assert "s2i: {provider: img}" in message and "volume" in message
    assert tools.runs() == [] and created(cluster) == []


def test_with_the_img_provider_the_files_are_in_the_image(cluster_with_tools):
    kc, cluster, tools, config = cluster_with_tools
    original = config.read_text()
    config.write_text(original + "s2i: {provider: img, registry: registry.test/team}\n")
    tools.control()
    try:
        content, _ = run(kc, "%nodes=1\n%files=big.bin,data/\n%dryrun\nprint(1)\n")
        assert content["status"] == "ok", content
        assert tools.runs() == []  # a dry run builds nothing

        content, _ = run(kc, "%nodes=1\n%files=big.bin,data/\n%detach\nprint(1)\n", timeout=60)
        assert content["status"] == "ok", content

        (build,) = [r for r in tools.runs() if r["argv"][1:2] == ["build"]]
        archive = build["files"]["files.tar.gz"]
        assert archive["members"] == {
            "big.bin": 5 * 1024 * 1024,
            "data/small.csv": 4,
        }
        assert "COPY " in build["files"]["Dockerfile"] and "main.py" in build["files"]["Dockerfile"]
    finally:
        config.write_text(original)
        for job in cluster.list("pytorchjobs", "team"):
            cluster.delete("pytorchjobs", "team", job["metadata"]["name"])


def test_the_record_says_what_travelled_for_status_logs_and_attach(notebook):
    kc, _, _ = notebook
    name = detached_after_define(kc)

    for command in (f"%attach {name}", f"%status {name}", f"%logs {name}"):
        content, messages = run(kc, command)
        said = f"[ciao] {name} ran with carried: scaled, factor (In ["
        assert said in stream_text(messages), (command, stream_text(messages))


def test_with_the_session_off_definitions_travel_and_values_are_refused_saying_why(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"local: {{run_dir: {tmp_path / 'runs'}}}\nsession: {{enabled: false}}\n")
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, kc):
        # every cell is a job: its imports and functions travel, its values cannot
        content, _ = run(kc, "import math\ndef root(x):\n    return math.sqrt(x)\nlimit = 3\n")
        assert content["status"] == "ok", content

        content, messages = run(kc, "%nodes=1\nprint('root', root(16))\n")
        assert content["status"] == "ok", content
        assert "[master-0] root 4.0" in stream_text(messages)

        content, _ = run(kc, "%nodes=1\nprint(limit)\n")
        assert content["status"] == "error"
        assert "limit is assigned in In [1], which ran as a job" in content["evalue"]


# local runs keep main.py and carried.json beside their code, in the run's work directory
@pytest.mark.parametrize("notebook", BACKENDS[1:], indirect=True)
def test_a_kubeflow_record_keeps_what_travelled_in_full(notebook):
    kc, _, _ = notebook
    name = detached_after_define(kc)

    spec = json.loads((TEST_HOME / ".ciao" / "runs" / name / "spec.json").read_text())

    assert [d["names"] for d in spec["travelled"]["definitions"]] == [["scaled"], ["factor"]]
    assert spec["travels"].startswith("carried: scaled, factor (In [")
