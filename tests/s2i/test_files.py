"""Which of the notebook's files travel with a job (ciao.s2i.files): `%files` entries relative
to the notebook's folder, the ignore files, symlinks never followed out, and the local
modules the cell imports; then the archive the replicas unpack."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ciao.s2i.files import FilesError, ShippedFile, archive, collect, imported_modules


def write(root: Path, relative: str, text: str = "x") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    """A notebook's folder: data, configs and notes, nothing ignored yet."""
    root = tmp_path / "notebook"
    write(root, "data/small.csv", "a,b\n1,2\n")
    write(root, "data/big.bin", "0" * 100)
    write(root, "configs/a.yaml", "a: 1\n")
    write(root, "configs/sub/b.yaml", "b: 2\n")
    write(root, "notes.txt", "notes\n")
    return root


def paths(found: tuple[ShippedFile, ...]) -> list[str]:
    return [f.path for f in found]


def test_a_named_file_travels_with_its_size_relative_to_the_notebook(notebook):
    assert collect(notebook, ["data/small.csv"]) == (ShippedFile("data/small.csv", 8, "files"),)


def test_a_folder_travels_whole(notebook):
    assert paths(collect(notebook, ["configs/"])) == ["configs/a.yaml", "configs/sub/b.yaml"]


def test_a_glob_travels_what_it_matches(notebook):
    assert paths(collect(notebook, ["data/*.csv", "*.txt"])) == ["data/small.csv", "notes.txt"]


def test_entries_that_overlap_travel_each_file_once_sorted(notebook):
    found = collect(notebook, ["notes.txt", "data", "data/small.csv", "notes.txt"])
    assert paths(found) == ["data/big.bin", "data/small.csv", "notes.txt"]


def test_the_notebook_folder_is_found_relative_to_the_working_directory(notebook, monkeypatch):
    monkeypatch.chdir(notebook.parent)
    assert paths(collect("notebook", ["notes.txt"])) == ["notes.txt"]


def test_gitignore_skips_files_in_walked_folders(notebook):
    write(notebook, ".gitignore", "*.bin\nsub/\n")
    assert paths(collect(notebook, ["data", "configs"])) == ["configs/a.yaml", "data/small.csv"]


def test_a_file_named_on_its_own_travels_even_when_gitignored(notebook):
    write(notebook, ".gitignore", "*.bin\n")
    assert paths(collect(notebook, ["data/big.bin"])) == ["data/big.bin"]


def test_a_glob_is_a_walk_and_honours_gitignore(notebook):
    write(notebook, ".gitignore", "*.bin\n")
    assert paths(collect(notebook, ["data/*"])) == ["data/small.csv"]


def test_ciaoignore_always_wins(notebook):
    write(notebook, ".ciaoignore", "*.bin\nconfigs/sub/\n")
    found = collect(notebook, ["data", "configs"])
    assert paths(found) == ["configs/a.yaml", "data/small.csv"]
    with pytest.raises(FilesError, match="'data/big.bin' names no file that travels"):
        collect(notebook, ["data/big.bin"])


def test_a_folder_gitignore_ignores_as_a_whole_travels_when_named(notebook):
    """Data folders are often ignored: naming one is asking for it."""
    write(notebook, ".gitignore", "data/\n")
    assert paths(collect(notebook, ["data/"])) == ["data/big.bin", "data/small.csv"]
    assert paths(collect(notebook, ["data/*.csv"])) == ["data/small.csv"]


def test_version_control_caches_and_checkpoints_are_never_walked(notebook):
    write(notebook, ".git/config", "[core]\n")
    write(notebook, "pkg/__pycache__/m.cpython-311.pyc", "pyc")
    write(notebook, ".ipynb_checkpoints/nb-checkpoint.ipynb", "{}")
    write(notebook, "pkg/m.py", "")

    found = paths(collect(notebook, ["."]))

    assert "pkg/m.py" in found and "notes.txt" in found
    assert not [p for p in found if ".git/" in p or "__pycache__" in p or "checkpoints" in p]


def test_a_glob_never_reaches_into_version_control_caches_or_checkpoints(notebook):
    write(notebook, "nb.ipynb", "{}")
    write(notebook, ".ipynb_checkpoints/nb-checkpoint.ipynb", "{}")
    write(notebook, ".git/hooks/hook.py", "")
    write(notebook, "pkg/m.py", "")

    assert paths(collect(notebook, ["**/*.ipynb", "**/*.py"])) == ["nb.ipynb", "pkg/m.py"]


def test_an_entry_that_matches_nothing_is_an_error_naming_it(notebook):
    with pytest.raises(FilesError, match="'data/missing.csv' matches nothing"):
        collect(notebook, ["data/small.csv", "data/missing.csv"])
    with pytest.raises(FilesError, match=r"'\*\.parquet' matches nothing"):
        collect(notebook, ["*.parquet"])


def test_an_entry_outside_the_notebook_folder_is_an_error_naming_it(notebook):
    write(notebook.parent, "elsewhere.txt")
    for entry in ("../elsewhere.txt", str(notebook.parent / "elsewhere.txt"), "~/x"):
        with pytest.raises(FilesError, match="not inside|leads outside") as caught:
            collect(notebook, [entry])
        assert repr(entry) in str(caught.value)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the notebook's, with a secret in it."""
    write(tmp_path, "outside/secret.txt", "secret")
    return tmp_path / "outside"


def test_a_named_symlink_out_of_the_folder_is_an_error_naming_it(notebook, outside):
    (notebook / "leak").symlink_to(outside)
    (notebook / "leak.txt").symlink_to(outside / "secret.txt")
    for entry in ("leak", "leak.txt", "leak/secret.txt"):
        with pytest.raises(FilesError, match="leads outside") as caught:
            collect(notebook, [entry])
        assert repr(entry) in str(caught.value)


def test_a_symlink_out_of_a_walked_folder_is_never_followed(notebook, outside):
    (notebook / "data" / "leak").symlink_to(outside)
    (notebook / "data" / "leak.txt").symlink_to(outside / "secret.txt")

    assert paths(collect(notebook, ["data"])) == ["data/big.bin", "data/small.csv"]


def test_a_glob_through_a_symlink_out_of_the_folder_is_an_error(notebook, outside):
    (notebook / "leak").symlink_to(outside)
    with pytest.raises(FilesError, match="leads outside"):
        collect(notebook, ["leak/*.txt"])


# Local modules the cell imports


def test_imported_modules_are_the_top_level_names_of_absolute_imports():
    code = "import utils.io\nfrom helpers import x\nfrom . import sibling\nimport os, numpy as np\n"
    assert imported_modules([code, "def broken(:"]) == {"utils", "helpers", "os", "numpy"}


def test_an_imported_module_beside_the_notebook_travels_as_a_module(notebook):
    size = write(notebook, "utils.py", "def double(x):\n    return 2 * x\n").stat().st_size
    assert collect(notebook, [], {"utils", "numpy"}) == (ShippedFile("utils.py", size, "module"),)


def test_an_imported_package_folder_travels_whole(notebook):
    write(notebook, "mypkg/__init__.py", "from .core import run\n")
    write(notebook, "mypkg/core.py", "def run():\n    pass\n")
    write(notebook, "mypkg/__pycache__/core.cpython-311.pyc", "pyc")

    found = collect(notebook, [], {"mypkg"})

    assert paths(found) == ["mypkg/__init__.py", "mypkg/core.py"]
    assert {f.reason for f in found} == {"module"}


def test_what_a_local_module_imports_from_the_folder_travels_too(notebook):
    write(notebook, "utils.py", "import helpers\nimport numpy\n")
    write(notebook, "helpers.py", "from models.net import Net\n")
    write(notebook, "models/__init__.py", "")
    write(notebook, "models/net.py", "import layers\nclass Net: ...\n")
    write(notebook, "layers.py", "")
    write(notebook, "unused.py", "")

    found = paths(collect(notebook, [], {"utils"}))

    assert found == ["helpers.py", "layers.py", "models/__init__.py", "models/net.py", "utils.py"]


def test_a_module_also_named_in_files_travels_once(notebook):
    write(notebook, "utils.py", "")
    assert collect(notebook, ["utils.py"], {"utils"}) == (ShippedFile("utils.py", 0, "files"),)


def test_a_module_symlinked_out_of_the_folder_stays_behind(notebook, outside):
    write(outside, "utils.py", "import os\n")
    (notebook / "utils.py").symlink_to(outside / "utils.py")
    assert collect(notebook, [], {"utils"}) == ()


# The archive


def test_the_archive_holds_the_files_at_their_relative_paths_with_their_contents(notebook):
    write(notebook, "run.sh", "#!/bin/sh\n").chmod(0o755)
    found = collect(notebook, ["data/small.csv", "configs", "run.sh"])

    with tarfile.open(fileobj=io.BytesIO(archive(notebook, found)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = {name: tar.extractfile(m).read() for name, m in members.items()}

    assert sorted(members) == ["configs/a.yaml", "configs/sub/b.yaml", "data/small.csv", "run.sh"]
    for name, content in contents.items():
        assert content == (notebook / name).read_bytes()
    assert all(m.isfile() and m.uid == 0 and m.uname == "" for m in members.values())
    assert members["run.sh"].mode & 0o111 and not members["data/small.csv"].mode & 0o111


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_a_symlink_inside_the_folder_travels_as_the_file_it_leads_to(notebook, tmp_path, target):
    small = notebook / "data" / "small.csv"
    (notebook / "data" / "alias.csv").symlink_to(small if target == "absolute" else small.name)
    found = collect(notebook, ["data/alias.csv"])

    with tarfile.open(fileobj=io.BytesIO(archive(notebook, found)), mode="r:gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")

    unpacked = tmp_path / "unpacked" / "data" / "alias.csv"
    assert not os.path.islink(unpacked) and unpacked.read_text() == "a,b\n1,2\n"
