"""The `s2i:` keys of the config: how the cell's code reaches the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciao.config import DEFAULT_BUILDERS, parse_config
from ciao.errors import ConfigError


def test_defaults_ship_code_in_a_configmap_and_build_with_docker():
    s2i = parse_config({}, None).s2i
    assert s2i.provider == "configmap"
    assert s2i.repository == "ciao"
    assert s2i.builders == DEFAULT_BUILDERS
    assert s2i.build_command == ("docker", "build")
    assert s2i.push_command == ("docker", "push")
    assert s2i.timeout == 1800


def test_every_key_is_read_and_shown_by_config():
    config = parse_config(
        {
            "s2i": {
                "provider": "S2I",
                "registry": "registry.example.com/team/",
                "username": "me",
                "repository": "ml/cells",
                "builders": {"tensorflow": "me/tf-s2i:2.18"},
                "build_command": "podman build",
                "push_command": ["podman", "push", "--tls-verify=false"],
                "timeout": 600,
            }
        },
        Path("c.yaml"),
    )
    s2i = config.s2i
    assert s2i.provider == "s2i"
    assert s2i.registry == "registry.example.com/team"
    assert s2i.builders == {"tensorflow": "me/tf-s2i:2.18", "pytorch": DEFAULT_BUILDERS["pytorch"]}
    assert s2i.build_command == ("podman", "build")
    assert s2i.push_command == ("podman", "push", "--tls-verify=false")
    assert config.as_dict()["s2i"] == {
        "provider": "s2i",
        "registry": "registry.example.com/team",
        "username": "me",
        "repository": "ml/cells",
        "builders": s2i.builders,
        "build_command": ["podman", "build"],
        "push_command": ["podman", "push", "--tls-verify=false"],
        "timeout": 600.0,
    }


def test_img_is_a_provider():
    assert parse_config({"s2i": {"provider": "img"}}, None).s2i.provider == "img"


@pytest.mark.parametrize(
    ("s2i", "message"),
    [
        ({"provider": "kaniko"}, r"s2i.provider: 'kaniko' is not one of s2i, img, configmap"),
        ({"builders": {"jax": "x"}}, r"unknown key s2i.builders.jax"),
        ({"builders": "me/builder"}, r"s2i.builders: expected a mapping"),
        ({"push_command": []}, r"s2i.push_command: expected a non-empty list of strings"),
        ({"build_command": ["docker", 3]}, r"s2i.build_command: expected a non-empty list"),
        ({"timeout": 0}, r"s2i.timeout: expected a number of seconds > 0"),
        ({"timeout": "1h"}, r"s2i.timeout: expected a number of seconds > 0"),
        ({"repository": "Team/Ciao"}, r"s2i.repository: 'Team/Ciao' is not a repository name"),
        ({"push_comand": "x"}, r"unknown key s2i.push_comand; did you mean s2i.push_command\?"),
    ],
)
def test_bad_values_name_the_file_and_the_key(s2i, message):
    with pytest.raises(ConfigError, match=r"^c.yaml: " + message):
        parse_config({"s2i": s2i}, Path("c.yaml"))
