"""Where packages go, as a newcomer meets it: `%pip` installs into the Python the local
replicas run (output in the cell); `!pip` is found before any job is made and says what
to write instead; a replica's ModuleNotFoundError ends with the exact way to install it."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest
from kernel_client import execute, of_type, running_kernel, stream_text

pytestmark = pytest.mark.timeout(180)

PACKAGE = "ciao_pip_probe"


def wheel(directory: Path) -> Path:
    """A real wheel of a one-module project (no build tool, no index needed)."""
    dist = f"{PACKAGE}-0.1.dist-info"
    files = {
        f"{PACKAGE}.py": "GREETING = 'installed by %pip'\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = directory / f"{PACKAGE}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


USES_IT = f"%framework=pytorch\n%master=1\nimport {PACKAGE}\nprint({PACKAGE}.GREETING)"


def test_pip_installs_where_the_local_replicas_find_it(kernel, tmp_path):
    path = wheel(tmp_path)
    kc = kernel[1]
    before, messages = execute(kc, USES_IT)
    assert before["content"]["status"] == "error"
    hint = "\n".join(before["content"]["traceback"])
    assert f"%pip install {PACKAGE}" in hint, hint  # the exact command, in the error
    assert before["content"]["evalue"].count("ModuleNotFoundError") <= 1
    try:
        reply, messages = execute(kc, f"%pip install --no-index --no-deps {path}")
        assert reply["content"]["status"] == "ok", reply["content"]
        text = stream_text(messages)
        assert "[pip] Successfully installed ciao" in text and "probe-0.1" in text
        assert "the Python local replicas run" in text
        after, messages = execute(kc, USES_IT)
        assert after["content"]["status"] == "ok", after["content"]
        assert "[master-0] installed by %pip" in stream_text(messages)
        session, messages = execute(kc, f"import {PACKAGE}\nprint({PACKAGE}.GREETING)")
        assert stream_text(messages) == "installed by %pip\n"  # the session's Python too
    finally:
        reply, _ = execute(kc, f"%pip uninstall -y {PACKAGE}")
    assert reply["content"]["status"] == "ok"


def test_a_failing_pip_is_an_error_naming_its_exit_code(kernel):
    reply, messages = execute(kernel[1], "%pip install --no-index no-such-package-for-ciao")
    content = reply["content"]
    assert content["status"] == "error"
    assert "pip exited with code 1" in content["evalue"]
    assert "[pip]" in stream_text(messages)


def test_shell_escapes_are_refused_before_any_job_with_what_to_write(kernel):
    reply, messages = execute(kernel[1], "%framework=pytorch\n!pip install pandas\nprint(1)")
    shell, _ = execute(kernel[1], "%job\n!ls")  # a job: in the session, !ls runs
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "MagicError"
    assert "line 2" in content["evalue"] and "%pip install pandas" in content["evalue"]
    assert not of_type(messages, "display_data")  # no job was made
    assert "run it in a terminal" in shell["content"]["evalue"]


def test_pip_on_a_cluster_without_a_session_says_where_packages_go(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("backend: kubeflow\nsession: {enabled: false}\n")
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (_, kc):
        reply, _ = execute(kc, "%pip install pandas")
    content = reply["content"]
    assert content["status"] == "error" and "%requirements=" in content["evalue"]


def test_pips_own_dash_e_is_passed_as_written():
    """`-e` is pip's editable option, not a build tool's secret: its value stays in argv."""
    import sys

    from ciao.s2i.tools import ToolRunner

    lines: list[str] = []
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1:])", "-e", "git+x#egg=pkg"]
    result = ToolRunner(30).run(argv, "[pip]", lines.append, hide_values=False)
    assert result.returncode == 0
    assert lines == ["[pip] ['-e', 'git+x#egg=pkg']"]
