"""A study, as a tuned cell's magics say it: the search space, the objective, the budget.

`%tune lr=loguniform(1e-4,1e-1) batch=choice(32,64,128) layers=int(2,6)`,
`%objective=minimize:val_loss`, `%trials=20;%parallel=4;%algorithm=tpe`,
`%earlyStopping=median`, `%seed=1`. The names are Katib's (algorithms, strategies), so one
cell means the same study to Ciao's own engine (Optuna) and to a Katib Experiment. Pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from ciao.errors import excerpt

DistributionKind = Literal["uniform", "loguniform", "int", "logint", "choice"]
DISTRIBUTIONS: tuple[DistributionKind, ...] = ("uniform", "loguniform", "int", "logint", "choice")
Direction = Literal["minimize", "maximize"]
Strategy = Literal["min", "max", "latest"]

#: Katib's algorithm names (katib-config v0.19.0) that both engines run.
ALGORITHMS = (
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
    "bayesianoptimization",
)
#: `%earlyStopping`: Katib's medianstop, Optuna's MedianPruner.
EARLY_STOPPING = ("median",)
STRATEGIES: tuple[Strategy, ...] = ("min", "max", "latest")
#: A parameter's name: what `${trialParameters.<name>}` and CIAO_HP_<NAME> can carry.
PARAMETER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
#: Katib's metric name grammar (the filter's `[\w|-]+`).
METRIC_NAME = re.compile(r"[\w|-]+")
MAX_TRIALS = 10_000
MAX_PARALLEL = 256
MAX_CHOICES = 1000
#: `%seed` at most: what numpy's (and so Optuna's) random state takes.
MAX_SEED = 2**32 - 1
#: `%trials` when the cell does not say (Katib's SDK default too).
DEFAULT_TRIALS = 10
#: The kinds grid search can enumerate (Optuna's GridSampler takes explicit values).
GRID_KINDS: tuple[DistributionKind, ...] = ("choice", "int")


@dataclass(frozen=True)
class Distribution:
    """Where one parameter's values come from: a range (`low`..`high`, inclusive; a log
    scale for loguniform/logint) or a list of choices."""

    kind: DistributionKind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str | int | float, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice({','.join(str(c) for c in self.choices)})"
        return f"{self.kind}({_number(self.low)},{_number(self.high)})"

    @property
    def is_int(self) -> bool:
        return self.kind in ("int", "logint")

    @property
    def is_log(self) -> bool:
        return self.kind in ("loguniform", "logint")

    def bounds(self) -> tuple[str, str]:
        """`low` and `high` as written (`-10`, `0.0001`): a range's, as Katib's strings."""
        return _number(self.low), _number(self.high)

    def grid_values(self) -> tuple[str | int | float, ...]:
        """The points grid search tries: a choice's values, every whole number of an
        int(a,b); other kinds have no grid (ValueError)."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1))
        raise ValueError(f"{self.describe()} has no grid: grid takes choice(...) and int(a,b)")

    def grid_size(self) -> int:
        """How many points `grid_values` has (without listing them)."""
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        raise ValueError(f"{self.describe()} has no grid: grid takes choice(...) and int(a,b)")


@dataclass(frozen=True)
class Objective:
    """What a trial scores: a metric of the primary replica's log, its strategy over the
    trial's values (Katib's default: min when minimizing, max when maximizing)."""

    direction: Direction
    metric: str
    strategy: Strategy

    def describe(self) -> str:
        default = "min" if self.direction == "minimize" else "max"
        suffix = f":{self.strategy}" if self.strategy != default else ""
        return f"{self.direction}:{self.metric}{suffix}"


@dataclass(frozen=True)
class TuneSpec:
    """A study: every trial is the cell's job with one point of `space`."""

    space: tuple[tuple[str, Distribution], ...]
    objective: Objective
    trials: int = 10
    parallel: int = 1
    algorithm: str = "tpe"
    early_stopping: str = ""
    seed: int | None = None

    def parameter_names(self) -> list[str]:
        return [name for name, _ in self.space]

    def describe(self) -> dict[str, object]:
        """The study as %dryrun and the record show it, in the magics' own words."""
        return {
            "space": {name: dist.describe() for name, dist in self.space},
            "objective": self.objective.describe(),
            "trials": self.trials,
            "parallel": self.parallel,
            "algorithm": self.algorithm,
            "earlyStopping": self.early_stopping or None,
            "seed": self.seed,
        }


def grid_points(space: tuple[tuple[str, Distribution], ...], cap: int = MAX_TRIALS + 1) -> int:
    """The grid's size (every combination), counted only up to `cap` (a grid of 1000 x 1000
    x 1000 points is "more than cap", not a number to compute with)."""
    size = 1
    for _, distribution in space:
        size = min(cap, size * distribution.grid_size())
    return size


class TuneError(ValueError):
    """A study magic's value is wrong; the message says what and how to write it."""


_CALL = re.compile(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*", re.S)


def read_space(text: str) -> tuple[tuple[str, Distribution], ...]:
    """`lr=loguniform(1e-4,1e-1) batch=choice(32,64,128) layers=int(2,6)`."""
    items = _split_space(text)
    if not items:
        raise TuneError("name the parameters: %tune lr=loguniform(1e-4,1e-1) batch=choice(32,64)")
    space: dict[str, Distribution] = {}
    for item in items:
        name, eq, definition = item.partition("=")
        name = name.strip()
        if not eq:
            raise TuneError(f"expected name=distribution(...), got {excerpt(item)}")
        if not PARAMETER_NAME.fullmatch(name):
            raise TuneError(
                f"{excerpt(name)} is not a parameter name (a letter, then letters, digits, _)"
            )
        key = name.upper()
        if any(other.upper() == key for other in space):
            raise TuneError(
                f"{name} is named twice (names are environment variables: case "
                "does not tell them apart)"
            )
        space[name] = read_distribution(name, definition)
    return tuple(space.items())


def _split_space(text: str) -> list[str]:
    """The `name=call(...)` items of a %tune line: blanks separate them outside brackets."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char.isspace() and depth == 0:
            if current:
                items.append(current)
            current = ""
            continue
        current += char
    if depth != 0:
        raise TuneError(f"unbalanced parentheses in {excerpt(text)}")
    return [*items, current] if current else items


def read_distribution(name: str, text: str) -> Distribution:
    match = _CALL.fullmatch(text)
    kinds = "uniform(a,b), loguniform(a,b), int(a,b), logint(a,b) or choice(x,y,...)"
    if not match:
        raise TuneError(f"{name}: expected {kinds}, got {excerpt(text)}")
    kind, args = match.group(1).lower(), [a.strip() for a in match.group(2).split(",")]
    if kind == "choice":
        if len(args) < 1 or not all(args) or len(args) > MAX_CHOICES:
            raise TuneError(
                f"{name}: choice(...) takes 1 to {MAX_CHOICES} values, got {excerpt(text)}"
            )
        values = tuple(_choice_value(a) for a in args)
        if len(set(map(str, values))) != len(values):
            raise TuneError(f"{name}: a value is given twice in {excerpt(text)}")
        return Distribution("choice", choices=values)
    if kind not in ("uniform", "loguniform", "int", "logint"):
        raise TuneError(f"{name}: unknown distribution {excerpt(kind)}; use {kinds}")
    if len(args) != 2:
        raise TuneError(f"{name}: {kind}(low,high) takes two numbers, got {excerpt(text)}")
    low, high = (_bound(name, kind, a) for a in args)
    if not low < high:
        raise TuneError(f"{name}: {kind}(low,high) needs low < high, got {excerpt(text)}")
    if kind.startswith("log") and low <= 0:
        raise TuneError(f"{name}: a log scale needs low > 0, got {excerpt(text)}")
    return Distribution(kind, low, high)  # type: ignore[arg-type]


def _bound(name: str, kind: str, text: str) -> float:
    try:
        value = float(text) if kind in ("uniform", "loguniform") else int(text)
    except ValueError:
        whole = "a whole number" if kind in ("int", "logint") else "a number"
        raise TuneError(f"{name}: {excerpt(text)} is not {whole}") from None
    if not math.isfinite(value):
        raise TuneError(f"{name}: {excerpt(text)} is not a finite number")
    return float(value)


def _choice_value(text: str) -> str | int | float:
    """`32` is an int, `0.5` a float, `adam` or `"adam"` a string."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def read_objective(text: str) -> Objective:
    """`minimize:val_loss`, `maximize:accuracy`, with an optional `:min|max|latest`."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0].lower() not in ("minimize", "maximize"):
        raise TuneError(
            f"expected minimize:METRIC or maximize:METRIC (optionally :min, :max or :latest), "
            f"got {excerpt(text)}"
        )
    direction = parts[0].lower()
    metric = parts[1]
    if not METRIC_NAME.fullmatch(metric):
        raise TuneError(f"{excerpt(metric)} is not a metric name (as a log line `{metric}=0.5`)")
    strategy = (
        parts[2].lower() if len(parts) == 3 else ("min" if direction == "minimize" else "max")
    )
    if strategy not in STRATEGIES:
        raise TuneError(f"unknown strategy {excerpt(parts[2])}; one of min, max, latest")
    return Objective(direction, metric, strategy)  # type: ignore[arg-type]


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)
