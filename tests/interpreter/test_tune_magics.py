"""The study magics, as a specification: `%tune` and the magics that shape its study, the
commands on studies, their completion; every error names its line and magic."""

from __future__ import annotations

import pytest

from ciao.errors import MagicError, MagicErrors
from ciao.interpreter.assist import complete, is_complete, study_argument
from ciao.interpreter.docs import MAGICS, help_text
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.route import runs_in_session
from ciao.interpreter.tune import Distribution, Objective, TuneSpec
from ciao.interpreter.types import Parameter, StudyCommand

STUDY = """%tune x=uniform(-10,10)
%objective=minimize:loss
%trials=16;%parallel=4;%algorithm=tpe;%seed=1
print(1)"""


@pytest.fixture
def interp() -> MagicInterpreter:
    return MagicInterpreter(name_factory=lambda: "ciao-test")


def errors_of(interp: MagicInterpreter, code: str) -> list[MagicError]:
    with pytest.raises(MagicErrors) as caught:
        interp.parse(code)
    return caught.value.errors


def only_error(interp: MagicInterpreter, code: str, line: int, magic: str) -> str:
    errors = errors_of(interp, code)
    assert len(errors) == 1, [str(e) for e in errors]
    assert (errors[0].line, errors[0].magic) == (line, magic), str(errors[0])
    return errors[0].message


def test_a_tune_cell_is_the_cells_job_with_a_study(interp):
    parameter = interp.parse(STUDY)
    assert isinstance(parameter, Parameter)
    assert parameter.tune == TuneSpec(
        space=(("x", Distribution("uniform", -10.0, 10.0)),),
        objective=Objective("minimize", "loss", "min"),
        trials=16,
        parallel=4,
        algorithm="tpe",
        seed=1,
    )
    assert list(parameter.roles) == ["master"] and parameter.code == "\n\n\nprint(1)"


def test_tune_takes_its_parameters_after_a_blank_or_after_an_equals_sign(interp):
    line = "%tune lr=loguniform(1e-4,1e-1) batch=choice(32,64,128) layers=int(2,6)"
    blank = interp.parse(f"{line}\n%objective=minimize:val_loss")
    equals = interp.parse(f"%tune={line[6:]}\n%objective=minimize:val_loss")
    assert isinstance(blank, Parameter) and isinstance(equals, Parameter)
    assert blank.tune == equals.tune
    assert blank.tune is not None
    assert [(n, d.describe()) for n, d in blank.tune.space] == [
        ("lr", "loguniform(0.0001,0.1)"),
        ("batch", "choice(32,64,128)"),
        ("layers", "int(2,6)"),
    ]


def test_a_study_has_katibs_defaults(interp):
    parameter = interp.parse("%tune x=uniform(0,1)\n%objective=maximize:accuracy")
    assert isinstance(parameter, Parameter) and parameter.tune is not None
    spec = parameter.tune
    assert (spec.trials, spec.parallel, spec.algorithm, spec.early_stopping, spec.seed) == (
        10,
        1,
        "tpe",
        "",
        None,
    )
    assert spec.objective == Objective("maximize", "accuracy", "max")


def test_a_tune_cell_is_a_job_not_a_session_cell():
    assert not runs_in_session("%tune x=uniform(0,1)\nprint(1)")
    assert not runs_in_session("%trials=3\nprint(1)")


def test_tune_needs_an_objective(interp):
    message = only_error(interp, "%tune x=uniform(0,1)\nprint(1)", 1, "%tune")
    assert "%objective=minimize:METRIC" in message


def test_study_magics_need_tune(interp):
    errors = errors_of(interp, "%objective=minimize:loss\n%trials=4;%seed=2\nprint(1)")
    assert [(e.line, e.magic) for e in errors] == [
        (1, "%objective"),
        (2, "%trials"),
        (2, "%seed"),
    ]
    assert all("add %tune name=distribution" in e.message for e in errors)


def test_tune_without_parameters(interp):
    message = only_error(interp, "%tune\n%objective=minimize:loss", 1, "%tune")
    assert "name the parameters" in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("%tune x=normal(0,1)", ["unknown distribution 'normal'"]),
        ("%tune x=uniform(2,1)", ["low < high"]),
        ("%tune x=loguniform(0,1)", ["log scale needs low > 0"]),
        ("%tune x=int(1.5,3)", ["'1.5' is not a whole number"]),
        ("%tune x=uniform(0,1) X=choice(a,b)", ["named twice"]),
        ("%tune 9x=uniform(0,1)", ["not a parameter name"]),
        ("%tune x=choice(a,a)", ["given twice"]),
    ],
)
def test_a_bad_space_is_an_error_of_the_tune_line(interp, line, words):
    message = only_error(interp, f"{line}\n%objective=minimize:loss", 1, "%tune")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("line", "magic", "words"),
    [
        ("%objective=lower:loss", "%objective", ["minimize:METRIC"]),
        ("%objective=minimize:loss:median", "%objective", ["unknown strategy"]),
        ("%trials=0", "%trials", ["from 1 to 10,000", "'0'"]),
        ("%parallel=many", "%parallel", ["from 1 to 256"]),
        ("%seed=-1", "%seed", ["from 0 to 4,294,967,295"]),
        ("%algorithm=tp", "%algorithm", ["did you mean tpe?", "bayesianoptimization"]),
        ("%earlyStopping=medianstop", "%earlyStopping", ["did you mean median?"]),
        ("%trials", "%trials", ["missing value: write %trials=<count>"]),
    ],
)
def test_a_bad_study_magic_names_its_line(interp, line, magic, words):
    code = (
        f"%tune x=uniform(0,1)\n%objective=minimize:loss\n{line}"
        if magic != "%objective"
        else (f"%tune x=uniform(0,1)\n{line}")
    )
    errors = errors_of(interp, code)
    assert [(e.line, e.magic) for e in errors][-1:] == [(code.count("\n") + 1, magic)]
    for word in words:
        assert word in errors[-1].message, errors[-1].message


def test_a_study_magic_is_given_once(interp):
    code = "%tune x=uniform(0,1)\n%objective=minimize:loss\n%trials=3\n%trials=4"
    assert "given on lines 3 and 4" in only_error(interp, code, 4, "%trials")


def test_parallel_is_at_most_trials(interp):
    code = "%tune x=uniform(0,1)\n%objective=minimize:loss\n%trials=3;%parallel=4"
    assert "at most %trials=3 trials at once, got 4" in only_error(interp, code, 3, "%parallel")
    code = "%tune x=uniform(0,1)\n%objective=minimize:loss\n%parallel=11"
    assert "%trials=10 (the default)" in only_error(interp, code, 3, "%parallel")


def test_grid_takes_choice_and_int_parameters_only(interp):
    code = "%tune a=choice(1,2) lr=loguniform(1e-4,1e-1)\n%objective=minimize:loss\n%algorithm=grid"
    message = only_error(interp, code, 3, "%algorithm")
    assert "lr is loguniform(0.0001,0.1)" in message
    assert "every combination of choice(...) and int(a,b) parameters" in message


def test_grid_runs_its_points_by_default_and_at_most_them(interp):
    code = "%tune a=choice(x,y) n=int(1,3)\n%objective=minimize:loss\n%algorithm=grid"
    parameter = interp.parse(code)
    assert isinstance(parameter, Parameter) and parameter.tune is not None
    assert parameter.tune.trials == 6
    message = only_error(interp, code + "\n%trials=7", 4, "%trials")
    assert "the grid has 6 points" in message
    message = only_error(interp, code + "\n%parallel=7", 4, "%parallel")
    assert "%trials=6 (the grid's size)" in message


def test_a_huge_grid_asks_for_trials(interp):
    code = "%tune a=int(1,1000) b=int(1,1000)\n%objective=minimize:loss\n%algorithm=grid"
    assert "more than 10,000 points" in only_error(interp, code, 3, "%algorithm")
    parameter = interp.parse(code + "\n%trials=50")
    assert isinstance(parameter, Parameter) and parameter.tune is not None
    assert parameter.tune.trials == 50


def test_every_problem_of_a_study_is_reported_at_once(interp):
    code = "%tune x=uniform(0,1)\n%objective=minimize:loss\n%trials=x\n%algorithm=nope\n%wrker=2"
    assert [(e.line, e.magic) for e in errors_of(interp, code)] == [
        (3, "%trials"),
        (4, "%algorithm"),
        (5, "%wrker"),
    ]


def test_the_study_commands(interp):
    assert interp.parse("%study ciao-abcde") == StudyCommand("study", "ciao-abcde")
    assert interp.parse("%best ciao-abcde") == StudyCommand("best", "ciao-abcde")
    assert "missing the study's name" in only_error(interp, "%best", 1, "%best")
    assert "is not a study's name" in only_error(interp, "%study Bad_Name", 1, "%study")
    assert "unexpected 'x'" in only_error(interp, "%study ciao-abcde x", 1, "%study")
    assert "run it alone" in only_error(interp, "%best ciao-abcde\nprint(1)", 1, "%best")


def test_the_reference_documents_the_study_magics():
    kinds = {name: MAGICS[name].kind for name in ("tune", "objective", "trials", "parallel")}
    assert set(kinds.values()) == {"study"}
    assert MAGICS["tune"].usage == "%tune <name>=<distribution>(...) ..."
    assert MAGICS["algorithm"].values[:3] == ("random", "grid", "tpe")
    text = help_text()
    assert "Tuning (the cell's job run as the trials of a study):" in text
    assert "%best NAME" in text and "%study NAME" in text
    assert "ciao.hp.float('lr')" in help_text("tune")


def test_a_tune_cell_is_complete_when_its_magics_are_right():
    assert is_complete(STUDY) == ("complete", "")
    assert is_complete("%tune x=uniform(0,1)\nprint(1)")[0] == "invalid"


@pytest.mark.parametrize(
    ("cell", "matches"),
    [
        ("%tu", ["%tune "]),
        ("%tune x=un", ["x=uniform("]),
        ("%tune x=uniform(1,2) y=ch", ["y=choice("]),
        ("%tune=x=lo", ["x=loguniform(", "x=logint("]),
        ("%algorithm=multi", ["multivariate-tpe"]),
        ("%objective=", ["minimize:", "maximize:"]),
        ("%earlyStopping=", ["median"]),
        ("%tune x=uniform(1,2)\n%objective=minimize:l\n%tr", ["%trials="]),
    ],
)
def test_completion_of_study_magics(cell, matches):
    assert complete(cell, len(cell))[0] == matches


def test_a_study_magic_given_is_not_offered_again():
    cell = "%trials=3\n%"
    offered = complete(cell, len(cell))[0]
    assert "%trials=" not in offered and "%parallel=" in offered


def test_the_study_name_argument_of_study_commands_is_found():
    assert study_argument("%best ci", 8) == ("ci", 6, 8)
    assert study_argument("%study ", 7) == ("", 7, 7)
    assert study_argument("%status ci", 10) is None
