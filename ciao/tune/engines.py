"""Which engine runs a `%tune` cell's study, chosen as the Kubeflow API is: from the config
(`tune.engine: auto | ciao | katib`) and where the trials run, with the reason said by
`%config` and `%dryrun`.

Ciao's own engine (Optuna's ask/tell, ciao/tune/driver.py) runs every local study, and a
cluster's when Katib is not there. Katib's engine (an Experiment whose trialSpec is the
cell's plan) is another implementation of the same choice; until it is part of Ciao, a
cluster's studies run on Ciao's engine too, and `tune.engine: katib` says it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ciao.config import Config
from ciao.errors import ConfigError

#: The engines this Ciao has.
AVAILABLE = ("ciao",)


@dataclass(frozen=True)
class EngineChoice:
    """The engine of a study, and why it is that one (one line for people)."""

    name: str
    why: str

    def describe(self) -> str:
        return f"{self.name} ({self.why})"


def choose_engine(config: Config, backend: str) -> EngineChoice:
    """The engine of a study whose trials run on `backend`."""
    configured = config.tune.engine
    if backend == "local":
        return EngineChoice("ciao", "local trials: Ciao's own engine, Optuna's ask/tell")
    if configured == "katib" and "katib" not in AVAILABLE:
        raise ConfigError(
            f"tune.engine: katib (from {config.source or 'the config'}): this version of "
            "Ciao has no Katib engine yet; set tune.engine: ciao (or auto) to run the "
            "trials as Kubeflow jobs driven by Ciao's own engine"
        )
    if configured == "ciao":
        return EngineChoice("ciao", "tune.engine: ciao; the trials are Kubeflow jobs")
    return EngineChoice(
        "ciao", "tune.engine: auto; no Katib engine in this Ciao: the trials are Kubeflow jobs"
    )
