"""`ciao.run` and friends against the local backend: a function travels with what it uses
of its module, the keywords are the magics' (same rules, same messages, naming the
keyword), a dry run is %dryrun's plan and text."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ciao
from ciao.api.cell import KeywordError
from ciao.api.code import CodeError
from ciao.kernel.cell import CellRunner

SCRIPT = """
import json
import ciao

SCALE = 3

def helper(x):
    return json.dumps({"v": x * SCALE})

def train(n):
    print("result", helper(n))

job = ciao.run(train, kwargs={"n": 2}, master=1, worker=1, backend="local")
print("STATUS", job.status())
"""


def test_a_function_runs_in_every_replica_with_what_it_uses_of_main(tmp_path: Path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert '[master-0] result {"v": 6}' in lines
    assert '[worker-0] result {"v": 6}' in lines
    assert lines[-1] == "STATUS Succeeded"


def train(epochs: int) -> None:
    print(epochs)


class _Out:
    """What CellRunner asks of a cell's output for %dryrun: its result."""

    budget: Any = None

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def result(self, count: int, bundle: dict[str, Any]) -> None:
        self.results.append(bundle)


def _same(text: str) -> str:
    """The plan without what differs between two plans of one cell: the job's name, its
    free port, its run directory."""
    text = re.sub(r"ciao-[a-z0-9]{5}", "NAME", text)
    text = re.sub(r"PORT: '\d+'", "PORT: P", text)
    return re.sub(r"cell: '\d+'", "cell: N", text)


def test_a_dry_run_is_the_plan_and_text_of_dryrun_of_the_same_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text("print('hello')\n")
    plan = ciao.run(str(script), args=["--epochs", "3"], master=1, worker=1, dry_run=True)
    assert [d["replica"] for d in plan.documents()[-1]] == ["master-0", "worker-0"]

    from ciao.api import engine

    manager = engine.manager()
    cell = "%master=1\n%worker=1\n%dryrun\n" + (
        f"import sys; sys.argv = ['train.py', '--epochs', '3']\n{script.read_text()}"
    )
    out = _Out()
    CellRunner(manager, lambda count: engine.owner()).run(cell, out, 1)  # type: ignore[arg-type]
    assert _same(str(plan)) == _same(out.results[0]["text/plain"])


def test_keywords_are_checked_by_the_magics_rules_naming_the_keyword():
    with pytest.raises(KeywordError, match=r"^worker: the replica count must be a whole"):
        ciao.run(train, master=1, worker=-1, dry_run=True)
    with pytest.raises(KeywordError, match="unknown keyword workers"):
        ciao.run(train, master=1, workers=2, dry_run=True)
    with pytest.raises(
        KeywordError, match=r"^memory: 'lots' is not a Kubernetes quantity; use [^;]*$"
    ):
        ciao.run(train, master=1, worker=1, memory="lots", dry_run=True)  # said once, not per role
    with pytest.raises(KeywordError, match="line break"):
        ciao.run(train, master=1, queue="a\n%worker=9", dry_run=True)


def test_a_lambda_or_a_closure_is_refused_before_anything_is_planned():
    with pytest.raises(CodeError, match="a lambda has no source"):
        ciao.run(lambda: None, master=1)

    def outer() -> Any:
        epochs = 3

        def inner() -> None:
            print(epochs)

        return inner

    with pytest.raises(CodeError, match="uses epochs of the function around it"):
        ciao.run(outer(), master=1)


def test_an_unpicklable_value_is_named(tmp_path: Path):
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading
            import ciao
            LOCK = threading.Lock()
            def train():
                print(LOCK)
            try:
                ciao.run(train, master=1, dry_run=True)
            except Exception as exc:
                print(type(exc).__name__, exc)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "CarryError" in done.stdout and "LOCK" in done.stdout
    assert "cannot be pickled" in done.stdout


TUNE = """
import ciao

def train(lr, base):
    print(f"loss={(lr - 0.5) ** 2 + base}")

study = ciao.tune(
    train, space={"lr": "choice(0.1,0.5)"}, objective="minimize:loss", kwargs={"base": 1},
    trials=2, parallel=2, algorithm="grid", master=1, backend="local",
)
print("BEST", study.best, study.best_value)
"""


def test_tune_runs_the_study_of_a_function_called_with_each_trials_parameters(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(TUNE)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "BEST {'lr': 0.5} 1.0"
