"""The Jupyter project's conformance suite for kernels, run against the installed kernel."""

from __future__ import annotations

import unittest

import jupyter_kernel_test


class CiaoKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "ciao"
    language_name = "python"
    file_extension = ".py"

    # A cell with no job magics runs in the notebook's Python session.
    code_hello_world = 'print("hello, world")'
    code_stderr = 'import sys; print("test", file=sys.stderr)'

    completion_samples = [
        {"text": "%framework=tens", "matches": {"tensorflow"}},
        {"text": "%cleanPolicy=r", "matches": {"running"}},
        {"text": "%framework=pytorch\n%mas", "matches": {"%master="}},
    ]
    complete_code_samples = [
        "%framework=tensorflow\n%worker=2\nprint(1)",
        "%framework=pytorch\n%master=1",
        "x = 1",
    ]
    incomplete_code_samples = ["%master=1\nfor i in range(3):", "print(1,", 's = """']
    invalid_code_samples = ["%framework=jax\nprint(1)", "%worker=two", "print(1))"]

    code_page_something = "%help"
    code_generate_error = "%framework=jax"
    code_execute_result = [
        {"code": "6*7", "result": "42"},
        {"code": "%config", "mime": "text/plain"},
        {"code": "%config", "mime": "text/markdown"},
        {"code": "%config", "mime": "application/vnd.ciao.config+json"},
    ]
    code_history_pattern = "%conf*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "%worker=2"

    # A job cell shows its live view (display_data, updated in place) above its logs; a
    # session cell displays what it displays.
    code_display_data = [
        {"code": "%framework=pytorch\n%master=1\nprint('view')", "mime": "text/plain"},
        {"code": "%framework=pytorch\n%master=1\nprint('view')", "mime": "text/html"},
        {
            "code": "from IPython.display import HTML, display\ndisplay(HTML('<b>x</b>'))",
            "mime": "text/html",
        },
    ]
    # Ciao never clears a job's output (its live view is updated in place); a session
    # cell may.
    code_clear_output = "from IPython.display import clear_output\nclear_output()"


class CiaoIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "ciao"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
