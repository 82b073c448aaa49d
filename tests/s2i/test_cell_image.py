"""`%image` (or a profile's `image:`): the image the cell runs in with the configmap
provider, the base its image is built on with img; the s2i provider builds on its builder,
so it refuses `%image` before anything is built. One image for every replica."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ciao.config import parse_config
from ciao.errors import BackendError
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.pod import SETTING_BY_MAGIC, PodSettings, add_setting
from ciao.interpreter.types import Parameter
from ciao.s2i.configmap import ConfigMapCode
from ciao.s2i.s2i import DockerfileBuild, PushedImages, S2IBuild

IMAGES = {"pytorch": "pytorch/pytorch:2.5.1", "tensorflow": "tensorflow/tensorflow:2.18.0"}
MINE = "registry.example.com/team/torch:2.5-cuda12"


def with_image(image: str, where: str = "line 2", **roles: str) -> Parameter:
    """A two-role cell whose job has `image` (if any), and a role's line its own."""
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess(
        "%framework=pytorch\n%master=1\n%worker=1\nprint(1)"
    )
    setting = SETTING_BY_MAGIC["image"]
    job = add_setting(PodSettings(), setting, image, where) if image else PodSettings()
    specs = {
        role: dataclasses.replace(
            spec,
            pod=add_setting(job, setting, roles[role], "line 3") if role in roles else job,
        )
        for role, spec in parameter.roles.items()
    }
    return dataclasses.replace(parameter, pod=job, roles=specs)


def image_build(cls, tmp_path: Path):
    config = parse_config(
        {"s2i": {"provider": cls.provider, "registry": "registry.test/team"}}, None
    )
    return cls(config.s2i, config.images, PushedImages(tmp_path / "pushed"))


def test_the_configmap_provider_runs_the_code_in_the_cells_image():
    assert ConfigMapCode(IMAGES).plan(with_image(MINE)).image == MINE
    assert ConfigMapCode(IMAGES).plan(with_image("")).image == IMAGES["pytorch"], "the config's"


def test_the_img_provider_builds_on_the_cells_image(tmp_path):
    client = image_build(DockerfileBuild, tmp_path)
    mine, stock = client.plan(with_image(MINE)), client.plan(with_image(""))
    assert f"FROM {MINE}\n" in mine.build["files"]["Dockerfile"]
    assert "FROM pytorch/pytorch:" in stock.build["files"]["Dockerfile"]
    assert mine.image != stock.image, "the base is part of the image's tag"


def test_the_s2i_provider_refuses_an_image_it_cannot_build_on(tmp_path):
    client = image_build(S2IBuild, tmp_path)
    with pytest.raises(BackendError) as info:
        client.plan(with_image(MINE, "profile cuda"))
    message = str(info.value)
    assert message.startswith(f"%image={MINE} (profile cuda): s2i.provider s2i builds")
    assert "s2i.builders.pytorch" in message and "s2i.provider img" in message
    assert client.plan(with_image("")).image.startswith("registry.test/team/ciao:")


def test_one_image_for_every_replica():
    client = ConfigMapCode(IMAGES)
    with pytest.raises(BackendError) as info:
        client.plan(with_image("", worker=MINE))
    message = str(info.value)
    assert f"%image={MINE} (line 3)" in message and "the worker replicas" in message
    same = with_image(MINE, master=MINE)
    assert client.plan(same).image == MINE
