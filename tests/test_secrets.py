"""Build arguments: their values never in an argv, never shown."""

from __future__ import annotations

import pytest

from ciao.config import parse_config
from ciao.errors import ConfigError
from ciao.secrets import redact, values_to_environment


def test_build_arg_values_are_shown_as_stars_in_every_spelling():
    argv = ["docker", "build", "--build-arg", "A=1", "--build-arg=B=2", "-e", "C=3", "-t", "x"]
    assert redact(argv) == [
        "docker",
        "build",
        "--build-arg",
        "A=***",
        "--build-arg=B=***",
        "-e",
        "C=***",
        "-t",
        "x",
    ]


def test_build_arg_values_move_to_the_tools_environment():
    argv, env = values_to_environment(
        ["docker", "build", "--build-arg", "A=1", "--build-arg=B=x=y"]
    )
    assert argv == ["docker", "build", "--build-arg", "A", "--build-arg=B"]
    assert env == {"A": "1", "B": "x=y"}


def test_an_attached_short_env_option_is_masked_and_moved_too():
    argv, env = values_to_environment(["podman", "build", "-eAPI_KEY=abc", "-t", "x"])
    assert argv == ["podman", "build", "-eAPI_KEY", "-t", "x"] and env == {"API_KEY": "abc"}
    assert redact(["podman", "build", "-eAPI_KEY=abc"]) == ["podman", "build", "-eAPI_KEY=***"]


def test_env_values_move_to_the_tools_environment_like_build_args():
    argv, env = values_to_environment(
        ["podman", "build", "-e", "TOKEN=s3cr3t", "--env=KEY=k=v", "--env", "PLAIN", "-t", "x"]
    )
    assert argv == ["podman", "build", "-e", "TOKEN", "--env=KEY", "--env", "PLAIN", "-t", "x"]
    assert env == {"TOKEN": "s3cr3t", "KEY": "k=v"}
    assert not any("s3cr3t" in arg for arg in argv)


def test_a_build_arg_named_like_a_token_and_a_buildkit_secret_are_accepted():
    config = parse_config(
        {
            "s2i": {
                "provider": "img",
                "registry": "r.example",
                "build_command": [
                    "docker",
                    "build",
                    "--build-arg",
                    "GITHUB_TOKEN=abc",
                    "--env",
                    "DB_PASSWORD=abc",
                    "-eAPI_SECRET=abc",
                    "--secret",
                    "id=npm,src=/run/npmrc",
                ],
            }
        },
        None,
    )
    shown = config.as_dict()["s2i"]["build_command"]
    assert {"GITHUB_TOKEN=***", "DB_PASSWORD=***", "-eAPI_SECRET=***"} <= set(shown)
    assert "abc" not in str(config.as_dict())


@pytest.mark.parametrize("option", ["--password=hunter2", "--registry-token", "--creds=a:b"])
def test_credential_options_are_still_refused(option):
    with pytest.raises(ConfigError, match="looks like a credential option"):
        parse_config({"s2i": {"build_command": ["docker", "build", option]}}, None)
