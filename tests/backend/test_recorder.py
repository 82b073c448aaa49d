"""A run record keeps its job's metrics: saved by the record's writer with the byte of
events.jsonl they cover, read back with the lines after it, never written by a reader."""

from __future__ import annotations

import json
import os

from ciao.backend.record import RunDir, encode_all
from ciao.backend.recorder import SAVE_EVERY, MetricsRecorder
from ciao.backend.types import JobDone, LogLine, LogLines, Progress, ReplicaState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(run: RunDir, fd: int, recorder: MetricsRecorder, events: list) -> None:
    os.write(fd, encode_all(events))
    recorder.wrote(events)


def test_the_writer_saves_metrics_at_most_every_second_and_at_the_end(tmp_path):
    run = RunDir(tmp_path, "ciao-abcde")
    run.start("local")
    fd = run.open_for_append()
    clock = Clock()
    recorder = MetricsRecorder(run, fd, clock)
    write(run, fd, recorder, [ReplicaState("master-0", "Running")])
    write(run, fd, recorder, [LogLines("master-0", ("epoch=1 loss=0.9", "no metric here"))])
    assert not (run.path / "metrics.json").exists(), "not before a second has passed"
    clock.now += SAVE_EVERY
    write(run, fd, recorder, [LogLine("master-0", "epoch=2 loss=0.5")])
    saved = json.loads((run.path / "metrics.json").read_text())
    assert saved["offset"] == run.size()
    assert saved["metrics"]["series"]["loss"]["master-0"]["latest"] == 0.5
    write(run, fd, recorder, [LogLine("master-0", "epoch=3 loss=0.25"), JobDone(True)])
    recorder.close()
    os.close(fd)
    saved = json.loads((run.path / "metrics.json").read_text())
    assert saved["offset"] == run.size()
    assert saved["metrics"]["series"]["loss"]["master-0"]["count"] == 3


def test_reading_takes_the_lines_after_what_was_saved_and_writes_nothing(tmp_path):
    run = RunDir(tmp_path, "ciao-abcde")
    run.start("local")
    fd = run.open_for_append()
    recorder = MetricsRecorder(run, fd, Clock())
    write(run, fd, recorder, [LogLine("master-0", "loss=0.9")])
    recorder.save()
    # the writer was killed here: these lines are in the record, not in metrics.json
    os.write(fd, encode_all([LogLine("master-0", "loss=0.4"), LogLine("worker-0", "loss=0.5")]))
    os.write(fd, encode_all([Progress("master-0", "loss=0.1 (a progress line)")]))
    os.close(fd)
    before = {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()}
    metrics = run.metrics()
    assert [v for _, v in metrics.of("loss", "master-0").history()] == [0.9, 0.4]
    assert metrics.of("loss", "worker-0").latest == 0.5
    assert {p.name: p.stat().st_mtime_ns for p in run.path.iterdir()} == before


def test_a_record_without_saved_metrics_is_read_from_its_lines(tmp_path):
    run = RunDir(tmp_path, "ciao-abcde")
    run.start("kubeflow")
    fd = run.open_for_append()
    lines = [LogLine("master-0", f"loss={1 / n}") for n in range(1, 6)]
    os.write(fd, encode_all([*lines, LogLine("master-0", "two\nlines acc=0.5")]))
    os.close(fd)
    metrics = run.metrics()
    assert metrics.of("loss", "master-0").count == 5
    assert metrics.of("acc", "master-0").latest == 0.5, "a line kept as JSON counts too"


def test_saved_metrics_that_do_not_fit_the_record_are_passed_over(tmp_path):
    run = RunDir(tmp_path, "ciao-abcde")
    run.start("local")
    fd = run.open_for_append()
    os.write(fd, encode_all([LogLine("master-0", "loss=0.3")]))
    os.close(fd)
    (run.path / "metrics.json").write_text(json.dumps({"offset": 10**9, "metrics": {}}))
    assert run.metrics().of("loss", "master-0").latest == 0.3


def test_a_resumed_writer_goes_on_from_what_the_record_holds(tmp_path):
    run = RunDir(tmp_path, "ciao-abcde")
    run.start("kubeflow")
    fd = run.open_for_append()
    first = MetricsRecorder(run, fd, Clock())
    write(run, fd, first, [LogLine("master-0", "loss=0.9")])
    first.close()
    os.write(fd, encode_all([LogLine("master-0", "loss=0.7")]))  # recorded, not saved
    second = MetricsRecorder(run, fd, Clock())  # an %attach follows it again
    write(run, fd, second, [LogLine("master-0", "loss=0.5")])
    second.close()
    os.close(fd)
    saved = json.loads((run.path / "metrics.json").read_text())
    assert saved["metrics"]["series"]["loss"]["master-0"]["points"] == [0.9, 0.7, 0.5]
