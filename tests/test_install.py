"""`make install` (and so `make demo`) makes Ciao visible to a Jupyter installed elsewhere:
a user kernelspec that runs this environment's Python, found by any Jupyter through the
user's data directory, not through this venv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_blocks() -> list[str]:
    """The README's code blocks, in order."""
    return (ROOT / "README.md").read_text().split("```\n")[1::2]


def readme_first_example() -> tuple[str, list[str]]:
    """The README's first code block (a cell) and the second (what it prints)."""
    blocks = readme_blocks()
    return blocks[0], blocks[1].splitlines()


def readme_session_example() -> tuple[str, str, list[str]]:
    """The README's second example: a session cell, a job cell, what the job prints."""
    blocks = readme_blocks()
    return blocks[2], blocks[3], blocks[4].splitlines()


def test_make_install_registers_a_user_kernelspec_any_jupyter_finds(tmp_path):
    recipe = (ROOT / "Makefile").read_text().split("\ninstall:", 1)[1].split("\n\n", 1)[0]
    assert "-m ciao install --user" in recipe  # what `make demo` runs (it needs install)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "ciao", "install", "--user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    spec_file = home / ".local" / "share" / "jupyter" / "kernels" / "ciao" / "kernel.json"
    spec = json.loads(spec_file.read_text())
    assert spec["argv"][0] == sys.executable  # this venv's Python, from anywhere
    # Another Jupyter: its own data paths say nothing of this venv, only of the user's home.
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; sys.prefix = sys.exec_prefix = '/nonexistent'\n"
            "from jupyter_client.kernelspec import KernelSpecManager\n"
            "print(json.dumps({k: v for k, v in KernelSpecManager().find_kernel_specs().items()}))",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = json.loads(listing.stdout)
    assert Path(found["ciao"]) == spec_file.parent, listing.stderr
    # and the README's first example runs on that kernel, from another directory, as shown
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    manager = KernelSpecManager()
    manager.kernel_dirs = [str(spec_file.parent.parent)]
    km = KernelManager(kernel_name="ciao", kernel_spec_manager=manager)
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        cell, expected = readme_first_example()
        printed: list[str] = []

        def collect(msg: dict) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                printed.extend(msg["content"]["text"].splitlines())

        reply = kc.execute_interactive(cell, timeout=120, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert sorted(line for line in printed if re.match(r"\[[a-z]+-\d+\] ", line)) == sorted(
            expected
        )
        # and its second: a session cell, then a job cell that uses what it defined
        session_cell, job_cell, expected = readme_session_example()
        printed.clear()
        reply = kc.execute_interactive(session_cell, timeout=120, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert printed == []
        reply = kc.execute_interactive(job_cell, timeout=120, output_hook=collect)
        assert reply["content"]["status"] == "ok", reply["content"]
        carried = [line.replace("In [2]", "In [1]") for line in printed if "carried" in line]
        assert carried == [expected[0]]  # the same line, this kernel's second cell
        assert sorted(line for line in printed if re.match(r"\[[a-z]+-\d+\] ", line)) == sorted(
            expected[1:]
        )
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
