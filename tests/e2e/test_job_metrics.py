"""Metrics you can see, for every job, on the local backend: a job printing `loss=...` per
epoch shows the metric and its chart in the live view, and `%metrics NAME` lists it from
the run record, as columns in the session's `_` when the session is on."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from kernel_client import execute, kernel_on, of_type, running_kernel, stream_text

pytestmark = pytest.mark.timeout(120)

TRAINING = """%framework=pytorch
%master=1
%worker=1
import os
rank = int(os.environ["RANK"])
for epoch in range(1, 6):
    print(f"epoch={epoch} loss={1 / epoch + rank / 10:.3f}", flush=True)
"""


def job_name(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)


def run_training(kc) -> tuple[str, dict]:
    """Run the cell; the job's name and the live view's last update."""
    reply, messages = execute(kc, TRAINING)
    assert reply["content"]["status"] == "ok", reply["content"]
    views = of_type(messages, "display_data") + of_type(messages, "update_display_data")
    last = views[-1]["content"]["data"]
    return job_name(last["text/plain"]), last


def kernel(tmp_path: Path, session: bool):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"local: {{run_dir: {tmp_path / 'runs'}}}\nsession: {{enabled: {str(session).lower()}}}\n"
    )
    return running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config)))


def test_the_live_view_shows_the_metric_and_its_chart_and_metrics_lists_it(tmp_path):
    with kernel(tmp_path, session=False) as (_, kc):
        name, view = run_training(kc)
        text = view["text/plain"]
        (master,) = [line for line in text.splitlines() if line.startswith("master-0")]
        assert "epoch=5 loss=0.2" in master
        (chart,) = [line for line in text.splitlines() if line.startswith("loss")]
        assert "0.2  (min 0.2, max 1; 5 values of master-0)  worker-0 0.3" in chart
        assert "<svg" in view["text/html"] and view["text/html"].count("<polyline") == 2

        reply, messages = execute(kc, f"%metrics {name}")
        assert reply["content"]["status"] == "ok", reply["content"]
        (result,) = of_type(messages, "execute_result")
        table = result["content"]["data"]["text/plain"]
        summary = [line.split() for line in table.splitlines() if line.startswith("master-0")]
        assert ["master-0", "loss", "5", "0.2", "1", "0.2"] in summary
        assert ["5", "worker-0", "loss", "0.3"] in [line.split() for line in table.splitlines()]
        assert "<table" in result["content"]["data"]["text/html"]

        reply, messages = execute(kc, f"%metrics {name} accuracy")
        assert reply["content"]["status"] == "error"
        assert (
            f"job {name} has no metric 'accuracy' (its metrics: epoch, loss)"
            in (reply["content"]["evalue"])
        )
        reply, messages = execute(kc, "%metrics ciao-nosuch")
        assert reply["content"]["status"] == "error"
        assert "no local job 'ciao-nosuch'" in reply["content"]["evalue"]

        reply, messages = execute(kc, "%job\nprint('no metrics here')")
        quiet = job_name(stream_text(messages) + str(of_type(messages, "display_data")))
        reply, messages = execute(kc, f"%metrics {quiet}")
        assert reply["content"]["status"] == "ok"
        assert f"job {quiet} has no metrics: none of its lines" in stream_text(messages)


def test_with_the_session_on_metrics_leaves_the_history_as_columns_in_underscore(tmp_path):
    with kernel(tmp_path, session=True) as (_, kc):
        name, _ = run_training(kc)
        reply, messages = execute(kc, f"%metrics {name} loss")
        assert reply["content"]["status"] == "ok", reply["content"]
        (result,) = of_type(messages, "execute_result")
        count = result["content"]["execution_count"]
        assert "pd.DataFrame(_)" in result["content"]["data"]["text/plain"]
        assert "master-0" in result["content"]["data"]["text/plain"]
        reply, messages = execute(
            kc, f"columns = Out[{count}]\nprint(sorted(columns), len(_['step']), _['value'][:2])"
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        assert stream_text(messages) == "['name', 'replica', 'step', 'value'] 10 [1.0, 1.1]\n"
        if importlib.util.find_spec("pandas") is None:
            return  # the session runs the kernel's Python: pandas is there or not for both
        cell = "import pandas as pd\nframe = pd.DataFrame(columns)\nprint(frame.iloc[-1].to_dict())"
        reply, messages = execute(kc, cell)
        assert stream_text(messages) == (
            "{'replica': 'worker-0', 'step': 5, 'name': 'loss', 'value': 0.3}\n"
        ), reply["content"]


def test_a_kubeflow_jobs_metrics_outlive_its_pods(tmp_path):
    with kernel_on("v1", tmp_path) as (kc, cluster):
        name, view = run_training(kc)
        assert "epoch=5 loss=0.2" in view["text/plain"] and "<svg" in view["text/html"]
        cluster.delete("pytorchjobs", "team", name, propagation="Foreground")
        cluster.wait_for(lambda: cluster.list("pods", "team") == [], timeout=30)
        reply, messages = execute(kc, f"%metrics {name}")
        assert reply["content"]["status"] == "ok", reply["content"]
        (result,) = of_type(messages, "execute_result")
        lines = [line.split() for line in result["content"]["data"]["text/plain"].splitlines()]
        assert ["worker-0", "loss", "5", "0.3", "1.1", "0.3"] in lines
