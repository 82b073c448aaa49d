"""`%requirements=...`: the job's Python dependencies, checked before anything is built."""

from __future__ import annotations

import pytest

from ciao.errors import MagicErrors
from ciao.interpreter.assist import complete, inspect
from ciao.interpreter.docs import help_text
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.requirements import requirement_problem, split_requirements


def parse(cell: str):
    return MagicInterpreter().preprocess(cell)


def errors(cell: str) -> list[str]:
    with pytest.raises(MagicErrors) as caught:
        parse(cell)
    return [str(e) for e in caught.value.errors]


def test_requirements_are_carried_in_the_cells_order():
    parameter = parse("%master=1\n%requirements=pandas==2.2,scikit-learn\nimport pandas\n")
    assert parameter.requirements == ["pandas==2.2", "scikit-learn"]
    assert parameter.code == "\n\nimport pandas\n", "the magic line is blanked, not removed"


def test_a_cell_without_the_magic_has_no_requirements():
    assert parse("print(1)").requirements == []


def test_several_lines_add_up_and_blanks_around_items_are_dropped():
    parameter = parse("%requirements= pandas>=2 , numpy\n%requirements=torch==2.5.1\nx = 1")
    assert parameter.requirements == ["pandas>=2", "numpy", "torch==2.5.1"]


def test_the_magic_shares_a_line_with_others():
    parameter = parse("%framework=pytorch;%requirements=einops\n%master=1\nx = 1")
    assert parameter.requirements == ["einops"]


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("pandas", ["pandas"]),
        ("numpy>=1.26,<2", ["numpy>=1.26,<2"]),
        ("numpy>=1.26, <2,scipy", ["numpy>=1.26,<2", "scipy"]),
        ("pandas[sql,excel]==2.2,numpy", ["pandas[sql,excel]==2.2", "numpy"]),
        ("torch (>=2.0,<3)", ["torch (>=2.0,<3)"]),
        ("mypkg @ https://example.com/mypkg-1.0-py3-none-any.whl", None),
    ],
)
def test_commas_separate_requirements_but_not_version_clauses_or_extras(value, items):
    assert split_requirements(value) == (items or [value])
    assert parse(f"%requirements={value}\nx = 1").requirements == (items or [value])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "pandas numpy",
            "'pandas numpy' is not one requirement: separate requirements with commas",
        ),
        ("-r requirements.txt", "'-r requirements.txt' is a pip option"),
        ("--index-url=https://x", "is a pip option"),
        ("pandas==", "'pandas==': '==' has no version after =="),
        ("pandas=2.2", "'pandas=2.2': '=2.2' is not a version clause"),
        ("torch~=2", "~= needs a version of two parts or more, like ~=2.0"),
        ("numpy>=1.26,<two", "'two' is not a valid version for <"),
        ("numpy>=1.*", "'1.*' is not a valid version for >="),
        (
            "https://example.com/x.whl",
            "is a URL: name it, as in `mypkg @ https://example.com/x.whl`",
        ),
        ("git+https://github.com/me/pkg", "is a URL"),
        ("x @ not-a-url", "after @ comes a URL"),
        ("pandas,,numpy", "an empty requirement"),
        ("_private", "'_private' is not a valid requirement"),
    ],
)
def test_each_bad_item_is_an_error_with_its_line_and_the_item(value, problem):
    (message,) = errors(f"%master=1\n%requirements={value}\nx = 1")
    assert message.startswith("line 2: %requirements: ")
    assert problem in message


def test_every_bad_item_is_reported_at_once_with_the_other_bad_magics():
    found = errors("%master=1\n%requirements=pandas numpy,ok,torch~=2\n%worker=x\nx = 1")
    assert len(found) == 3
    assert found[0].startswith("line 2: %requirements: 'pandas numpy'")
    assert found[1].startswith("line 2: %requirements: 'torch~=2'")
    assert found[2].startswith("line 3: %worker")


def test_an_empty_value_is_an_error():
    (message,) = errors("%requirements=\nx = 1")
    assert message == "line 1: %requirements: empty value: write %requirements=<requirement>,..."


def test_a_package_named_twice_is_an_error_naming_the_first_line():
    (message,) = errors("%requirements=pandas==2.2\n%requirements=Pandas>=2\nx = 1")
    assert message == (
        "line 2: %requirements: pandas is already required on line 1; name each package once"
    )
    (message,) = errors("%requirements=scikit_learn,scikit-learn\nx = 1")
    assert "scikit-learn is already required on this line" in message


VALID = [
    "pandas",
    "pandas==2.2",
    "Pandas == 2.2.0",
    "scikit-learn>=1.4,<1.6",
    "numpy>=1.26.0rc1",
    "numpy!=1.25.*",
    "torch==2.5.1+cpu",
    "torch~=2.5",
    "pkg===weird-version",
    "pkg[extra1,extra2]>=1.0.post1",
    "pkg[ extra ]",
    "pkg (>=1.0.dev3)",
    "a.b_c-d==1!2.0",
    "mypkg @ https://example.com/mypkg-1.0-py3-none-any.whl",
    "mypkg @ git+https://github.com/me/mypkg@v1",
    "mypkg @ file:///opt/wheels/mypkg.whl",
    "v==v1.0",
]
INVALID = [
    "pandas numpy",
    "pandas=2.2",
    "pandas==",
    "pandas>=1.*",
    "pandas<=1.0+local",
    "torch~=2",
    "torch~=2.5.*",
    "-e .",
    "_private",
    "pkg-",
    "pkg[",
    "pkg @",
    "pkg>=1.0 extra",
    "pkg==1.0;",
]


@pytest.mark.parametrize("text", VALID + INVALID)
def test_the_check_agrees_with_packaging(text):
    """The check is written out (packaging is not one of the kernel's dependencies);
    the tests hold it against packaging, which the test environment has."""
    requirements = pytest.importorskip("packaging.requirements")
    try:
        requirements.Requirement(text)
        packaging_valid = True
    except requirements.InvalidRequirement:
        packaging_valid = False
    assert (requirement_problem(text) is None) == packaging_valid
    assert packaging_valid == (text in VALID)


# --- documented like every magic -----------------------------------------------------------


def test_help_inspect_and_completion_know_the_magic():
    assert "%requirements=<requirement>,..." in help_text()
    doc = help_text("requirements")
    assert doc.startswith("%requirements=<requirement>,...    (job magic)")
    assert "pip" in doc and "Example" in doc
    assert inspect("%requirements=pandas", 3) == doc
    matches, start, end = complete("%req", 4)
    assert (matches, start, end) == (["%requirements="], 0, 4)
