"""Test-wide set-up: the kernelspec installed into a private prefix, and a private HOME.

The kernel under test is the installed one (`python -m ciao install --prefix`), found by
jupyter_client through JUPYTER_PATH; HOME points at a temporary directory so no user
config or run directory is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_ROOT = Path(tempfile.mkdtemp(prefix="ciao-tests-"))
_HOME = _ROOT / "home"
_HOME.mkdir()
subprocess.run(
    [sys.executable, "-m", "ciao", "install", "--prefix", str(_ROOT / "prefix")],
    check=True,
    stdout=subprocess.DEVNULL,
)
os.environ["JUPYTER_PATH"] = str(_ROOT / "prefix" / "share" / "jupyter")
os.environ["HOME"] = str(_HOME)
os.environ.pop("CIAO_CONFIG", None)
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

TEST_HOME = _HOME


@pytest.fixture(scope="module")
def kernel():
    """A kernel of the installed kernelspec, with the default config, for the tests of one
    module (`km, kc`): a test that needs a kernel of its own (its memory, its lifecycle, its
    environment) starts one with kernel_client.running_kernel."""
    from kernel_client import running_kernel

    with running_kernel() as (km, kc):
        yield km, kc


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_ROOT, ignore_errors=True)
