"""What ships with a cell's code (ciao.s2i.bundle) and what runs first in each replica
(ciao.s2i.carry_main): a cell that needs nothing ships code.py alone; one that carries the
notebook's definitions, values or files ships main.py beside it, and that bundle is run
here as a replica would run it, in a working directory of its own."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from ciao import hp as hp_module
from ciao.interpreter.carry import Carried, CarriedValue, HistoryCell, needed
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.types import Parameter
from ciao.kernel import probe
from ciao.s2i.bundle import Bundle, bundle_of

#: In [1], a session cell: imports, a helper calling another helper, a class.
CELL_1 = """import json
import os.path as osp


def helper(x):
    return inner(x) + 1


def inner(x):
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 2


class Box:
    def __init__(self, v):
        self.v = v
"""
RAISE_LINE = CELL_1.split("\n").index('        raise ValueError(f"negative: {x}")') + 1

#: In [2], a session cell: values only the session holds (loaded in this order).
CELL_2 = "lr = 0.5\nsettings = {'epochs': 3}\nscale = lambda x: x * 3\n"
SESSION: dict[str, Any] = {"lr": 0.5, "settings": {"epochs": 3}, "scale": lambda x: x * 3}
HISTORY = [HistoryCell(1, CELL_1, True), HistoryCell(2, CELL_2, True)]

#: In [3], the job cell: uses all of the above, a local module and a data file.
JOB_CELL = """%master=1
%files=data/small.csv
import os
import utils

print("helper", helper(20))
print("box", Box(json.dumps(settings)).v)
print("lr", lr, "scale", scale(2))
print("utils", utils.double(21))
print("exists", osp.exists("data/small.csv"))
print("cwd", os.getcwd())
with open("data/small.csv") as handle:
    print("csv", repr(handle.read()))
"""


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """The notebook's folder: a local module and a data file."""
    root = tmp_path / "notebook"
    (root / "data").mkdir(parents=True)
    (root / "data" / "small.csv").write_text("a,b\n1,2\n")
    (root / "utils.py").write_text("def double(x):\n    return 2 * x\n")
    return root


def carry(
    code: str, count: int, scratch: Path, history: list[HistoryCell], session: dict[str, Any]
) -> Carried:
    """What the kernel carries for `code` (as ciao.kernel.carry does): what it needs from
    `history`, and the `session`'s values pickled as the session's probe pickles them (the
    session's namespace is `__main__` there)."""
    found = needed(code, history)
    assert not found.refused
    scratch.mkdir(exist_ok=True)
    values = []
    defined = [(c.count, c.line, n) for c in found.sources for n in c.names]
    main = types.ModuleType("__main__")
    main.__dict__.update(session)
    for name, origin in sorted(found.values.items()):
        path = scratch / f"{name}.pkl"
        with mock.patch.dict(sys.modules, {"__main__": main}), path.open("wb") as sink:
            line = found.value_lines.get(name, 0)
            before = [
                n for count, at, n in defined if origin is None or (count, at) < (origin, line)
            ]
            modules = tuple(sorted(probe.dump(session[name], sink, session, before)))
        kind = type(session[name]).__name__
        size, line = path.stat().st_size, found.value_lines.get(name, 0)
        values.append(CarriedValue(name, origin, size, str(path), kind, line, modules))
    cells = {cell.count: cell.code for cell in history}
    return Carried(count, found.imports, found.sources, tuple(values), cells)


def parameter(
    cell: str,
    notebook: Path,
    tmp_path: Path,
    history: list[HistoryCell] = HISTORY,
    session: dict[str, Any] = SESSION,
) -> Parameter:
    """The job cell as the kernel plans it: In [N] after `history`, carrying from it."""
    parsed = MagicInterpreter(name_factory=lambda: "ciao-bundle").parse(cell)
    assert isinstance(parsed, Parameter)
    count = len(history) + 1
    carried = carry(parsed.code, count, tmp_path / "values", history, session)
    return dataclasses.replace(parsed, carried=carried, directory=str(notebook))


def run(bundle: Bundle, tmp_path: Path, pack_files: bool, cwd: Path) -> subprocess.CompletedProcess:
    """The bundle written where a replica finds it, and main.py run from `cwd`."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name, content in bundle.payload(pack_files=pack_files).items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (shipped / name).write_bytes(data)
    env = {**os.environ, "CIAO_WORKDIR": str(tmp_path / "work" / "replica")}
    return subprocess.run(
        [sys.executable, "-u", str(shipped / bundle.entry)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def printed(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory that is neither the notebook's nor the bundle's."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


# What ships


def test_a_cell_that_carries_nothing_ships_its_code_alone(notebook, tmp_path):
    p = parameter("%master=1\nprint(1)\n", notebook, tmp_path)
    assert p.carried is not None and p.carried.empty

    for b in (bundle_of(p), bundle_of(dataclasses.replace(p, carried=None))):
        assert b.entry == "code.py" and not b.carries
        assert b.payload(pack_files=True) == {"code.py": "\nprint(1)\n"}
        assert b.summary() == ""


def test_a_carrying_cell_ships_main_py_a_manifest_values_and_files(notebook, tmp_path):
    b = bundle_of(parameter(JOB_CELL, notebook, tmp_path))

    assert b.entry == "main.py" and b.carries
    assert sorted(b.payload(pack_files=True)) == [
        "carried.json",
        "code.py",
        "files.tar.gz",
        "main.py",
        "value-0.pkl",
        "value-1.pkl",
        "value-2.pkl",
    ]
    assert "files.tar.gz" not in b.payload(pack_files=False)
    manifest = json.loads(b.texts["carried.json"])
    assert manifest["label"] == "In [3]" and manifest["code"] == "code.py"
    # what main.py runs first, in the notebook's order: In [1]'s imports and definitions
    # at their lines, then In [2]'s values
    assert [(s["label"], s.get("line"), s.get("name")) for s in manifest["steps"]] == [
        ("In [1]", 1, None),
        ("In [1]", 2, None),
        ("In [1]", 5, None),
        ("In [1]", 9, None),
        ("In [1]", 15, None),
        ("In [2]", None, "lr"),  # at their lines in In [2]: 1, 2, 3
        ("In [2]", None, "settings"),
        ("In [2]", None, "scale"),
    ]
    assert [s["source"] for s in manifest["steps"][:2]] == ["import json", "import os.path as osp"]
    assert manifest["cells"] == {"In [1]": CELL_1}
    assert [f["path"] for f in manifest["shipped"]] == ["data/small.csv", "utils.py"]


def test_the_cell_line_says_what_travels(notebook, tmp_path):
    b = bundle_of(parameter(JOB_CELL, notebook, tmp_path))
    assert b.summary() == (
        "carried: json, osp (imports), helper, inner, Box (In [1]), lr, scale, settings "
        "(In [2]); files: utils.py (module), data/small.csv (40 bytes)"
    )


def test_a_value_pickled_by_value_requires_cloudpickle_on_the_image(notebook, tmp_path):
    by_value = bundle_of(parameter(JOB_CELL, notebook, tmp_path))  # `scale` is a lambda
    plain = bundle_of(parameter("%master=1\nprint(lr)\n", notebook, tmp_path))

    # the version that pickled them: cloudpickle's format is its version's
    version = metadata.version("cloudpickle")
    assert by_value.requirements(["numpy"]) == ["numpy", f"cloudpickle=={version}"]
    assert by_value.requirements(["CloudPickle[extra]"]) == ["CloudPickle[extra]"]
    assert plain.carries and plain.requirements(["numpy"]) == ["numpy"]


def test_cloudpickle_asked_for_with_a_version_is_not_asked_for_again(notebook, tmp_path):
    by_value = bundle_of(parameter(JOB_CELL, notebook, tmp_path))
    assert by_value.requirements(["cloudpickle>=3"]) == ["cloudpickle>=3"]


# What runs in a replica


def test_the_replica_runs_the_cell_with_its_definitions_values_and_files(
    notebook, tmp_path, elsewhere
):
    b = bundle_of(parameter(JOB_CELL, notebook, tmp_path))

    out = printed(run(b, tmp_path, pack_files=True, cwd=elsewhere))

    assert out["helper"] == "41"
    assert out["box"] == '{"epochs": 3}'
    assert out["lr"] == "0.5 scale 6"
    assert out["utils"] == "42"
    assert out["exists"] == "True"
    # unpacked once per content, under CIAO_WORKDIR
    assert Path(out["cwd"]).parent == tmp_path / "work" / "replica"
    assert Path(out["cwd"]).name.startswith("ciao-work-")
    assert out["csv"] == repr("a,b\n1,2\n")


def test_an_exception_in_carried_code_names_the_cell_and_its_line(notebook, tmp_path, elsewhere):
    cell = "%master=1\nprint('before')\nhelper(-1)\n"
    b = bundle_of(parameter(cell, notebook, tmp_path))

    result = run(b, tmp_path, pack_files=True, cwd=elsewhere)

    assert result.returncode != 0 and result.stdout == "before\n"
    assert "In [3], line 3" in result.stderr
    assert f"In [1], line {RAISE_LINE}" in result.stderr
    assert 'raise ValueError(f"negative: {x}")' in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: negative: -1")
    assert "main.py" not in result.stderr


def test_without_packed_files_the_replica_stays_in_the_folder_it_started_in(notebook, tmp_path):
    b = bundle_of(parameter(JOB_CELL, notebook, tmp_path), pack_files=False)

    out = printed(run(b, tmp_path, pack_files=False, cwd=notebook))

    assert out["cwd"] == str(notebook)
    assert out["utils"] == "42" and out["csv"] == repr("a,b\n1,2\n")
    assert not (tmp_path / "work").exists()


def test_a_function_of_the_cell_pickles_by_reference_and_main_blocks_run(
    notebook, tmp_path, elsewhere
):
    cell = (
        "%master=1\n"
        "import pickle\n"
        "def local(x):\n"
        "    return x\n"
        "if __name__ == '__main__':\n"
        "    print('local', pickle.loads(pickle.dumps(local)) is local)\n"
        "    print('carried', pickle.loads(pickle.dumps(helper)) is helper)\n"
        "    print('box', type(pickle.loads(pickle.dumps(Box(1)))) is Box)\n"
    )
    b = bundle_of(parameter(cell, notebook, tmp_path))

    out = printed(run(b, tmp_path, pack_files=True, cwd=elsewhere))

    assert out == {"local": "True", "carried": "True", "box": "True"}


def test_a_process_the_cell_spawns_has_the_carried_definitions(notebook, tmp_path, elsewhere):
    cell = (
        "%master=1\n"
        "import multiprocessing\n"
        "def work(x):\n"
        "    return helper(x)\n"
        "if __name__ == '__main__':\n"
        "    with multiprocessing.get_context('spawn').Pool(1) as pool:\n"
        "        print('pool', pool.map(work, [1, 2]))\n"
    )
    b = bundle_of(parameter(cell, notebook, tmp_path))

    assert printed(run(b, tmp_path, pack_files=True, cwd=elsewhere)) == {"pool": "[3, 5]"}


def test_the_cell_runs_once_when_it_imports_pdb(notebook, tmp_path, elsewhere):
    b = bundle_of(parameter("%master=1\nimport pdb\nprint('ran', lr)\n", notebook, tmp_path))

    result = run(b, tmp_path, pack_files=True, cwd=elsewhere)

    assert result.returncode == 0 and result.stdout == "ran 0.5\n", result.stderr


def test_a_session_value_of_a_carried_class_belongs_to_that_class(notebook, tmp_path, elsewhere):
    cell_1 = "import enum\n\nclass Mode(enum.Enum):\n    TRAIN = 1\n"
    ran = {"__name__": "__main__"}
    exec(cell_1, ran)  # as the session ran it: Mode is __main__.Mode
    history = [HistoryCell(1, cell_1, True), HistoryCell(2, "mode = Mode.TRAIN\n", True)]
    cell = "%master=1\nprint('same', mode is Mode.TRAIN)\n"
    session = {"Mode": ran["Mode"], "mode": ran["Mode"].TRAIN}
    b = bundle_of(parameter(cell, notebook, tmp_path, history, session))

    assert printed(run(b, tmp_path, pack_files=True, cwd=elsewhere)) == {"same": "True"}


def test_a_value_is_loaded_before_what_its_cell_defines_after_it(notebook, tmp_path, elsewhere):
    cell_1 = "lr = 0.1\n\ndef train(lr=lr):\n    return lr\n"
    history = [HistoryCell(1, cell_1, True)]
    b = bundle_of(
        parameter("%master=1\nprint('lr', train())\n", notebook, tmp_path, history, {"lr": 0.1})
    )

    assert printed(run(b, tmp_path, pack_files=True, cwd=elsewhere)) == {"lr": "0.1"}


def test_a_value_holding_a_class_of_a_later_cell_still_loads(notebook, tmp_path, elsewhere):
    ran = {"__name__": "__main__"}
    exec("class Net:\n    pass\n", ran)
    history = [
        HistoryCell(1, "models = []\n", True),
        HistoryCell(2, "class Net:\n    pass\n\nmodels.append(Net())\n", True),
    ]
    session = {"Net": ran["Net"], "models": [ran["Net"]()]}
    cell = "%master=1\nprint('models', len(models), type(models[0]).__name__, Net.__name__)\n"
    b = bundle_of(parameter(cell, notebook, tmp_path, history, session))

    assert printed(run(b, tmp_path, pack_files=True, cwd=elsewhere)) == {"models": "1 Net Net"}


def test_a_value_of_a_class_from_a_module_beside_the_notebook_takes_the_module(
    notebook, tmp_path, elsewhere
):
    (notebook / "tokens.py").write_text("class Tok:\n    def __init__(self):\n        self.v = 7\n")
    with mock.patch.object(sys, "path", [str(notebook), *sys.path]):
        import tokens  # as the session imported it, from the notebook's folder

        history = [HistoryCell(1, "import tokens\ntok = tokens.Tok()\n", True)]
        b = bundle_of(
            parameter(
                "%master=1\nprint('v', tok.v)\n", notebook, tmp_path, history, {"tok": tokens.Tok()}
            )
        )
    sys.modules.pop("tokens", None)

    assert "tokens.py" in [f.path for f in b.files]
    assert printed(run(b, tmp_path, pack_files=True, cwd=elsewhere)) == {"v": "7"}


def test_a_cell_that_imports_ciao_hp_takes_it_along_where_ciao_is_not_installed(
    notebook, tmp_path, elsewhere
):
    cell = (
        "%master=1\nimport ciao.hp\nfrom ciao import hp\n"
        "print('lr', ciao.hp.float('lr', 0.5))\nprint('n', hp.int('n'))\n"
        "print('from', ciao.hp.__file__)\n"
    )
    b = bundle_of(parameter(cell, notebook, tmp_path))
    assert b.entry == "main.py"
    assert json.loads(b.texts["carried.json"])["modules"] == {"ciao.hp": "ciao_hp.py"}
    assert b.texts["ciao_hp.py"] == Path(hp_module.__file__).read_text()
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name, content in b.payload(pack_files=True).items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (shipped / name).write_bytes(data)

    # -S: no site-packages, so no Ciao (as in a cluster's stock image)
    result = subprocess.run(
        [sys.executable, "-S", "-u", str(shipped / "main.py")],
        cwd=elsewhere,
        env={**os.environ, "CIAO_HP_N": "3", "CIAO_WORKDIR": str(tmp_path / "work")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    out = printed(result)
    assert out == {"lr": "0.5", "n": "3", "from": str(shipped / "ciao_hp.py")}


def test_an_installed_ciao_is_used_as_it_is(notebook, tmp_path):
    cell = "%master=1\nimport ciao.hp\nprint('from', ciao.hp.__file__)\n"
    b = bundle_of(parameter(cell, notebook, tmp_path), pack_files=False)

    out = printed(run(b, tmp_path, pack_files=False, cwd=notebook))

    assert out["from"] == hp_module.__file__
