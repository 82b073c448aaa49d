"""Which engine runs a `%tune` cell's study, chosen as the Kubeflow API is: from the config
(`tune.engine: auto | ciao | katib`) and what the cluster serves, with the reason said by
`%config` and `%dryrun`.

Ciao's own engine (Optuna's ask/tell, ciao/tune/driver.py) runs every local study, and a
cluster's where Katib is not installed (or `tune.engine: ciao`). Katib's engine
(ciao/tune/katib_engine.py: an Experiment whose trialSpec is the cell's plan) runs a
cluster's study where the API server serves experiments.kubeflow.org, under `auto` or
`katib`; `katib` on a cluster without it is an error saying what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ciao.config import Config
from ciao.errors import ConfigError

if TYPE_CHECKING:
    from ciao.registry import Registry

#: The engines this Ciao has.
AVAILABLE = ("ciao", "katib")
#: What Katib's engine needs the cluster to serve.
EXPERIMENTS = "experiments.kubeflow.org (Katib)"


@dataclass(frozen=True)
class EngineChoice:
    """The engine of a study, and why it is that one (one line for people)."""

    name: str
    why: str

    def describe(self) -> str:
        return f"{self.name} ({self.why})"


def choose_engine(
    config: Config, backend: str, katib_served: Callable[[], bool] | None = None
) -> EngineChoice:
    """The engine of a study whose trials run on `backend`; `katib_served` asks the
    cluster whether it serves Katib's Experiments (asked only when the choice needs it)."""
    configured = config.tune.engine
    if backend == "local":
        return EngineChoice("ciao", "local trials: Ciao's own engine, Optuna's ask/tell")
    if configured == "ciao":
        return EngineChoice("ciao", "tune.engine: ciao; the trials are Kubeflow jobs")
    served = katib_served() if katib_served is not None else False
    if configured == "katib":
        if not served:
            raise ConfigError(
                f"tune.engine: katib (from {config.source or 'the config'}), but the cluster "
                f"does not serve {EXPERIMENTS}: install Katib v0.19 there, or set "
                "tune.engine: ciao (or auto) to run the trials as Kubeflow jobs driven by "
                "Ciao's own engine"
            )
        return EngineChoice("katib", "tune.engine: katib; the study is a Katib Experiment")
    if served:
        return EngineChoice(
            "katib",
            f"tune.engine: auto; the cluster serves {EXPERIMENTS}: the study is an Experiment",
        )
    return EngineChoice(
        "ciao",
        f"tune.engine: auto; the cluster does not serve {EXPERIMENTS}: the trials are "
        "Kubeflow jobs driven by Ciao's own engine",
    )


def engine_for(registry: Registry, config: Config, backend: str) -> EngineChoice:
    """`choose_engine`, asking the config's cluster (discovery) whether Katib is there."""

    def served() -> bool:
        from ciao.backend.kubeflow.discovery import katib_served

        return katib_served(registry.kubeflow(config).cluster)

    return choose_engine(config, backend, served)
