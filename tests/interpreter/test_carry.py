"""What a job cell takes from the notebook, read from source alone (ciao.interpreter.carry):
the names it uses that earlier cells defined, how each travels (an import line, a
definition's source, a session's value), and the one line that tells the user."""

from __future__ import annotations

from ciao.interpreter.carry import (
    Carried,
    CarriedValue,
    HistoryCell,
    free_names,
    needed,
    python_source,
)


def session(count: int, code: str) -> HistoryCell:
    return HistoryCell(count, code, in_session=True)


def job(count: int, code: str) -> HistoryCell:
    return HistoryCell(count, code, in_session=False)


def sources(found) -> list[str]:
    return [chunk.source for chunk in found.sources]


# free_names: what a cell uses without defining it


def test_globals_used_inside_a_function_are_free_names():
    assert free_names("def f(a):\n    return helper(a) + scale\n") == {"helper", "scale"}


def test_a_class_body_base_and_decorator_use_free_names():
    code = "@register\nclass A(Base, metaclass=Meta):\n    size = default_size\n"
    assert free_names(code) == {"register", "Base", "Meta", "default_size"}


def test_a_comprehension_uses_free_names():
    assert free_names("out = [x * factor for x in items]\n") == {"factor", "items"}


def test_default_arguments_and_decorators_of_a_function_are_free_names():
    code = "@torch_no_grad\ndef f(lr=base_lr, *, steps=n_steps):\n    return lr\n"
    assert free_names(code) == {"torch_no_grad", "base_lr", "n_steps"}


def test_names_the_cell_binds_itself_and_builtins_are_not_free():
    code = (
        "import os\n"
        "from math import sqrt\n"
        "x = 1\n"
        "def f():\n"
        "    return g() + x\n"
        "def g():\n"
        "    return len(os.sep) + sqrt(4)\n"
        "class C:\n"
        "    pass\n"
        "print(f(), C, __name__)\n"
    )
    assert free_names(code) == set()


def test_a_name_a_function_assigns_as_global_is_the_cell_own():
    code = "def bump():\n    global counter\n    counter = 1\nbump()\nprint(counter)\n"
    assert free_names(code) == set()


def test_a_cell_that_does_not_parse_uses_nothing():
    assert free_names("def broken(:\n") == set()


# python_source: IPython syntax emptied, line numbers kept


def test_magics_and_shell_escapes_are_emptied_and_lines_kept():
    code = "%timeit x\n!ls -l\n%worker=2\nimport os\n"
    assert python_source(code) == "\n\n\nimport os\n"


def test_a_cell_magic_body_is_not_python():
    assert python_source("%%bash\necho hello\n") == ""


# needed: imports


def test_imports_travel_as_import_lines_with_their_alias():
    history = [session(1, "import numpy as np\nfrom torch import nn\nimport os.path\n")]

    found = needed("np.zeros(1)\nnn.Linear(1, 1)\nos.path.join('a')\n", history)

    assert [c.source for c in found.imports] == [
        "import numpy as np",
        "from torch import nn",
        "import os.path",
    ]
    assert [c.names for c in found.imports] == [("np",), ("nn",), ("os",)]
    assert [(c.count, c.line) for c in found.imports] == [(1, 1), (1, 2), (1, 3)]
    assert found.sources == () and found.values == {} and found.refused == {}


def test_an_import_nobody_uses_stays_behind():
    history = [session(1, "import numpy as np\nimport torch\n")]
    assert [c.names for c in needed("torch.ones(1)", history).imports] == [("torch",)]


# needed: functions and classes


def test_a_function_travels_as_its_source_with_what_it_uses_transitively():
    history = [
        session(1, "import math\n"),
        session(
            2, "def helper(x):\n    return inner(x) + 1\n\ndef inner(x):\n    return math.sqrt(x)\n"
        ),
    ]

    found = needed("print(helper(16))", history)

    assert sources(found) == [
        "def helper(x):\n    return inner(x) + 1",
        "def inner(x):\n    return math.sqrt(x)",
    ]
    assert [(c.count, c.line, c.names) for c in found.sources] == [
        (2, 1, ("helper",)),
        (2, 4, ("inner",)),
    ]
    assert [c.source for c in found.imports] == ["import math"]


def test_a_class_brings_the_import_its_base_comes_from():
    history = [
        session(1, "from torch import nn\n"),
        session(2, "class Net(nn.Module):\n    def forward(self, x):\n        return x\n"),
    ]

    found = needed("model = Net()", history)

    assert [c.names for c in found.sources] == [("Net",)]
    assert [c.source for c in found.imports] == ["from torch import nn"]


def test_a_decorated_function_travels_with_its_decorator_line():
    history = [session(1, "import functools\n\n@functools.cache\ndef f():\n    return 1\n")]

    (chunk,) = needed("f()", history).sources

    assert chunk.line == 3
    assert chunk.source == "@functools.cache\ndef f():\n    return 1"


def test_the_latest_definition_wins():
    history = [
        session(1, "def f():\n    return 'first'\n"),
        job(2, "def f():\n    return 'second'\n"),
    ]

    (chunk,) = needed("f()", history).sources

    assert chunk.count == 2 and "second" in chunk.source


def test_a_try_except_import_block_travels_as_source():
    history = [session(1, "try:\n    import ujson as json\nexcept ImportError:\n    import json\n")]

    found = needed("json.dumps({})", history)

    assert sources(found) == [
        "try:\n    import ujson as json\nexcept ImportError:\n    import json"
    ]
    assert found.sources[0].names == ("json",)
    assert found.values == {}


# needed: values


def test_a_session_cell_assignment_is_a_value_with_its_cell_number():
    history = [session(1, "lr = 0.1\n"), session(3, "batch = 32\n")]
    assert needed("print(lr, batch)", history).values == {"lr": 1, "batch": 3}


def test_a_job_cell_assignment_is_refused_naming_the_cell():
    found = needed("print(lr)", [job(4, "%worker=1\nlr = 0.1\n")])

    assert found.values == {}
    assert "lr" in found.refused and "In [4]" in found.refused["lr"]
    assert "ran as a job" in found.refused["lr"]


def test_a_job_cell_leaves_the_session_value_as_it_was():
    history = [session(1, "lr = 0.1\n"), job(2, "%master=1\nlr = 0.5\n")]
    found = needed("print(lr)", history)
    assert found.values == {"lr": 1} and found.refused == {}


def test_a_name_no_cell_defines_is_a_value_of_unknown_origin():
    found = needed("print(mystery)", [session(1, "x = 1\n")])
    assert found.values == {"mystery": None}


def test_a_function_using_a_session_value_brings_the_value():
    history = [session(1, "scale = 3\n"), session(2, "def f(x):\n    return x * scale\n")]
    found = needed("f(2)", history)
    assert [c.names for c in found.sources] == [("f",)] and found.values == {"scale": 1}


# needed: IPython syntax in the history


def test_ipython_syntax_in_history_does_not_break_parsing_and_keeps_line_numbers():
    history = [
        session(1, "%timeit 1 + 1\n!ls\nimport math\ndef f():\n    return math.pi\n"),
        session(2, "%%bash\necho not python at all (\n"),
        job(3, "%worker=2\n%requirements=torch\ndef g():\n    return f()\n"),
    ]

    found = needed("g()", history)

    assert [(c.count, c.line, c.names) for c in found.sources] == [
        (1, 4, ("f",)),
        (3, 3, ("g",)),
    ]
    assert [(c.count, c.line) for c in found.imports] == [(1, 3)]


def test_the_job_cell_own_magics_are_not_names():
    assert needed("%worker=2\n%timeit f()\n!nvidia-smi\nprint(1)\n", []).empty


# needed: star imports


def test_a_star_import_in_the_job_cell_sets_star_import():
    found = needed("from math import *\nprint(sqrt(2))\n", [])
    assert found.star_import and found.values == {"sqrt": None}


def test_a_star_import_in_an_earlier_cell_travels_and_sets_star_import():
    found = needed("print(sqrt(2))", [job(1, "from math import *\n")])
    assert found.star_import
    assert [chunk.source for chunk in found.imports] == ["from math import *"]


# Carried.summary: the cell's one line


def test_the_summary_names_imports_then_definitions_and_values_by_cell():
    history = [
        session(1, "import torch\nimport numpy as np\n"),
        session(2, "class Net(torch.nn.Module):\n    pass\n\ndef make_loader():\n    return np\n"),
        session(3, "lr = 0.01\n"),
    ]
    found = needed("model = Net()\nloader = make_loader()\nprint(lr)\n", history)
    values = tuple(
        CarriedValue(name, origin, 8, f"/nowhere/{name}.pkl", "float")
        for name, origin in found.values.items()
    )

    carried = Carried(4, found.imports, found.sources, values)

    assert carried.summary() == "torch, np (imports), Net, make_loader (In [2]), lr (In [3])"
    assert carried.label == "In [4]"


def test_a_value_only_the_session_shows_is_named_as_such():
    carried = Carried(2, values=(CarriedValue("df", None, 8, "/nowhere", "DataFrame"),))
    assert carried.summary() == "df (the session)"


def test_nothing_carried_summarises_to_nothing():
    assert Carried(1).empty and Carried(1).summary() == ""


def test_two_imports_on_one_line_both_travel():
    found = needed("print(os.sep, json.dumps(1))", [session(1, "import os; import json\n")])
    assert sorted(c.source for c in found.imports) == ["import json", "import os"]


def test_a_name_the_cell_reads_before_it_rebinds_it_comes_from_the_notebook():
    history = [session(1, "epochs = 3\nhistory = []\nmodel = 1\n")]
    found = needed("epochs = epochs * 2\nhistory += [1]\nmodel = model + 1\n", history)
    assert found.values == {"epochs": 1, "history": 1, "model": 1}
    assert found.value_lines == {"epochs": 1, "history": 2, "model": 3}


def test_what_ipython_gives_a_session_is_never_carried_nor_refused():
    code = "try:\n    get_ipython()\nexcept NameError:\n    pass\ndisplay(1)\nprint(_i2, Out)\n"
    assert free_names(code) == set()
