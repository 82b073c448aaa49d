"""Fuzzing the magic grammar: any cell is a job, a command, or MagicErrors naming lines of
the cell; never another exception (a crash would be an internal error in the cell)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ciao.errors import MagicErrors
from ciao.interpreter.docs import MAGICS
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter

names = st.sampled_from([*MAGICS, "Worker", "cpus", "", "%", "=", "frame work"])
values = st.one_of(
    st.sampled_from(["1", "0", "2", "-1", "1e308", "500m", "1Gi", "pytorch", "tensorflow", ""]),
    st.text(max_size=12),
)
token = st.builds(
    lambda name, value, eq: f"%{name}{'=' if eq else ' '}{value}", names, values, st.booleans()
)
magic_line = st.lists(token, min_size=1, max_size=4).map(";".join)
code_line = st.sampled_from(["print(1)", "", "x = 1  # %worker=2", "  %cpu=1", "\r"])
cell = st.lists(magic_line | code_line | st.text(max_size=30), max_size=8).map("\n".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell)
def test_any_cell_is_a_job_a_command_or_errors_that_name_its_lines(text):
    interp = MagicInterpreter(name_factory=lambda: "ciao-fuzzy")
    try:
        result = interp.parse(text)
    except MagicErrors as errors:
        lines = max(1, len(text.split("\n")))
        for error in errors.errors:
            assert 1 <= error.line <= lines, (error, text)
            assert error.magic and error.message
        return
    if isinstance(result, Parameter):
        assert result.total_replicas >= 1
        assert result.code.count("\n") == text.count("\n")  # line numbers kept
