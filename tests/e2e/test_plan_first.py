"""Plan first: every check a cell's run makes — the S2I provider's and the backend's — is
made before anything is built, written or created; `%dryrun` and the run share one plan.

Through the kernel on the test cluster's Kubeflow Trainer v2, with `s2i.provider: img` and
stand-in build tools that record every call: a cell the backend would refuse costs no
build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fakecluster import FakeCluster
from kernel_client import run, running_kernel
from standin_tools import StandinTools

from ciao.config import load_config
from ciao.interpreter.magics import MagicInterpreter
from ciao.manager import Manager, Prepared
from ciao.registry import Registry

pytestmark = pytest.mark.timeout(120)

OWNER = {"kernel-id": "k-1", "session": "s-1", "cell": "3", "notebook": "train.ipynb"}


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(namespaces=("team",), kubeflow=("v2",), trainer_release="v2.3") as fake:
        yield fake


@pytest.fixture(scope="module")
def setup(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("plan-first")
    tools = StandinTools(home / "tools")
    kubeconfig = cluster.write_kubeconfig(home / "kubeconfig", namespace="team")
    config = home / "config.yaml"
    config.write_text(
        f"backend: kubeflow\nkubeconfig: {kubeconfig}\n"
        f"local: {{run_dir: {home / 'runs'}}}\n"
        "s2i: {provider: img, registry: registry.test/team}\n"
    )
    env = {
        **os.environ,
        "PATH": tools.path_with_tools(f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"),
        "CIAO_CONFIG": str(config),
    }
    with running_kernel(env=env) as (_, kc):
        yield {"kc": kc, "tools": tools, "config": config, "home": home}


def created(cluster) -> list[Any]:
    return [obj for kind in ("trainjobs", "configmaps") for obj in cluster.list(kind, "team")]


@pytest.mark.parametrize(
    ("cell", "error"),
    [
        (
            "%framework=pytorch\n%master=1;%cpu=1\n%worker=1;%cpu=2\nprint(1)",
            "Kubeflow Trainer v2 gives every node the same resources",
        ),
        ("%framework=pytorch\n%nodes=2\n%runtime=no-such-runtime\nprint(1)", "no-such-runtime"),
    ],
    ids=["unequal-node-resources", "missing-runtime"],
)
def test_a_cell_the_backend_refuses_builds_nothing(setup, cluster, cell, error):
    setup["tools"].control()
    content, _ = run(setup["kc"], cell)
    assert content["status"] == "error" and error in content["evalue"], content
    assert setup["tools"].runs() == [], "the build tool was called for a cell that cannot run"
    assert created(cluster) == []


def test_a_configmap_too_large_is_refused_before_anything_is_created(setup, cluster):
    config = setup["config"]
    text = config.read_text()
    config.write_text(text.replace("provider: img", "provider: configmap"))
    try:
        big = "%framework=pytorch\n%nodes=1\nDATA = " + repr("x" * (1 << 20)) + "\n"
        content, _ = run(setup["kc"], big)
    finally:
        config.write_text(text)
    assert content["status"] == "error" and "more than a ConfigMap holds" in content["evalue"]
    assert created(cluster) == []


class Recording(Registry):
    """The real registry, whose backends remember the plan each submission sent."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[Any] = []

    def components(self, config, backend=""):  # type: ignore[no-untyped-def]
        s2i, chosen = super().components(config, backend)
        submit = chosen.backend.exec_code

        def exec_code(plan):  # type: ignore[no-untyped-def]
            self.submitted.append(plan)
            return submit(plan)

        chosen.backend.exec_code = exec_code
        return s2i, chosen


@pytest.mark.parametrize("backend", ["local", "kubeflow"])
def test_dryrun_shows_the_very_plan_a_run_submits(setup, cluster, backend, monkeypatch):
    monkeypatch.setenv("CIAO_CONFIG", str(setup["config"]))
    monkeypatch.setenv("PATH", setup["tools"].path_with_tools(os.environ["PATH"]))
    setup["tools"].control()
    config = load_config()
    cell = f"%backend={backend}\n%framework=pytorch\n%nodes=2\nprint('same plan')"
    parameter = MagicInterpreter(name_factory=lambda: "ciao-plans").preprocess(cell)
    registry = Recording()
    manager = Manager(load_config=lambda: config, registry=registry)
    prepared = Prepared(config, parameter=parameter)

    dryrun = manager.dry_run(prepared, OWNER)  # what %dryrun shows
    shown = manager.plan(prepared, OWNER)
    assert dryrun.documents() == shown.job.plan.documents()
    active = manager.submit(prepared, OWNER)
    try:
        (submitted,) = registry.submitted
        assert submitted == shown.job.plan, "the run submitted other than %dryrun showed"
        assert submitted.documents() == dryrun.documents()
    finally:
        active.cancel()
        active.wait_cancelled(30)
    if backend == "kubeflow":  # the img provider built and pushed the planned image once
        assert [run["argv"][0] for run in setup["tools"].runs()] == ["docker", "docker"]
