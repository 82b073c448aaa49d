"""Both backends and every S2I provider through the seams the Manager uses, nothing else.

One script per seam, run against each implementation: the local backend (real processes)
and the Kubeflow backend (the test cluster, with its simulated operator and kubelet); the
local code file, the ConfigMap provider and the image builds (with stand-in tools). Method
names and parameters must match the Protocols too: mypy checks that statically where the
registry hands them out; this checks the behaviour each promises.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakecluster import FakeCluster
from shipping import ship
from standin_tools import StandinTools

from ciao.backend.types import Backend, Idle, JobDone, LogLine, one_per_line
from ciao.config import Config, parse_config
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter
from ciao.registry import Registry
from ciao.s2i.types import S2IClient, Shipment

pytestmark = pytest.mark.timeout(120)

CELL = (
    "%framework=pytorch\n%master=1\n%worker=1\nimport os\nprint('hello from', os.environ['RANK'])\n"
    "print(f\"loss={os.environ['RANK']}.5\")"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[FakeCluster]:
    with FakeCluster() as fake:
        yield fake


def local_config(tmp_path: Path) -> Config:
    return parse_config({"backend": "local", "local": {"run_dir": str(tmp_path / "runs")}}, None)


def kubeflow_config(tmp_path: Path, cluster: FakeCluster, **s2i: Any) -> Config:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    return parse_config(
        {
            "backend": "kubeflow",
            "kubeconfig": str(kubeconfig),
            "local": {"run_dir": str(tmp_path / "runs")},
            **({"s2i": s2i} if s2i else {}),
        },
        None,
    )


@pytest.fixture(params=["local", "kubeflow"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    if request.param == "local":
        return local_config(tmp_path)
    return kubeflow_config(tmp_path, request.getfixturevalue("cluster"))


def protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_")
    }


def assert_implements(obj: object, protocol: type) -> None:
    for name, signature in protocol_methods(protocol).items():
        method = getattr(obj, name, None)
        assert callable(method), f"{type(obj).__name__} lacks {name}"
        expected = [p for p in signature.parameters if p != "self"]
        assert list(inspect.signature(method).parameters) == expected, (
            f"{type(obj).__name__}.{name} takes {inspect.signature(method)}, the Protocol "
            f"{signature}"
        )


def test_a_backend_plans_submits_exactly_that_plan_follows_lists_and_deletes(config):
    s2i, managed = Registry().components(config)
    backend = managed.backend  # the Backend behind the Manager's view of it
    assert_implements(backend, Backend)
    assert_implements(s2i, S2IClient)
    parameter = MagicInterpreter().preprocess(CELL)

    planned = backend.dry_run(parameter, s2i.plan(parameter))
    assert planned == backend.dry_run(parameter, s2i.plan(parameter))
    assert planned.backend == backend.name and planned.name == parameter.generate_name
    assert planned.documents(), "a plan shows what it will create"

    shipment = ship(s2i, parameter)
    plan = backend.dry_run(parameter, shipment)
    assert plan.documents() == planned.documents(), "the dry run is what is submitted"
    job = backend.exec_code(plan)
    events = [e for e in one_per_line(backend.get_logs(job)) if not isinstance(e, Idle)]
    assert isinstance(events[-1], JobDone) and events[-1].succeeded, events[-1]
    said = sorted(e.text for e in events if isinstance(e, LogLine))
    assert said == ["hello from 0", "hello from 1", "loss=0.5", "loss=1.5"]

    assert job.name in [info.name for info in backend.jobs()]
    info, states = backend.describe(job.name)
    assert info.name == job.name and info.state == "Succeeded"
    logged = [line.text for line in backend.logs(job.name, "worker-0")]
    assert logged == ["hello from 1", "loss=1.5"]
    metrics = backend.metrics(job.name)
    assert metrics.names() == ["loss"] and metrics.replicas() == ["master-0", "worker-0"]
    assert metrics.of("loss", "worker-0").latest == 1.5
    backend.delete(job.name)
    assert job.name not in [info.name for info in backend.jobs()]


def providers(tmp_path: Path, cluster: FakeCluster) -> dict[str, S2IClient]:
    found: dict[str, S2IClient] = {}
    found["local"], _ = Registry().components(local_config(tmp_path))
    for provider in ("configmap", "s2i", "img"):
        extra = {} if provider == "configmap" else {"registry": "registry.example/team"}
        config = kubeflow_config(tmp_path, cluster, provider=provider, **extra)
        found[provider], _ = Registry().components(config)
    return found


def test_an_s2i_provider_plans_without_side_effects_and_ships_what_it_planned(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = StandinTools(tmp_path / "tools")
    monkeypatch.setenv("PATH", tools.path_with_tools())
    parameter: Parameter = MagicInterpreter().preprocess("%requirements=six\n" + CELL)
    for name, s2i in providers(tmp_path, cluster).items():
        assert_implements(s2i, S2IClient)
        before = sorted(p.name for p in tmp_path.rglob("*"))
        planned = s2i.plan(parameter)
        assert sorted(p.name for p in tmp_path.rglob("*")) == before, f"{name} wrote files"
        assert tools.runs() == [], f"{name} ran a tool to plan"
        shipped = s2i.source_to_image(planned, parameter, progress=lambda line: None)
        assert isinstance(shipped, Shipment)
        assert (shipped.image, shipped.command, dict(shipped.files)) == (
            planned.image,
            planned.command,
            dict(planned.files),
        ), name
        tools.log_path.unlink(missing_ok=True)
