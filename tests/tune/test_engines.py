"""Which engine runs a study: `tune.engine: auto | ciao | katib` and what the cluster
serves, with the reason `%config` and `%dryrun` say; local studies are always Ciao's."""

from __future__ import annotations

from pathlib import Path

import pytest

from ciao.config import Config, TuneConfig
from ciao.errors import ConfigError
from ciao.tune.engines import choose_engine


def config(engine: str) -> Config:
    return Config(source=Path("/home/me/.ciao/config.yaml"), tune=TuneConfig(engine=engine))


def never_asked() -> bool:
    raise AssertionError("the cluster was asked, though the choice did not need it")


@pytest.mark.parametrize("engine", ["auto", "ciao", "katib"])
def test_a_local_study_runs_on_ciaos_engine_whatever_the_config_says(engine):
    choice = choose_engine(config(engine), "local", never_asked)
    assert choice.name == "ciao"
    assert choice.describe() == "ciao (local trials: Ciao's own engine, Optuna's ask/tell)"


def test_auto_chooses_katib_where_the_cluster_serves_experiments():
    choice = choose_engine(config("auto"), "kubeflow", lambda: True)
    assert choice.name == "katib"
    assert choice.why == (
        "tune.engine: auto; the cluster serves experiments.kubeflow.org (Katib): the study is "
        "an Experiment"
    )


def test_auto_chooses_ciaos_engine_where_katib_is_not_installed():
    choice = choose_engine(config("auto"), "kubeflow", lambda: False)
    assert choice.name == "ciao"
    assert "does not serve experiments.kubeflow.org (Katib)" in choice.why


def test_ciao_is_ciaos_engine_without_asking_the_cluster():
    assert choose_engine(config("ciao"), "kubeflow", never_asked).name == "ciao"


def test_katib_on_a_cluster_without_it_says_what_to_do():
    with pytest.raises(ConfigError) as refused:
        choose_engine(config("katib"), "kubeflow", lambda: False)
    assert str(refused.value) == (
        "tune.engine: katib (from /home/me/.ciao/config.yaml), but the cluster does not serve "
        "experiments.kubeflow.org (Katib): install Katib v0.19 there, or set tune.engine: ciao "
        "(or auto) to run the trials as Kubeflow jobs driven by Ciao's own engine"
    )
    assert choose_engine(config("katib"), "kubeflow", lambda: True).name == "katib"
