"""Installs the kernelspec (kernel.json) through jupyter_client's KernelSpecManager."""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from ciao.launch import module_argv


def kernelspec(display_name: str | None = None, python: str | None = None) -> dict:
    """kernel.json with the absolute interpreter path, so the kernel runs in this env, and
    a command line no `ciao/` folder in the notebook's directory can shadow."""
    spec: dict[str, Any] = json.loads(
        resources.files("ciao").joinpath("kernelspec/kernel.json").read_text()
    )
    spec["argv"] = module_argv(python or sys.executable, "ciao", *spec["argv"][3:])
    if display_name:
        spec["display_name"] = display_name
    return spec


def install_kernelspec(
    name: str = "ciao",
    user: bool = False,
    prefix: str | None = None,
    display_name: str | None = None,
) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kernel.json").write_text(json.dumps(kernelspec(display_name), indent=2))
        return KernelSpecManager().install_kernel_spec(
            tmp, kernel_name=name, user=user, prefix=prefix, replace=True
        )
