"""`ciao.tune`: a study whose trials are the function's job, as a `%tune` cell's: the same
magics (%tune, %objective, %trials, %parallel...), engine and live trial table; each trial
calls the function with its parameters as keywords."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ciao.api import engine
from ciao.api.calls import prepare
from ciao.api.cell import KeywordError
from ciao.api.code import function_code
from ciao.api.job import follow
from ciao.errors import JobCancelled, JobFailed
from ciao.kernel.study_view import StudyView
from ciao.tune import studies
from ciao.tune.state import StudyState

#: How a trial reads its parameters: ciao.hp's text, a Python literal where it is one.
PARAMS = """
def _ciao_params(names):
    import ast
    import ciao.hp
    found = {{}}
    for name in names:
        text = ciao.hp.raw(name)
        try:
            found[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            found[name] = text
    return found
{call}
"""


@dataclasses.dataclass
class Study:
    """A study followed to its end: its name, its trials, the best one's parameters and
    objective value (None when no trial succeeded)."""

    name: str
    state: StudyState = dataclasses.field(repr=False)

    @property
    def best(self) -> dict[str, Any] | None:
        row = self.state.best()
        return None if row is None else dict(row.params)

    @property
    def best_value(self) -> float | None:
        row = self.state.best()
        return None if row is None else row.value


def tune(
    fn: Callable[..., Any],
    space: Mapping[str, str],
    objective: str,
    kwargs: Mapping[str, Any] | None = None,
    **magics: Any,
) -> Study:
    """Run the study `%tune <space>` with `%objective=<objective>` (`trials=`, `parallel=`,
    `algorithm=`, `seed=`, `earlyStopping=` and the job keywords of `ciao.run` too): each
    trial calls `fn(**kwargs, **its parameters)` in every replica; `fn` prints the objective
    as `name=value` lines. Returns the Study once it ended; raises JobFailed when no trial
    succeeded, and as `ciao.run` on Ctrl-C."""
    if not space:
        raise KeywordError("space: at least one parameter, like {'lr': 'loguniform(1e-4,1e-1)'}")
    code = function_code(fn, kwargs)
    names = list(space)
    head, call = code.code.rstrip().rsplit("\n", 1)
    call = call.replace(")", f"{', ' if '(**' in call else ''}**_ciao_params({names!r}))", 1)
    tuned = " ".join(f"{name}={value}" for name, value in space.items())
    code.code = f"%tune {tuned}\n{head}\n{PARAMS.format(call=call)}"
    prepared, cleanup = prepare(code, {**magics, "objective": objective})
    manager = engine.manager()
    try:
        manager.begin()
        run, _ = studies.start_study(manager, prepared, engine.owner())
    finally:
        cleanup()
    active = manager.adopt(run, "cancel")
    state = StudyState.of(run.job.name, run.study)
    done = follow(active, StudyView(run.job, state, run.study))
    if done is None:  # (Ctrl-C is raised by follow, once the study is cancelled)
        raise JobFailed(f"study {run.job.name} ended without a final status")
    if not done.succeeded:
        if done.reason == "Cancelled":
            raise JobCancelled(f"study {run.job.name} was cancelled: {done.message}")
        raise JobFailed(f"study {run.job.name} failed: {done.message or done.reason}")
    return Study(run.job.name, state)
