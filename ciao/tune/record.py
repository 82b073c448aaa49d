"""A study's record: a run directory like a job's (`~/.ciao/runs/<study>/`).

    spec.json     backend "study", the study as its magics say it, who ran it, the engine
    study.pkl     what the driver needs to run trials: the cell's Parameter and the Config
                  of when it ran (a private file of this user, read by the same Ciao)
    values/       the notebook's values the trials carry, kept for the study's life
    journal.log   Optuna's journal (JournalFileBackend): what the sampler knows, resumable
    events.jsonl  every trial's state (TrialUpdate), its lines (`#3 master-0`), the verdict
    supervisor    the driver's process: [pid, start time, boot id]

The trials are ordinary jobs with records of their own (`<study>-<number>`).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ciao.backend.record import STUDY, RunDir, list_run_dirs, write_atomic
from ciao.backend.types import JobInfo, LogLine
from ciao.config import Config
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.tune.state import StudyState

INPUTS = "study.pkl"
JOURNAL = "journal.log"
VALUES = "values"


def trial_label(number: int, replica: str) -> str:
    """How a trial's replica is named in the study's record and view: `#3 master-0`."""
    return f"#{number} {replica}"


class StudyRecord:
    def __init__(self, run: RunDir) -> None:
        self.run = run

    @classmethod
    def of(cls, root: Path, name: str) -> StudyRecord:
        """The study `name`'s record; BackendError when there is none."""
        try:
            run = RunDir(root, name)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
        if not run.is_study():
            raise BackendError(f"{name!r} is not a study (no study's record in {root})")
        return cls(run)

    @classmethod
    def create(
        cls,
        config: Config,
        parameter: Parameter,
        engine: str,
        trials_backend: str,
        travels: str = "",
    ) -> StudyRecord:
        """The record of a study starting now, with what its driver needs (the notebook's
        values copied in: the session's copies go when the cell ends)."""
        assert parameter.tune is not None
        run = RunDir(config.run_dir, parameter.generate_name)
        run.start(
            STUDY,
            study=parameter.tune.describe(),
            framework=parameter.framework,
            roles={role: spec.count for role, spec in parameter.roles.items()},
            owner=dict(parameter.owner),
            engine=engine,
            trials_backend=trials_backend,
            travels=travels,
        )
        record = cls(run)
        record._save_inputs(record._keep_values(parameter), config)
        return record

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def journal(self) -> Path:
        return self.run.path / JOURNAL

    def spec(self) -> dict[str, Any]:
        return self.run.spec()

    def _keep_values(self, parameter: Parameter) -> Parameter:
        carried = parameter.carried
        if carried is None or not carried.values:
            return parameter
        folder = self.run.path / VALUES
        folder.mkdir(mode=0o700, exist_ok=True)
        values = []
        for index, value in enumerate(carried.values):
            kept = folder / f"value-{index}.pkl"
            shutil.copyfile(value.path, kept)
            os.chmod(kept, 0o600)
            values.append(dataclasses.replace(value, path=str(kept)))
        return dataclasses.replace(
            parameter, carried=dataclasses.replace(carried, values=tuple(values))
        )

    def _save_inputs(self, parameter: Parameter, config: Config) -> None:
        """Pickled: the whole Parameter (carried definitions, pod settings) and Config, for
        the driver this Ciao starts from this record; nothing else reads it."""
        data = pickle.dumps({"parameter": parameter, "config": config})
        fd = os.open(self.run.path / INPUTS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def inputs(self) -> tuple[Parameter, Config]:
        with (self.run.path / INPUTS).open("rb") as handle:
            data = pickle.load(handle)  # written by this user's Ciao, 0600 (_save_inputs)
        return data["parameter"], data["config"]

    def set_spec(self, **changes: Any) -> None:
        write_atomic(self.run.path / "spec.json", _json({**self.spec(), **changes}))

    def state(self) -> StudyState:
        """Every trial as the record says now."""
        state = StudyState.of(self.name, self.spec().get("study") or {})
        for event in self.run.read_states(self.run.size()):
            state.apply(event)
        return state

    def lines(self, tail: int | None = None) -> Iterator[LogLine]:
        """The trials' lines, `#3 master-0` their replicas (the last `tail` of them)."""
        from collections import deque

        lines = (event for event, _ in self.run.read_events() if isinstance(event, LogLine))
        yield from (lines if tail is None else deque(lines, maxlen=tail))

    def driver_running(self) -> bool:
        supervisor = self.run.supervisor()
        return supervisor is not None and supervisor.is_running()

    def info(self) -> JobInfo:
        """The study as `%jobs` lists it: its state (Lost when its driver stopped without
        a verdict), its trials, where they ran."""
        spec = self.spec()
        state = self.state()
        status = state.state
        message = state.done.message if state.done else state.summary()
        if state.done is None and not self.driver_running():
            status, message = "Lost", f"its driver stopped: %attach {self.name} goes on"
        return JobInfo(
            name=self.name,
            framework="study",
            backend=STUDY,
            state=status,  # type: ignore[arg-type]
            created=self.run.created(),
            replicas={"trials": int((spec.get("study") or {}).get("trials") or 0)},
            owner=dict(spec.get("owner") or {}),
            location=str(spec.get("trials_backend") or "local"),
            message=message,
            travels=self.run.travels(),
        )


def studies(root: Path) -> list[StudyRecord]:
    """Every study recorded under `root`, newest first."""
    return [StudyRecord(run) for run in list_run_dirs(root) if run.is_study()]


def _json(data: dict[str, Any]) -> str:
    import json

    return json.dumps(data, indent=1)
