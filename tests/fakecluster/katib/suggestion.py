"""The Suggestion controller and the algorithm service it asks for trials
(pkg/controller.v1beta1/suggestion, pkg/suggestion/v1beta1/optuna).

Upstream runs a Deployment and Service `<experiment>-<algorithm>` serving the algorithm over
gRPC; here each Suggestion's service is an in-process Optuna study kept for the Suggestion's
life (not its Deployment or Service, which this cluster does not serve): Katib's Optuna
service's ask/tell, with the sampler of the algorithm's name: random -> RandomSampler, grid
-> GridSampler over the parameters' values (doubles need a step), tpe -> TPESampler
(constant_liar), multivariate-tpe -> TPESampler(multivariate), cmaes -> CmaEsSampler
(package `cmaes`), sobol -> QMCSampler(qmc_type="sobol") and bayesianoptimization ->
GPSampler (scipy, torch); the algorithm setting `random_state` (or `seed`) is the sampler's
seed, so one seeded experiment asks the same parameters as another. Succeeded trials are
told their objective value (by its metric strategy) before each ask. Values are Python's
str() of what Optuna returns. Upstream serves random and tpe with hyperopt,
bayesianoptimization with scikit-optimize, cmaes and sobol with goptuna: the same names and
seed, other draws. Parameters of distribution normal or logNormal are refused (the Optuna
service of v0.19.0 silently drops them).

Status as upstream: Created (`Suggestion is created`), DeploymentReady, Running (`Suggestion
is running`) once the settings validate (ValidateAlgorithmSettings: Failed `Validation
failed: ValidateAlgorithmSettings Error: unknown setting foo for algorithm random` otherwise,
which fails the Experiment), `suggestionCount` and `suggestions[{name: <experiment>-<8
random characters>, parameterAssignments}]` up to `spec.requests`; Succeeded `Suggestion is
succeeded, can't be restarted` once the Experiment ends (resumePolicy Never).
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import threading
import warnings
from collections import defaultdict
from typing import Any

from ..controller import Controller
from ..store import Obj, WatchEvent
from ..timeutil import rfc3339
from . import conditions as cond
from . import config as C
from .metrics import metric_value, strategy_of

SUGGESTION_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery util/rand
_SETTINGS = {
    "tpe": ("n_startup_trials", "n_ei_candidates", "random_state"),
    "multivariate-tpe": ("n_startup_trials", "n_ei_candidates", "random_state"),
    "cmaes": ("restart_strategy", "sigma", "random_state"),
    "random": ("random_state",),
    "grid": ("random_state",),
    "sobol": ("random_state",),
    "bayesianoptimization": ("random_state",),
}


class AlgorithmError(Exception):
    """What ValidateAlgorithmSettings answers (INVALID_ARGUMENT)."""


#: What Optuna's sampler of an algorithm needs besides Optuna.
_NEEDS = {"cmaes": ("cmaes",), "sobol": ("scipy",), "bayesianoptimization": ("scipy", "torch")}


def _validate(
    algorithm: str, settings: dict[str, str], parameters: list[Obj], max_trials: int
) -> None:
    known = _SETTINGS.get(algorithm)
    if known is None:
        raise AlgorithmError(f"unknown algorithm name {algorithm}")
    missing = [m for m in _NEEDS.get(algorithm, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise AlgorithmError(
            f"the {algorithm} sampler needs the package(s) {', '.join(missing)}, not installed"
        )
    for name, value in settings.items():
        if name not in known:
            raise AlgorithmError(f"unknown setting {name} for algorithm {algorithm}")
        if name == "restart_strategy":
            if value not in ("ipop", "None", "none"):
                raise AlgorithmError(
                    f"restart_strategy {value} is not supported in CMAES optimization"
                )
            continue
        try:
            number = float(value) if name == "sigma" else int(value)
        except ValueError as exc:
            raise AlgorithmError(f"failed to validate {name}({value}): {exc}") from exc
        if number < 0:
            raise AlgorithmError(f"{name} should be greate or equal than zero")
    for p in parameters:
        distribution = (p.get("feasibleSpace") or {}).get("distribution", "")
        if distribution in ("normal", "logNormal"):
            raise AlgorithmError(
                f"unsupported distribution {distribution} for parameter {p.get('name')}"
            )
    if algorithm == "cmaes":
        continuous = [p for p in parameters if p.get("parameterType") in ("double", "int")]
        if len(continuous) < 2:
            raise AlgorithmError(
                "cmaes only supports two or more dimensional continuous search space."
            )
    if algorithm == "grid":
        try:
            combinations = _grid(parameters)
        except (ValueError, TypeError) as exc:
            raise AlgorithmError(f"failed to validate parameters: {exc}") from exc
        count = len(list(itertools.product(*combinations.values())))
        if max_trials > count:
            raise AlgorithmError(
                f"Max Trial Count: {max_trials} > all possible search combinations: {count}"
            )


def _grid(parameters: list[Obj]) -> dict[str, list[Any]]:
    """HyperParameterSearchSpace.convert_to_combinations."""
    out: dict[str, list[Any]] = {}
    for p in parameters:
        space = p.get("feasibleSpace") or {}
        kind, name = p.get("parameterType"), p.get("name", "")
        if kind == "int":
            out[name] = list(
                range(int(space["min"]), int(space["max"]) + 1, int(space.get("step") or 1))
            )
        elif kind == "double":
            if not space.get("step"):
                raise ValueError(
                    f"Param {name} step is nil; For discrete search space, all parameters "
                    "must include step"
                )
            low, high, grain = float(space["min"]), float(space["max"]), float(space["step"])
            import numpy  # Optuna's own dependency; imported once a grid is asked for

            values = numpy.arange(low, high + grain, grain)
            if values[-1] > high:
                values = values[:-1]
            out[name] = list(values)
        else:
            out[name] = [str(v) for v in space.get("list") or []]
    return out


class OptunaService:
    """BaseOptunaService: one study, asked with fixed distributions, told by assignments."""

    def __init__(self, experiment: Obj) -> None:
        import optuna  # the stand-in needs it only once an Experiment runs

        spec = experiment["spec"]
        self.optuna = optuna
        self.parameters: list[Obj] = spec.get("parameters") or []
        algorithm = spec.get("algorithm") or {}
        self.name = algorithm.get("algorithmName", "")
        settings = {
            s.get("name", ""): s.get("value", "") for s in algorithm.get("algorithmSettings") or []
        }
        _validate(self.name, settings, self.parameters, int(spec.get("maxTrialCount") or 0))
        seed = settings.get("random_state")
        self.distributions = self._distributions()
        maximize = (spec.get("objective") or {}).get("type") == "maximize"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = self._sampler(settings, None if seed is None else int(seed))
            self.study = optuna.create_study(
                sampler=sampler, direction="maximize" if maximize else "minimize"
            )
        self.numbers: dict[str, list[int]] = defaultdict(list)
        self.told: set[str] = set()
        self.lock = threading.Lock()

    def _sampler(self, settings: dict[str, str], seed: int | None) -> Any:
        samplers = self.optuna.samplers
        if self.name in ("tpe", "multivariate-tpe"):
            kwargs: dict[str, Any] = {"seed": seed, "constant_liar": True}
            for key in ("n_startup_trials", "n_ei_candidates"):
                if key in settings:
                    kwargs[key] = int(settings[key])
            if self.name == "multivariate-tpe":
                kwargs["multivariate"] = True
            return samplers.TPESampler(**kwargs)
        if self.name == "random":
            return samplers.RandomSampler(seed=seed)
        if self.name == "grid":
            return samplers.GridSampler(_grid(self.parameters), seed=seed)
        if self.name == "cmaes":
            restart = settings.get("restart_strategy")
            sigma = settings.get("sigma")
            return samplers.CmaEsSampler(
                seed=seed,
                sigma0=float(sigma) if sigma else None,
                restart_strategy=None if restart in (None, "None", "none") else restart,
            )
        if self.name == "sobol":
            return samplers.QMCSampler(qmc_type="sobol", seed=seed)
        return samplers.GPSampler(seed=seed)

    def _distributions(self) -> dict[str, Any]:
        d = self.optuna.distributions
        out: dict[str, Any] = {}
        for p in self.parameters:
            space = p.get("feasibleSpace") or {}
            log = space.get("distribution") == "logUniform"
            name, kind = p.get("name", ""), p.get("parameterType")
            if kind == "int":
                low = int(space["min"])
                step = int(space.get("step") or 1)
                out[name] = d.IntDistribution(
                    max(1, low) if log else low, int(space["max"]), log=log, step=1 if log else step
                )
            elif kind == "double":
                grain = space.get("step")
                out[name] = d.FloatDistribution(
                    max(1e-10, float(space["min"])) if log else float(space["min"]),
                    float(space["max"]),
                    log=log,
                    step=None if log or not grain else float(grain),
                )
            else:
                out[name] = d.CategoricalDistribution([str(v) for v in space.get("list") or []])
        return out

    @staticmethod
    def _key(assignments: list[Obj]) -> str:
        return ",".join(
            f"{a['name']}:{a['value']}" for a in sorted(assignments, key=lambda a: a["name"])
        )

    def get_suggestions(self, trials: list[Obj], count: int) -> list[list[Obj]]:
        """GetSuggestions: tell what finished, then ask `count` times."""
        with self.lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for trial in trials:
                self._tell(trial)
            out = []
            for _ in range(count):
                asked = self.study.ask(fixed_distributions=self.distributions)
                assignments = [{"name": k, "value": str(v)} for k, v in asked.params.items()]
                self.numbers[self._key(assignments)].append(asked.number)
                out.append(assignments)
            return out

    def _tell(self, trial: Obj) -> None:
        name = trial["metadata"]["name"]
        status = trial.get("status") or {}
        if name in self.told or not (
            cond.true(status, "Succeeded") or cond.true(status, "EarlyStopped")
        ):
            return
        objective = (trial.get("spec") or {}).get("objective") or {}
        metric = objective.get("objectiveMetricName", "")
        observed = next(
            (
                m
                for m in (status.get("observation") or {}).get("metrics") or []
                if m.get("name") == metric
            ),
            None,
        )
        if observed is None:
            return
        self.told.add(name)
        numbers = self.numbers.get(self._key(trial["spec"].get("parameterAssignments") or []))
        if not numbers:
            raise AlgorithmError("An unknown trial has been passed in the GetSuggestion request.")
        value = float(metric_value(observed, strategy_of(objective, metric)))
        self.study.tell(numbers.pop(0), value)


class SuggestionController(Controller):
    """Suggestion -> its algorithm service, asked for `spec.requests` assignments."""

    kind_plural = "suggestions"
    kind = "Suggestion"
    component = "suggestion-controller"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.services: dict[str, OptunaService] = {}
        self.random = random.Random()

    def keys_for(self, ev: WatchEvent) -> list[tuple[str, str]]:
        """A trial's or an experiment's change may let more be asked."""
        if ev.resource == "experiments":
            return [(ev.namespace, ev.obj["metadata"]["name"])]
        return []

    def deleted(self, obj: Obj) -> None:
        self.services.pop(obj["metadata"].get("uid", ""), None)

    def reconcile(self, suggestion: Obj) -> None:
        status = self.status_copy(suggestion)
        if cond.true(status, "Succeeded"):
            self.services.pop(suggestion["metadata"]["uid"], None)
            return
        if not cond.true(status, "Created"):
            status.setdefault("startTime", rfc3339())
            cond.set_(status, "Created", "True", "SuggestionCreated", "Suggestion is created")
            self.write_status(suggestion, status)
            return
        if cond.true(status, "Failed"):
            return
        cond.set_(status, "DeploymentReady", "True", "DeploymentReady", "Deployment is ready")
        meta = suggestion["metadata"]
        experiment = self.store.get("experiments", meta["namespace"], meta["name"])
        if experiment is None:
            self.write_status(suggestion, status)
            return
        service = self.services.get(meta["uid"])
        if service is None:
            try:
                service = OptunaService(experiment)
            except (AlgorithmError, ImportError, ValueError, KeyError, TypeError) as exc:
                message = f"Validation failed: ValidateAlgorithmSettings Error: {exc}"
                cond.finish(status, "Failed", "SuggestionFailed", message)
                self.write_status(suggestion, status)
                return
            self.services[meta["uid"]] = service
        if not cond.true(status, "Running"):
            cond.set_(status, "Running", "True", "SuggestionRunning", "Suggestion is running")
        wanted = int((suggestion.get("spec") or {}).get("requests") or 0) - int(
            status.get("suggestionCount") or 0
        )
        if wanted > 0:
            trials, _ = self.store.list("trials", meta["namespace"])
            mine = [
                t
                for t in trials
                if (t["metadata"].get("labels") or {}).get(C.LABEL_EXPERIMENT) == meta["name"]
            ]
            try:
                asked = service.get_suggestions(mine, wanted)
            except AlgorithmError as exc:
                self.event(suggestion, "Warning", "ReconcileError", str(exc))
                self.write_status(suggestion, status)
                return
            suggestions = status.setdefault("suggestions", [])
            for assignments in asked:
                suffix = "".join(self.random.choice(SUGGESTION_ALPHABET) for _ in range(8))
                suggestions.append(
                    {"name": f"{meta['name']}-{suffix}", "parameterAssignments": assignments}
                )
            status["suggestionCount"] = len(suggestions)
        self.write_status(suggestion, status)
