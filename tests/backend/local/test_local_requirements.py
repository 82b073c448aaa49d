"""The local backend installs nothing: `%requirements` are checked against the kernel's own
environment (its replicas run the kernel's Python) and what is missing is a warning."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from shipping import ship

from ciao.backend.local.code_file import LocalCodeFile
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.requirements import unmet_requirements

PIP = importlib.metadata.version("pip")


def warnings_for(tmp_path: Path, requirements: str) -> list[str]:
    parameter = MagicInterpreter(name_factory=lambda: "ciao-local").preprocess(
        f"%requirements={requirements}\nprint(1)"
    )
    lines: list[str] = []
    shipment = ship(LocalCodeFile(tmp_path), parameter, lines.append)
    assert Path(shipment.image).read_text() == "\nprint(1)", "the code is written all the same"
    return lines


def test_requirements_the_kernel_meets_give_no_warning(tmp_path):
    assert warnings_for(tmp_path, "pip>=1,PyYAML>=5,pyzmq") == []


def test_a_missing_package_is_a_warning_and_the_way_to_install_it(tmp_path):
    lines = warnings_for(tmp_path, "pip,ciao-surely-not-installed==1.0")
    assert lines == [
        "[ciao] warning: ciao-surely-not-installed==1.0 is not installed in the kernel's "
        "environment; the local replicas will not have it",
        "[ciao] the local backend installs nothing: install them into the kernel's "
        f"environment with `{sys.executable} -m pip install pip ciao-surely-not-installed==1.0`",
    ]


def test_another_version_is_a_warning_naming_the_one_found(tmp_path):
    lines = warnings_for(tmp_path, "pip<1")
    assert lines[0] == (
        f"[ciao] warning: pip<1 is not installed in the kernel's environment (found {PIP}); "
        f"the local replicas will run with {PIP}"
    )
    assert len(lines) == 2


def test_names_are_looked_up_normalized_as_pip_matches_them():
    seen: list[str] = []

    def version_of(name: str) -> str:
        seen.append(name)
        return "2.0"

    assert unmet_requirements(["Scikit_Learn>=1", "Pandas[sql]==2.0"], version_of) == []
    assert seen == ["scikit-learn", "pandas"]


def test_a_url_requirement_is_checked_for_presence_only():
    found = unmet_requirements(["mypkg @ https://example.com/mypkg-1.0.whl"], lambda _: "0.1")
    assert found == []


def test_pre_releases_installed_count_as_installed():
    assert unmet_requirements(["torch>=2.0"], lambda _: "2.6.0rc1") == []


def test_without_a_version_lookup_every_requirement_is_missing():
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    lines = unmet_requirements(["a", "b==1"], missing)
    assert [line.split(" is ")[0] for line in lines[:2]] == [
        "[ciao] warning: a",
        "[ciao] warning: b==1",
    ]
