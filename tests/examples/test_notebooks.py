"""The example notebooks, executed through the installed kernel with nbclient."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(notebook, kernel_name="ciao", timeout=300).execute()
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def text_of(cell, name: str = "stdout") -> str:
    return "".join(
        o.get("text", "")
        for o in cell.outputs
        if o.output_type == "stream" and o.get("name") == name
    )


def test_the_first_notebook_explores_in_the_session_and_runs_real_distributed_jobs():
    explore, shouting, partial_sums, tf_cluster, failing = run("hello-distributed.ipynb")

    (result,) = [o for o in explore.outputs if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "'ALPHA!'"  # the session's value, as any kernel shows it
    text = text_of(shouting)
    assert "carried: shout, words (In [1])" in text
    for replica, word in (("master-0", "ALPHA!"), ("worker-0", "BETA!"), ("worker-1", "GAMMA!")):
        assert f"[{replica}] {word}" in text

    text = text_of(partial_sums)
    assert "[master-0] total = 500500 (expected 500500)" in text
    for rank, replica in ((1, "worker-0"), (2, "worker-1")):
        assert f"[{replica}] rank {rank}: sent" in text

    (view,) = [o for o in partial_sums.outputs if o.output_type == "display_data"]
    headline = view.data["text/plain"].splitlines()[0]
    assert "PyTorch job on local" in headline and "Succeeded" in headline  # updated in place

    text = text_of(tf_cluster)
    assert "[chief-0] the chief heard from: worker-0, worker-1" in text
    assert "[ps-0] I am ps 0" in text

    (error,) = [o for o in failing.outputs if o.output_type == "error"]
    assert error.ename == "JobFailed"
    assert "worker-1 exited with code 1" in error.evalue
    assert "raises-exception" in failing.metadata.tags


def test_the_ddp_notebook_trains_over_gloo():
    pytest.importorskip("torch")
    (cell,) = run("pytorch-ddp.ipynb")
    assert "[master-0] all 3 replicas hold identical weights" in text_of(cell)
    for rank in range(3):  # every replica trained to the end
        assert f"rank {rank}/3 step 49" in text_of(cell)
