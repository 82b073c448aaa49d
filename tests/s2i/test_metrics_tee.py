"""A Katib trial's replica feeds Katib's File collector: main.py appends every line in
Katib's metric format, timestamped as the collector reads it, to the metrics file, where
that file's folder exists (Katib mounts it in the primary container only); the
replica's own output is unchanged, so its log is still the cell's."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.bundle import MAIN_FILE, bundle_of

CODE = """import sys
print("starting")
for epoch in range(3):
    print(f"epoch={epoch} loss={0.5 / (epoch + 1)}")
print("val_loss: 0.89 is not Katib's format")
sys.stderr.write("accuracy=0.91\\n")
print("lr=", flush=True)
print("no newline at the end loss=0.01", end="")
"""
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def run_replica(tmp_path: Path, metrics_file: Path) -> subprocess.CompletedProcess[str]:
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess(CODE)
    parameter = dataclasses.replace(parameter, metrics_file=str(metrics_file))
    bundle = bundle_of(parameter)
    assert bundle.entry == MAIN_FILE  # the bootstrap runs even with nothing carried
    code = tmp_path / "code"
    code.mkdir()
    for name, text in bundle.texts.items():
        (code / name).write_text(text)
    return subprocess.run(
        [sys.executable, "-u", str(code / MAIN_FILE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_metric_lines_are_appended_to_the_collectors_file_and_the_output_is_unchanged(tmp_path):
    folder = tmp_path / "katib"
    folder.mkdir()
    done = run_replica(tmp_path, folder / "metrics.log")

    assert done.stdout == (
        "starting\nepoch=0 loss=0.5\nepoch=1 loss=0.25\nepoch=2 loss=0.16666666666666666\n"
        "val_loss: 0.89 is not Katib's format\nlr=\nno newline at the end loss=0.01"
    )
    assert done.stderr == "accuracy=0.91\n"
    lines = (folder / "metrics.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "epoch=0 loss=0.5",
        "epoch=1 loss=0.25",
        "epoch=2 loss=0.16666666666666666",
        "accuracy=0.91",
    ]
    assert all(re.fullmatch(STAMP, line.split(" ", 1)[0]) for line in lines)


def test_the_file_is_there_from_the_start_even_if_no_metric_ever_comes(tmp_path):
    """Katib's collector fails the pod when the file is missing; with it (empty), the
    trial is MetricsUnavailable, which says what is wrong."""
    folder = tmp_path / "katib"
    folder.mkdir()
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess("print('hi')")
    parameter = dataclasses.replace(parameter, metrics_file=str(folder / "metrics.log"))
    code = tmp_path / "code"
    code.mkdir()
    for name, text in bundle_of(parameter).texts.items():
        (code / name).write_text(text)
    subprocess.run([sys.executable, str(code / MAIN_FILE)], cwd=tmp_path, check=True, timeout=60)
    assert (folder / "metrics.log").read_text() == ""


def test_a_replica_whose_pod_has_no_collector_folder_writes_no_file(tmp_path):
    done = run_replica(tmp_path, tmp_path / "katib" / "metrics.log")
    assert "epoch=2 loss=0.16666666666666666" in done.stdout
    assert not (tmp_path / "katib").exists()
