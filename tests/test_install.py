"""`make install` (and so `make demo`) makes Ciao visible to a Jupyter installed elsewhere:
a user kernelspec that runs this environment's Python, found by any Jupyter through the
user's data directory, not through this venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIRST_EXAMPLE = """%framework=pytorch
%master=1
%worker=2
import os
print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"])
"""


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
    # and the README's first example runs on that kernel, from the notebook's directory
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
        reply = kc.execute_interactive(FIRST_EXAMPLE, timeout=120, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
