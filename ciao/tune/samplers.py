"""Katib's names as Optuna's objects: distributions, samplers, the pruner.

The algorithm names are Katib's, so one cell means the same study on a cluster's Katib and
here; the samplers are Optuna's, the well-kept implementations (nothing is written here).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from ciao.interpreter.tune import Distribution, TuneSpec

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

#: What each algorithm's sampler imports besides Optuna (its optional dependencies).
NEEDS: dict[str, tuple[str, ...]] = {
    "cmaes": ("cmaes",),
    "sobol": ("scipy",),
    "bayesianoptimization": ("torch", "scipy"),
}
#: Katib's medianstop defaults (min_trials_required, start_step), as MedianPruner's
#: n_startup_trials and n_warmup_steps (the 4th value is step 3): the same rule here and
#: on Katib.
MEDIAN_MIN_TRIALS = 3
MEDIAN_START_STEP = 4


def missing_packages(algorithm: str) -> list[str]:
    """The packages `algorithm`'s sampler needs that this Python lacks (not imported)."""
    return [name for name in NEEDS.get(algorithm, ()) if importlib.util.find_spec(name) is None]


def distribution(dist: Distribution) -> BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if dist.kind == "choice":
        return CategoricalDistribution(dist.choices)
    if dist.is_int:
        return IntDistribution(int(dist.low), int(dist.high), log=dist.kind == "logint")
    return FloatDistribution(dist.low, dist.high, log=dist.kind == "loguniform")


def distributions(spec: TuneSpec) -> dict[str, BaseDistribution]:
    """The study's search space, as `Study.ask(fixed_distributions=...)` takes it."""
    return {name: distribution(dist) for name, dist in spec.space}


def sampler_for(spec: TuneSpec) -> BaseSampler:
    """The sampler of `%algorithm`, seeded with `%seed`; with parallel trials TPE lies
    about the running ones (constant_liar), so a batch spreads out instead of piling up."""
    from optuna import samplers

    seed, algorithm = spec.seed, spec.algorithm
    if algorithm == "random":
        return samplers.RandomSampler(seed=seed)
    if algorithm == "grid":
        space = {name: list(dist.grid_values()) for name, dist in spec.space}
        return samplers.GridSampler(space, seed=seed)
    if algorithm in ("tpe", "multivariate-tpe"):
        return samplers.TPESampler(
            seed=seed,
            multivariate=algorithm == "multivariate-tpe",
            constant_liar=spec.parallel > 1,
        )
    if algorithm == "cmaes":
        return samplers.CmaEsSampler(seed=seed)
    if algorithm == "sobol":
        return samplers.QMCSampler(qmc_type="sobol", seed=seed)
    if algorithm == "bayesianoptimization":
        return samplers.GPSampler(seed=seed)
    raise ValueError(f"no sampler for algorithm {algorithm!r}")


def pruner_for(spec: TuneSpec) -> BasePruner:
    """`%earlyStopping=median`: MedianPruner with Katib's medianstop defaults; else none."""
    from optuna import pruners

    if spec.early_stopping == "median":
        return pruners.MedianPruner(
            n_startup_trials=MEDIAN_MIN_TRIALS, n_warmup_steps=MEDIAN_START_STEP - 1
        )
    return pruners.NopPruner()
