"""Editor help on cells: is_complete, complete and inspect, as a specification."""

from __future__ import annotations

import pytest

from ciao.interpreter.assist import complete, inspect, is_complete
from ciao.interpreter.magics import MagicInterpreter

TF = MagicInterpreter(default_framework="tensorflow")


#: The pod settings, in the reference's order: offered on a line of their own (every
#: role's) and after a role on its line (that role's), but %image only on its own line.
POD_ROLE = [
    "%volume=",
    "%shm=",
    "%env=",
    "%envFrom=",
    "%nodeSelector=",
    "%toleration=",
    "%serviceAccount=",
    "%imagePullSecret=",
    "%priorityClass=",
    "%schedulerName=",
]
POD_JOB = [*POD_ROLE, "%image="]
#: The study magics, offered on a line of their own.
STUDY = [
    "%tune ",
    "%objective=",
    "%trials=",
    "%parallel=",
    "%algorithm=",
    "%earlyStopping=",
    "%seed=",
]


def complete_at_bar(cell: str, interpreter: MagicInterpreter | None = None):
    """Complete at the `|` of `cell`; returns (matches, the text they replace)."""
    cursor = cell.index("|")
    code = cell.replace("|", "", 1)
    matches, start, end = complete(code, cursor, interpreter)
    assert start <= cursor <= end
    return matches, code[start:end]


# --- is_complete ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "indent"),
    [
        ("", "complete", ""),
        ("  \n\n", "complete", ""),
        ("x = 1", "complete", ""),
        ("%framework=pytorch\n%master=1;%cpu=1\n%worker=2", "complete", ""),
        ("%help", "complete", ""),
        ("for i in range(3):", "incomplete", "    "),
        ("%master=1\nfor i in range(3):", "incomplete", "    "),
        ("for i in x:\n    if i:", "incomplete", "        "),
        ("x = [\n    1,", "incomplete", "    "),
        ("def f():\n    '''doc", "incomplete", "    "),
        ("x = 1 +", "invalid", ""),
        ("x = 1 $ 2", "invalid", ""),
        ("%wroker=2\nx = 1", "invalid", ""),
        ("%master=1;%cpu=lots\nfor i in x:", "invalid", ""),
        ("%framework=pytorch\n%ps=1", "invalid", ""),
        ("%help\nx = 1", "invalid", ""),
    ],
)
def test_is_complete(code, status, indent) -> None:
    assert is_complete(code) == (status, indent)


def test_is_complete_judges_magics_with_the_interpreters_default_framework() -> None:
    assert is_complete("%ps=1\n%worker=1") == ("invalid", "")
    assert is_complete("%ps=1\n%worker=1", TF) == ("complete", "")


# --- complete: magic names --------------------------------------------------------------------


def test_magic_names_include_the_percent_and_end_with_equals() -> None:
    assert complete_at_bar("%wor|") == (["%worker="], "%wor")
    assert complete("%wor", 4) == (["%worker="], 0, 4)


def test_magic_name_prefixes_are_case_insensitive() -> None:
    assert complete_at_bar("%CLEAN|") == (["%cleanPolicy="], "%CLEAN")


def test_roles_are_those_of_the_cells_framework() -> None:
    assert complete_at_bar("%|")[0] == [
        "%framework=",
        "%master=",
        "%worker=",
        "%nodes=",
        "%cleanPolicy=",
        "%backend=",
        "%procs=",
        "%runtime=",
        "%queue=",
        "%requirements=",
        "%files=",
        "%onInterrupt=",
        "%profile=",
        *POD_JOB,
        *STUDY,
        "%dryrun",
        "%detach",
        "%job",
        "%jobs",
        "%status",
        "%logs",
        "%metrics",
        "%attach",
        "%delete",
        "%study",
        "%best",
        "%pip",
        "%help",
        "%config",
    ]
    matches, _ = complete_at_bar("%framework=tensorflow\n%|")
    assert matches == [
        "%chief=",
        "%master=",
        "%ps=",
        "%worker=",
        "%evaluator=",
        "%cleanPolicy=",
        "%backend=",
        "%queue=",
        "%requirements=",
        "%files=",
        "%onInterrupt=",
        "%profile=",
        *POD_JOB,
        *STUDY,
        "%dryrun",
        "%detach",
        "%job",
    ]
    assert complete_at_bar("%|", TF)[0][:3] == ["%framework=", "%chief=", "%master="]


def test_magics_already_given_are_not_offered_again() -> None:
    matches, _ = complete_at_bar("%framework=pytorch\n%master=1\n%|")
    assert matches == [
        "%worker=",
        "%cleanPolicy=",
        "%backend=",
        "%procs=",
        "%runtime=",
        "%queue=",
        "%requirements=",
        "%files=",
        "%onInterrupt=",
        "%profile=",
        *POD_JOB,
        *STUDY,
        "%dryrun",
        "%detach",
        "%job",
    ]


def test_resource_magics_come_first_after_a_role_on_the_line() -> None:
    matches, replaced = complete_at_bar("%master=1\n%worker=2;%|")
    assert matches == [
        "%cpu=",
        "%memory=",
        "%gpu=",
        *POD_ROLE,
        "%framework=",
        "%cleanPolicy=",
        "%backend=",
        "%procs=",
        "%runtime=",
        "%queue=",
        "%requirements=",
        "%files=",
        "%onInterrupt=",
        "%dryrun",
        "%detach",
        "%job",
    ]
    assert replaced == "%"
    matches, _ = complete_at_bar("%master=1\n%worker=2;%cpu=1; %|")
    assert matches[:2] == ["%memory=", "%gpu="]
    assert "%cpu=" not in matches


def test_resource_magics_are_not_offered_without_a_role_on_the_line() -> None:
    matches, _ = complete_at_bar("%master=1\n%|")
    assert not {"%cpu=", "%memory=", "%gpu="} & set(matches)
    assert complete_at_bar("%master=1\n%c|")[0] == ["%cleanPolicy="]


def test_an_empty_token_after_a_semicolon_completes_at_the_cursor() -> None:
    matches, replaced = complete_at_bar("%master=1; |")
    assert "%cpu=" in matches
    assert replaced == ""


def test_completing_a_name_replaces_the_existing_equals() -> None:
    assert complete_at_bar("%wo|=2") == (["%worker="], "%wo=")
    assert complete_at_bar("%wo|rk = 2") == (["%worker="], "%work =")


def test_commands_are_offered_only_alone_in_the_cell() -> None:
    assert complete_at_bar("%he|") == (["%help"], "%he")
    assert complete_at_bar("x = 1\n%he|")[0] == []
    assert complete_at_bar("%help wo|") == (["worker"], "wo")


# --- complete: values -------------------------------------------------------------------------


def test_values_after_equals_are_lower_case_as_users_type_them() -> None:
    assert complete_at_bar("%framework=|") == (["tensorflow", "pytorch"], "")
    assert complete_at_bar("%framework=py|") == (["pytorch"], "py")
    assert complete_at_bar("%cleanPolicy = R|") == (["running"], "R")
    assert complete_at_bar("%cleanPolicy=a|ll") == (["all"], "all")


def test_counts_and_quantities_have_no_completions() -> None:
    assert complete_at_bar("%worker=|")[0] == []
    assert complete_at_bar("%master=1;%cpu=5|")[0] == []


# --- complete: code lines ---------------------------------------------------------------------


def test_code_completes_keywords_builtins_and_the_cells_names() -> None:
    assert complete_at_bar("import os\npri|") == (["print"], "pri")
    assert complete_at_bar("learning_rate = 0.1\nle|")[0] == ["learning_rate", "len"]
    assert "while" in complete_at_bar("wh|")[0]


def test_code_names_come_from_code_not_strings_or_magics() -> None:
    cell = "%master=1\nmy_model = 1\ns = 'my_string'  # my_comment\nmy|"
    assert complete_at_bar(cell)[0] == ["my_model"]


def test_after_a_dot_only_the_cells_names_are_offered() -> None:
    cell = "import torch.distributed as dist\ndist.init_process_group()\ndist.in|"
    assert complete_at_bar(cell) == (["init_process_group"], "in")


def test_the_whole_word_under_the_cursor_is_replaced() -> None:
    assert complete_at_bar("pr|int") == (["print", "property"], "print")


def test_nothing_to_complete_without_a_word() -> None:
    assert complete("x = 1\n", 6) == ([], 6, 6)
    assert complete("x = (", 5) == ([], 5, 5)


def test_percent_inside_a_string_is_code() -> None:
    cell = 'fmt = """\n%wo|'
    assert complete_at_bar(cell)[0] == []


def test_cursor_outside_the_cell_is_clamped() -> None:
    assert complete("%wor", 99) == (["%worker="], 0, 4)


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_shows_the_doc_of_the_magic_under_the_cursor() -> None:
    code = "%master=1;%cpu=500m\nx = 1"
    assert inspect(code, 2).startswith("%master=<count>")
    assert inspect(code, 12).startswith("%cpu=<quantity>")
    assert inspect(code, 19).startswith("%cpu=<quantity>")  # end of the line


def test_inspect_on_a_help_topic_shows_that_magic() -> None:
    assert inspect("%help cleanPolicy", 9).startswith("%cleanPolicy=all|running|none")
    assert inspect("%help cleanPolicy", 2).startswith("%help [magic]")


def test_inspect_elsewhere_is_none() -> None:
    assert inspect("%master=1\nx = 1", 12) is None
    assert inspect("%wroker=1", 3) is None
    assert inspect("", 0) is None


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("%attach ci", ("ci", 8, 10)),
        ("%status ", ("", 8, 8)),
        ("%metrics ciao-x", ("ciao-x", 9, 15)),
        ("%logs ciao-ab worker-0", None),  # the cursor is on the replica (see below)
        ("%help wor", None),
        ("%attach", None),
        ("print(1)", None),
    ],
)
def test_the_job_name_argument_of_job_commands_is_found(cell, expected):
    from ciao.interpreter.assist import job_argument

    assert job_argument(cell, len(cell)) == expected


def test_a_job_name_in_the_middle_is_replaced_whole():
    from ciao.interpreter.assist import job_argument

    assert job_argument("%delete ciao-abcde", 10) == ("ci", 8, 18)
