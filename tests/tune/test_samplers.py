"""Katib's algorithm names as Optuna's samplers, seeded; the search space as Optuna's
distributions; `%earlyStopping=median` as MedianPruner with Katib's medianstop defaults.
The same seeded study asks the same parameters."""

from __future__ import annotations

import optuna
import pytest
from optuna import distributions, pruners, samplers

from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.tune import TuneSpec
from ciao.interpreter.types import Parameter
from ciao.tune import samplers as ciao_samplers
from ciao.tune.samplers import NEEDS, missing_packages, pruner_for, sampler_for

space_of = ciao_samplers.distributions

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec(magics: str) -> TuneSpec:
    parameter = MagicInterpreter().parse(f"{magics}\n%objective=minimize:loss\nprint(1)")
    assert isinstance(parameter, Parameter) and parameter.tune is not None
    return parameter.tune


@pytest.mark.parametrize(
    ("algorithm", "sampler"),
    [
        ("random", samplers.RandomSampler),
        ("grid", samplers.GridSampler),
        ("tpe", samplers.TPESampler),
        ("multivariate-tpe", samplers.TPESampler),
        ("cmaes", samplers.CmaEsSampler),
        ("sobol", samplers.QMCSampler),
        ("bayesianoptimization", samplers.GPSampler),
    ],
)
def test_each_of_katibs_algorithms_is_an_optuna_sampler(algorithm, sampler):
    made = sampler_for(spec(f"%tune x=int(1,4)\n%algorithm={algorithm}\n%seed=7"))
    assert type(made) is sampler


def test_tpe_is_multivariate_for_multivariate_tpe_and_lies_about_running_trials_in_parallel():
    plain = sampler_for(spec("%tune x=uniform(0,1)"))
    multivariate = sampler_for(spec("%tune x=uniform(0,1)\n%algorithm=multivariate-tpe"))
    parallel = sampler_for(spec("%tune x=uniform(0,1)\n%trials=8;%parallel=4"))
    assert isinstance(plain, samplers.TPESampler)
    assert isinstance(multivariate, samplers.TPESampler)
    assert isinstance(parallel, samplers.TPESampler)
    assert (plain._multivariate, plain._constant_liar) == (False, False)
    assert multivariate._multivariate
    assert parallel._constant_liar


def test_sobol_is_optunas_qmc_sampler_of_the_sobol_kind():
    made = sampler_for(spec("%tune x=uniform(0,1)\n%algorithm=sobol"))
    assert isinstance(made, samplers.QMCSampler) and made._qmc_type == "sobol"


def test_grid_searches_every_value_of_choice_and_int_parameters():
    made = sampler_for(spec("%tune a=choice(x,y) n=int(1,3)\n%algorithm=grid"))
    assert isinstance(made, samplers.GridSampler)
    assert made._search_space == {"a": ["x", "y"], "n": [1, 2, 3]}


def test_the_space_is_optunas_distributions():
    line = "%tune lr=loguniform(1e-4,1e-1) m=uniform(0,1) n=int(2,6) k=logint(1,64)"
    space = space_of(spec(f"{line} o=choice(a,b,3)"))
    assert space == {
        "lr": distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "m": distributions.FloatDistribution(0.0, 1.0),
        "n": distributions.IntDistribution(2, 6),
        "k": distributions.IntDistribution(1, 64, log=True),
        "o": distributions.CategoricalDistribution(("a", "b", 3)),
    }


def test_median_early_stopping_is_medianpruner_with_katibs_medianstop_defaults():
    pruner = pruner_for(spec("%tune x=uniform(0,1)\n%earlyStopping=median"))
    assert isinstance(pruner, pruners.MedianPruner)
    # Katib: min_trials_required 3, start_step 4 (its 4th value is step 3)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (3, 3)
    assert isinstance(pruner_for(spec("%tune x=uniform(0,1)")), pruners.NopPruner)


def asked(magics: str, tells: int = 12) -> list[dict]:
    """The parameters a fresh seeded study asks, told (x-2)**2 each time, in order."""
    study_spec = spec(magics)
    study = optuna.create_study(sampler=sampler_for(study_spec), direction="minimize")
    seen = []
    for _ in range(tells):
        trial = study.ask(space_of(study_spec))
        seen.append(dict(trial.params))
        study.tell(trial, (trial.params["x"] - 2) ** 2)
    return seen


@pytest.mark.parametrize("algorithm", ["random", "tpe", "multivariate-tpe"])
def test_the_same_seeded_study_asks_the_same_parameters(algorithm):
    magics = f"%tune x=uniform(-10,10)\n%algorithm={algorithm}\n%seed=1\n%trials=12"
    first = asked(magics)
    assert asked(magics) == first
    assert len({p["x"] for p in first}) == len(first)
    other = asked(magics.replace("%seed=1", "%seed=2"))
    assert other != first


def test_a_sampler_that_needs_a_package_says_which():
    assert missing_packages("tpe") == []
    for algorithm, packages in NEEDS.items():
        assert set(missing_packages(algorithm)) <= set(packages)


def test_median_stopping_prunes_a_trial_worse_than_the_median_from_its_fourth_value():
    study = optuna.create_study(
        pruner=pruner_for(spec("%tune x=uniform(0,1)\n%earlyStopping=median")),
        direction="minimize",
    )
    for scale in (1.0, 2.0, 3.0):  # three finished trials: losses 1, 2, 3 per step
        trial = study.ask()
        for step in range(5):
            trial.report(scale * (5 - step), step)
        study.tell(trial, scale)
    worse = study.ask()
    decisions = []
    for step in range(5):
        worse.report(10.0 * (5 - step), step)
        decisions.append(worse.should_prune())
    assert decisions == [False, False, False, True, True]
    better = study.ask()
    for step in range(5):
        better.report(0.5 * (5 - step), step)
        assert not better.should_prune()


def test_median_stopping_waits_for_three_finished_trials():
    study = optuna.create_study(
        pruner=pruner_for(spec("%tune x=uniform(0,1)\n%earlyStopping=median")),
        direction="minimize",
    )
    for scale in (1.0, 2.0):
        trial = study.ask()
        for step in range(5):
            trial.report(scale, step)
        study.tell(trial, scale)
    worse = study.ask()
    for step in range(5):
        worse.report(100.0, step)
        assert not worse.should_prune()
