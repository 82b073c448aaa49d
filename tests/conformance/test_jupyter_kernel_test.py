"""The Jupyter project's conformance suite for kernels, run against the installed kernel."""

from __future__ import annotations

import unittest

import jupyter_kernel_test


class CiaoKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "ciao"
    language_name = "python"
    file_extension = ".py"

    # A cell with no magics runs as a one-replica job; its output is prefixed by replica.
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
        {"code": "%config", "mime": "text/plain"},
        {"code": "%config", "mime": "text/markdown"},
        {"code": "%config", "mime": "application/vnd.ciao.config+json"},
    ]
    code_history_pattern = "%conf*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "%worker=2"

    # A job cell shows its live view (display_data, updated in place) above its logs.
    code_display_data = [
        {"code": "%framework=pytorch\n%master=1\nprint('view')", "mime": "text/plain"},
        {"code": "%framework=pytorch\n%master=1\nprint('view')", "mime": "text/html"},
    ]
    # Ciao never clears a cell's output: the live view is updated in place instead.
    code_clear_output = ""


class CiaoIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = "ciao"
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
