"""`ciao.hp`, the typed reader of a trial's parameters: CIAO_HP_<NAME>, else Kubeflow
Trainer's KUBEFLOW_TRAINER_OPT_<NAME>; a default runs the cell outside a study."""

from __future__ import annotations

import pytest

from ciao import hp


@pytest.fixture(autouse=True)
def no_parameters(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith((hp.PREFIX, hp.TRAINER_PREFIX)):
            monkeypatch.delenv(key)


def test_a_trials_parameters_are_read_with_their_type(monkeypatch):
    monkeypatch.setenv("CIAO_HP_LR", "0.012345678901234568")
    monkeypatch.setenv("CIAO_HP_LAYERS", "4")
    monkeypatch.setenv("CIAO_HP_OPT", "adam")
    assert hp.float("lr") == 0.012345678901234568
    assert hp.int("layers") == 4 and isinstance(hp.int("layers"), int)
    assert hp.str("opt") == "adam"
    assert hp.values() == {"layers": "4", "lr": "0.012345678901234568", "opt": "adam"}


def test_names_are_case_insensitive_as_environment_variables_make_them(monkeypatch):
    monkeypatch.setenv("CIAO_HP_LR", "0.5")
    assert hp.float("LR") == hp.float("lr") == 0.5


def test_trainers_spelling_is_read_when_ciaos_is_not_there(monkeypatch):
    monkeypatch.setenv("KUBEFLOW_TRAINER_OPT_BATCH", "64")
    assert hp.int("batch") == 64
    monkeypatch.setenv("CIAO_HP_BATCH", "32")
    assert hp.int("batch") == 32


def test_a_default_runs_the_cell_outside_a_study():
    assert hp.float("lr", 0.01) == 0.01
    assert hp.int("layers", 2) == 2
    assert hp.str("opt", "sgd") == "sgd"


def test_outside_a_study_without_a_default_the_error_says_what_to_write():
    with pytest.raises(hp.HyperparameterError) as caught:
        hp.float("lr")
    message = str(caught.value)
    assert "CIAO_HP_LR is not set" in message and "ciao.hp.float('lr', <value>)" in message
    assert isinstance(caught.value, LookupError)


def test_a_whole_number_written_as_a_float_is_an_int_and_a_fraction_is_not(monkeypatch):
    monkeypatch.setenv("CIAO_HP_N", "64.0")
    assert hp.int("n") == 64
    monkeypatch.setenv("CIAO_HP_N", "2.5")
    with pytest.raises(hp.HyperparameterError, match="CIAO_HP_N='2.5' is not a whole number"):
        hp.int("n")
    monkeypatch.setenv("CIAO_HP_N", "many")
    with pytest.raises(hp.HyperparameterError, match="is not a number"):
        hp.float("n")


def test_the_module_needs_nothing_but_the_standard_library():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(hp.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= {"__future__", "builtins", "os", "typing"}
