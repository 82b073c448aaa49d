"""Which cells are the session's: those with no magic line of Ciao's."""

from __future__ import annotations

import pytest

from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.route import on_ciao_line, runs_in_session


@pytest.mark.parametrize(
    "cell",
    [
        "x = 41\nprint('x is', x)",
        "%timeit f(1)",
        "%%time\nx = sum(range(10))",
        "%matplotlib inline\nimport matplotlib.pyplot as plt",
        "%env DATA=/tmp/data",  # IPython's %env; Ciao's is written %env=DATA=/tmp/data
        "%env",
        "%env DATA",
        "!ls -l",
        "x = '''\n%worker=2\n'''",  # inside a string: not a magic line
        "df?",
        "",
    ],
)
def test_plain_python_and_ipythons_magics_are_the_sessions(cell):
    assert runs_in_session(cell)


@pytest.mark.parametrize(
    "cell",
    [
        "%framework=pytorch\n%master=1\nprint(1)",
        "%master=1\nprint(1)",
        "%worker=2;%cpu=1\nprint(1)",
        "%nodes=2",
        "%dryrun\nprint(1)",
        "%detach\nprint(1)",
        "%job\nprint(1)",
        "%requirements=pandas\nimport pandas",
        "%env=DATA=/tmp/data\nprint(1)",
        "%toleration=nvidia.com/gpu:NoSchedule\nprint(1)",
        "%profile=gpu\nprint(1)",
        "% backend = local\nprint(1)",
        "%help",
        "%config",
        "%pip install pandas",
        "%jobs --all",
        "%wrker=2\nprint(1)",  # a typo of a job magic: Ciao's error, "did you mean %worker?"
        "import os\n%timeit os.getcwd()\n%JOB\nprint(1)",  # any Ciao line makes it Ciao's
    ],
)
def test_a_cell_with_a_ciao_magic_line_is_ciaos(cell):
    assert not runs_in_session(cell)
    assert not MagicInterpreter().runs_in_session(cell)


def test_job_makes_a_plain_cell_a_one_replica_job_with_the_defaults():
    parameter = MagicInterpreter().preprocess("%job\nprint('hi')")
    assert parameter.framework == "pytorch" and parameter.replica_names() == ["master-0"]
    assert parameter.code == "\nprint('hi')"  # the magic line blanked: line numbers kept


def test_completion_is_ciaos_alone_on_a_ciao_line():
    code = "%framework=py\nx."
    assert on_ciao_line(code, len("%framework=py"))
    assert not on_ciao_line(code, len(code))
    assert not on_ciao_line("%ti", 3)
