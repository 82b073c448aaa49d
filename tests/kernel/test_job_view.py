"""The live job view: rows per replica folded from events, rendered as text and HTML."""

from __future__ import annotations

import math
import re

from kernel_client import execute, of_type, running_kernel

from ciao.backend.types import (
    Diagnosis,
    Job,
    JobDone,
    LogLine,
    LogLines,
    Progress,
    ReplicaState,
)
from ciao.kernel.render import JobView


def view() -> JobView:
    job = Job("pytorch", "ciao-abcde", {"master": 1, "worker": 2}, "local", None, "local")
    return JobView(job, submitted=100.0)


def test_every_replica_has_a_row_from_the_start():
    text = view().text(now=100.0)
    assert text.splitlines()[0].startswith("ciao-abcde  PyTorch job on local  Submitted  0:00")
    for replica in ("master-0", "worker-0", "worker-1"):
        assert any(line.startswith(replica) for line in text.splitlines())


def test_events_fill_phase_reason_restarts_where_age_and_last_line():
    v = view()
    v.apply(ReplicaState("worker-1", "Running", "", "", 2, None, "node-7"), now=101.0)
    v.apply(LogLine("worker-1", "step 10 loss 0.25"), now=102.0)
    v.apply(ReplicaState("worker-0", "Pending", "Unschedulable"), now=102.0)
    text = v.text(now=171.0)
    (row,) = [line for line in text.splitlines() if line.startswith("worker-1")]
    assert row.split() == [
        "worker-1",
        "Running",
        "2",
        "node-7",
        "1:10",
        "step",
        "10",
        "loss",
        "0.25",
    ]
    assert "Unschedulable" in text
    assert "Running" in text.splitlines()[0]


def test_diagnoses_are_listed_under_the_table_once():
    v = view()
    hint = Diagnosis("worker-0", "FailedScheduling", "lower %cpu")
    v.apply(hint)
    v.apply(hint)
    assert v.text(now=100.0).count("! worker-0 FailedScheduling: lower %cpu") == 1
    assert "lower %cpu" in v.html(now=100.0)


def test_the_end_shows_the_verdict_and_stops_the_clock():
    v = view()
    v.apply(JobDone(False, "Failed", "worker-1 exited with code 1"), now=130.0)
    headline = v.text(now=999.0).splitlines()[0]
    assert "Failed" in headline and "0:30" in headline and "worker-1 exited with code 1" in headline


def test_html_is_escaped_and_long_lines_are_cut():
    v = view()
    v.apply(LogLine("master-0", "<script>alert(1)</script>" + "x" * 200))
    html = v.html(now=100.0)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "…" in v.text(now=100.0)


def test_a_job_cell_publishes_one_view_and_updates_it_in_place():
    with running_kernel() as (_, kc):
        reply, messages = execute(
            kc, "%framework=pytorch\n%master=1\n%worker=1\nimport time\nprint('hi')\ntime.sleep(1)"
        )
    assert reply["content"]["status"] == "ok"
    (shown,) = of_type(messages, "display_data")
    updates = of_type(messages, "update_display_data")
    display_id = shown["content"]["transient"]["display_id"]
    assert updates and all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    kinds = [m["msg_type"] for m in messages]
    assert kinds.index("display_data") < kinds.index("stream")  # the view sits above the logs
    final = updates[-1]["content"]["data"]
    assert set(final) == {"text/plain", "text/html"}
    assert "Succeeded" in final["text/plain"].splitlines()[0]
    assert "master-0" in final["text/plain"] and "<table" in final["text/html"]


def test_an_open_progress_line_is_the_rows_last_line_with_a_bar_until_the_line_ends():
    from ciao.backend.types import Job, LogLine, Progress
    from ciao.kernel.render import JobView

    view = JobView(Job("pytorch", "j", {"master": 1}, "local", None))
    view.apply(Progress("master-0", " 42%|████      | 42/100"))
    assert "42%|" in view.text(0) and "<progress max='100' value='42'" in view.html(0)
    view.apply(LogLine("master-0", "100%|██████████| 100/100"))
    assert "<progress" not in view.html(0) and "100/100" in view.text(0)


def test_a_long_line_is_cut_at_its_end_and_a_progress_line_keeps_its_end():
    from ciao.kernel.lastline import fit

    assert fit("x" * 100, 20) == "x" * 19 + "…"
    tqdm = "loss 0.25: 100%|██████████| 100/100 [00:05<00:00, 19.87it/s]"
    assert fit(tqdm, len(tqdm)) == tqdm
    shorter = fit(tqdm, len(tqdm) - 5)
    assert shorter == "loss 0.25: 100%|█████| 100/100 [00:05<00:00, 19.87it/s]"  # as full
    assert fit(tqdm, 48) == "loss 0.25: 100% 100/100 [00:05<00:00, 19.87it/s]"[:48]
    narrow = fit(tqdm, 30)
    assert len(narrow) == 30 and narrow.endswith("19.87it/s]") and "…" in narrow
    keras = "1/10 [==>...........................] - ETA: 3s - loss: 0.25"
    assert fit(keras, 40).endswith("ETA: 3s - loss: 0.25")
    assert fit("Epoch 3: 45% " + "x" * 80, 30, progress=True).endswith("x" * 19)


def test_html_cells_never_wrap_and_the_last_line_takes_the_rest():
    v = view()
    v.apply(ReplicaState("master-0", "Running", "", "", 0, None, "pid 6050"), now=100.0)
    v.apply(LogLine("master-0", "x" * 500), now=100.0)
    v.apply(Progress("worker-0", "epoch 1:  45%|████▌     | 45/100 [00:01<00:02, 30.0it/s]"))
    html = v.html(now=100.0)
    assert "table-layout:auto" in html  # JupyterLab's tables are fixed: the columns would be 0
    cells = re.findall(r"<t[hd] style='([^']*)'", html)
    assert len(cells) == 7 * 4
    for i, style in enumerate(cells):
        last = i % 7 == 6
        assert ("white-space:nowrap" in style) != last and ("max-width:0" in style) == last
    assert "x" * 299 + "…" in html and "x" * 300 not in html  # bounded; the browser cuts it
    (worker,) = [row for row in html.split("<tr>") if "worker-0" in row]
    shown = re.sub(r" title='[^']*'", "", worker)  # the whole line is in its tooltip
    assert "<progress max='100' value='45'" in shown and "████" not in shown
    assert ">45/100 [00:01&lt;00:02, 30.0it/s]<" in worker  # the tail, whole, kept at its end


def test_the_rows_clocks_stop_with_the_job():
    v = view()
    v.apply(ReplicaState("master-0", "Running"), now=101.0)
    v.apply(JobDone(True, "Succeeded"), now=130.0)
    (row,) = [line for line in v.text(now=999.0).splitlines() if line.startswith("master-0")]
    assert "0:29" in row.split()


def test_status_shows_no_age_where_the_backend_does_not_know_when_replicas_started():
    from ciao.backend.types import JobInfo
    from ciao.kernel.render import status_view

    info = JobInfo("ciao-abcde", "pytorch", "kubeflow", "Running", 0.0, {"master": 1}, {})
    text = status_view(info, [ReplicaState("master-0", "Running"), LogLine("master-0", "hi")])
    (row,) = [line for line in text["text/plain"].splitlines() if line.startswith("master-0")]
    assert row.split()[-2:] == ["-", "hi"]  # not 0:00, as if it had just started


# ---- metrics -------------------------------------------------------------------------


def test_metric_lines_show_each_replicas_latest_values_and_a_chart_per_metric():
    v = view()
    for epoch in range(1, 6):
        for replica, offset in (("master-0", 0.0), ("worker-0", 0.1), ("worker-1", 0.2)):
            v.apply(LogLine(replica, f"epoch={epoch} loss={1 / epoch + offset:.3f}"))
    text = v.text(now=100.0)
    header = next(line for line in text.splitlines() if line.startswith("REPLICA"))
    assert header.split()[-3:] == ["METRICS", "LAST", "LINE"]
    (master,) = [line for line in text.splitlines() if line.startswith("master-0")]
    assert "epoch=5 loss=0.2" in master, "the latest values, as the job prints them"
    (worker,) = [line for line in text.splitlines() if line.startswith("worker-1")]
    assert "epoch=5 loss=0.4" in worker
    (chart,) = [line for line in text.splitlines() if line.startswith("loss ")]
    assert "0.2" in chart and "min 0.2, max 1" in chart and "5 values of master-0" in chart
    assert "worker-0 0.3, worker-1 0.4" in chart
    assert re.search("[▁▂▃▄▅▆▇█]{5}", chart), "its history, as blocks"
    assert "+ epoch=5" in text, "a counter is listed, not charted"

    page = v.html(now=100.0)
    assert page.count("<svg") == 1, "one chart: loss (epoch is a counter)"
    assert page.count("<polyline") == 3, "a line per replica"
    assert "<th style='padding:2px 8px;text-align:left;white-space:nowrap'>metrics</th>" in page
    assert "■ master-0 0.2" in page and "■ worker-1 0.4" in page, "which line is which"


def test_a_job_without_metric_lines_has_no_metrics_column_or_chart():
    v = view()
    v.apply(LogLine("master-0", "val_loss: 0.89"))
    assert "METRICS" not in v.text(now=100.0)
    assert "<svg" not in v.html(now=100.0) and ">metrics<" not in v.html(now=100.0)


def test_a_progress_lines_rewrites_are_not_metrics_its_final_line_is():
    v = view()
    v.apply(Progress("master-0", "50% loss=0.9"))
    assert not v.metrics.series
    v.apply(LogLines("master-0", ("100% loss=0.5",)))
    assert v.metrics.of("loss", "master-0").count == 1


def test_the_metrics_view_is_bounded_whatever_the_job_prints():
    from ciao.kernel.metrics_view import CHART_REPLICAS, CHARTS, LISTED
    from ciao.kernel.sparkline import MAX_DRAWN

    job = Job("pytorch", "ciao-abcde", {"master": 1, "worker": 15}, "local", None, "local")
    v = JobView(job, submitted=100.0)
    line = "loss=0 acc=0 " + " ".join(f"metric{i}={i}.5" for i in range(200))
    for replica in v.rows:
        v.apply(LogLine(replica, line))
    for step in range(20_000):
        v.apply(LogLines("master-0", (f"loss={step} acc={-step}",)))
    page, text = v.html(now=100.0), v.text(now=100.0)
    assert page.count("<svg") == CHARTS
    assert page.count("<polyline") <= CHARTS * CHART_REPLICAS
    for points in re.findall(r"points='([^']*)'", page):
        assert len(points.split()) <= MAX_DRAWN
    assert "(+" in text and "%metrics ciao-abcde lists them" in text
    listed = next(line for line in text.splitlines() if line.startswith("+ "))
    assert listed.count("=") <= LISTED
    assert len(page) < 60_000 and len(text) < 8_000
    (row,) = [line for line in text.splitlines() if line.startswith("worker-9")]
    assert row.count("=") <= 3 + row.split("  ")[-1].count("="), "three values in a row"


def test_huge_and_tiny_numbers_stay_short_and_infinity_is_not_drawn():
    v = view()
    v.apply(LogLine("master-0", "loss=1e999 grad=123456789012345 eps=-7.53e-05"))
    v.apply(LogLine("master-0", "loss=0.5 grad=1 eps=1"))
    text = v.text(now=100.0)
    assert "1.235e+14" in text and "-7.53e-05" in text and "max inf" in text
    page = v.html(now=100.0)
    drawn = re.findall(r"(?:points|cx|cy)='([^']*)'", page)
    assert drawn and all(math.isfinite(float(n)) for d in drawn for n in re.split("[ ,]", d))


def test_a_cluster_jobs_owner_is_read_back_from_its_label_values():
    """A kernel id that is no valid label value as it is (`tmpa1b2c_`) is written cleaned
    on the job; the job is still this notebook's."""
    from ciao.backend.types import JobInfo
    from ciao.kernel.render import is_mine

    job = JobInfo(
        "ciao-abcde", "pytorch", "kubeflow", "Running", 0.0, {}, {"kernel-id": "tmpa1b2c"}
    )
    assert is_mine(job, {"kernel-id": "tmpa1b2c_"})
    assert not is_mine(job, {"kernel-id": "tmpzzzzz_"})
