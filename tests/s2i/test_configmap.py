"""The `configmap` provider, alone: no cluster, nothing sent. Its Shipment is the stock image
of the framework, the command that runs the mounted code, and the files to mount; the
Kubeflow backend makes their ConfigMap."""

from __future__ import annotations

import dataclasses

import pytest
from shipping import ship

from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.configmap import INSTALL_AND_RUN, MAX_CODE_BYTES, ConfigMapCode, code_command
from ciao.s2i.types import S2IClient, Shipment

IMAGES = {"pytorch": "pytorch/pytorch:2.5.1", "tensorflow": "tensorflow/tensorflow:2.18.0"}


def parameter(cell: str):
    return MagicInterpreter(name_factory=lambda: "ciao-cm").preprocess(cell)


def test_the_code_runs_in_the_stock_image_of_the_framework_with_python_u():
    p = parameter("%framework=tensorflow\n%worker=1\nprint(1)")
    client: S2IClient = ConfigMapCode(IMAGES)

    shipment = ship(client, p)

    assert shipment == Shipment(
        image="tensorflow/tensorflow:2.18.0",
        command=("python", "-u", "/opt/ciao/code.py"),
        files={"code.py": "\n\nprint(1)"},
        script="/opt/ciao/code.py",
    )
    assert shipment.run_with(["torchrun"]) == ("torchrun", "/opt/ciao/code.py")


def test_requirements_ride_beside_the_code_and_are_installed_by_a_fixed_script():
    p = parameter("%framework=pytorch\n%master=1\n%requirements=pip,pyzmq>=1\nprint(1)")

    shipment = ship(ConfigMapCode(IMAGES), p)

    assert shipment.image == "pytorch/pytorch:2.5.1"
    assert shipment.files == {"code.py": "\n\n\nprint(1)", "requirements.txt": "pip\npyzmq>=1\n"}
    assert shipment.command == ("sh", "-c", INSTALL_AND_RUN) == code_command(True)
    assert "pyzmq" not in " ".join(shipment.command), "requirements only through the file"
    assert shipment.build == {}, "nothing is built"
    torchrun = shipment.run_with(["torchrun"])
    assert torchrun[:2] == ("sh", "-c") and torchrun[2].endswith(
        "&& exec torchrun /opt/ciao/code.py"
    )
    assert torchrun[2].startswith("python -m pip install") and "pyzmq" not in torchrun[2]


def test_the_plan_is_what_source_to_image_ships():
    p = parameter("%framework=pytorch\n%master=1\n%requirements=pip\nprint(1)")
    client = ConfigMapCode(IMAGES)
    assert client.plan(p) == ship(client, p)


def test_nothing_about_the_cell_is_changed():
    p = parameter("%framework=pytorch\n%master=1\n%requirements=pip\nprint(1)")
    before = dataclasses.replace(p)
    ship(ConfigMapCode(IMAGES), p)
    assert p == before


@pytest.mark.parametrize(
    "cell, what",
    [
        ("%master=1\nx = 1", "code is"),
        ("%master=1\n%requirements=pip\nx = 1", "code and requirements are"),
    ],
)
def test_what_a_configmap_cannot_hold_is_refused_with_another_way_to_ship_it(cell, what):
    p = parameter(cell)
    p = dataclasses.replace(p, code="x = '" + "a" * MAX_CODE_BYTES + "'")
    with pytest.raises(BackendError, match=f"the cell's {what} .* more than a ConfigMap holds"):
        ship(ConfigMapCode(IMAGES), p)


def test_cancel_has_nothing_to_stop():
    ConfigMapCode(IMAGES).cancel()
