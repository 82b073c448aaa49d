"""`ciao run NOTEBOOK`: execute a notebook on the installed `ciao` kernel and print it.

For the demo and for scripted runs: the same kernel a notebook server would start, driven
by nbclient. Cells tagged `raises-exception` may fail; any other failure stops the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO


def run_notebook(
    path: str | Path,
    kernel_name: str = "ciao",
    output: str | Path | None = None,
    out: TextIO = sys.stdout,
    timeout: int = 600,
) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(str(path), as_version=4)
    folder = str(Path(path).resolve().parent)  # the kernel starts there, as Jupyter starts it
    client = NotebookClient(
        notebook, kernel_name=kernel_name, timeout=timeout, resources={"metadata": {"path": folder}}
    )
    status = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        status = 1
        failure = str(exc).strip().splitlines()
        print(f"\nA cell failed: {failure[-1] if failure else exc}", file=out)
    finally:
        print_notebook(notebook, out)
        if output:
            nbformat.write(notebook, str(output))
    return status


def print_notebook(notebook: Any, out: TextIO) -> None:
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        count = cell.get("execution_count") or " "
        print(f"\n\033[1mIn [{count}]:\033[0m", file=out)
        print(_indent(cell.source), file=out)
        for output in cell.get("outputs", []):
            print(_render(output), end="", file=out)


def _render(output: Any) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        return f"\033[31m{text}\033[0m" if output.get("name") == "stderr" else text
    if kind in ("execute_result", "display_data"):
        return str(output.get("data", {}).get("text/plain", "")) + "\n"
    if kind == "error":
        return "\033[31m" + "\n".join(output.get("traceback", [])) + "\033[0m\n"
    return ""


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
